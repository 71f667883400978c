#!/usr/bin/env python3
"""SMTP load with a record of what was accepted, for the latency and crash benchmarks.

    load.py PORT COUNT [--sessions 20] [--size 10240] [--rate MSGS_PER_S] [--log FILE]

Sends COUNT messages, each with a unique Message-ID, over SESSIONS concurrent SMTP sessions
to 127.0.0.1:PORT. For every message answered 250 after DATA it appends
"MESSAGE-ID ACCEPTED-AT" (epoch seconds) to --log and flushes, so the log survives the
client being stopped. A session that loses its connection (the server was killed) reconnects
and sends the message again, so nothing is skipped; a message whose 250 never arrived is not
counted as accepted. Bounded: gives up on a message after 120 s of failures.
"""
import argparse
import smtplib
import sys
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("port", type=int)
parser.add_argument("count", type=int)
parser.add_argument("--sessions", type=int, default=20)
parser.add_argument("--size", type=int, default=10240)
parser.add_argument("--rate", type=float, default=0.0, help="messages per second overall; 0 = as fast as possible")
parser.add_argument("--log", default="accepted.log")
parser.add_argument("--prefix", default=str(int(time.time())))
args = parser.parse_args()

filler = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 200)[: max(0, args.size - 300)]
lines = "\r\n".join(filler[i : i + 76] for i in range(0, len(filler), 76))
log = open(args.log, "a", buffering=1)
log_lock = threading.Lock()
start = time.monotonic()
failed = []


def message(n):
    mid = f"<{args.prefix}.{n}@bench.example.com>"
    body = (
        f"From: <a@example.com>\r\nTo: <b@example.org>\r\nSubject: bench {n}\r\nMessage-ID: {mid}\r\n"
        f"Date: Mon, 23 Nov 2026 00:00:00 +0000\r\n\r\n{lines}\r\n"
    )
    return mid, body


def session(worker):
    client = None
    for n in range(worker, args.count, args.sessions):
        if args.rate > 0:
            due = start + n / args.rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        mid, body = message(n)
        give_up = time.monotonic() + 120
        while True:
            try:
                if client is None:
                    client = smtplib.SMTP("127.0.0.1", args.port, timeout=30)
                    client.ehlo("load.bench.example.com")
                client.sendmail("a@example.com", ["b@example.org"], body)
                with log_lock:
                    log.write(f"{mid} {time.time():.6f}\n")
                break
            except (OSError, smtplib.SMTPException):
                try:
                    if client is not None:
                        client.close()
                except OSError:
                    pass
                client = None
                if time.monotonic() > give_up:
                    failed.append(mid)
                    break
                time.sleep(0.2)
    if client is not None:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            pass


threads = [threading.Thread(target=session, args=(w,)) for w in range(args.sessions)]
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - start
print(f"sent={args.count} gave_up={len(failed)} seconds={elapsed:.2f} rate={args.count / elapsed:.0f}")
sys.exit(1 if failed else 0)
