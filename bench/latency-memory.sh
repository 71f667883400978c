#!/usr/bin/env bash
# Accept-to-delivered latency at a fixed rate, and carepost's peak memory.
#   bench/latency-memory.sh [RATE=400] [MESSAGES=6000]
# 1. bench/load.py sends MESSAGES at RATE msgs/s over 20 sessions (run it at half the
#    maximum relay rate of bench/relay-vs-postfix.sh) and logs when each got its 250;
#    smtp-sink writes each delivered message to a file; latency = the file's modification
#    time minus the 250's time. Prints p50, p99 and max.
# 2. Peak RSS (VmHWM) of a fresh carepost relaying 20,000 x 10 KB over 20 sessions.
# 3. Peak RSS of a fresh carepost relaying one 25 MB message.
# Needs: cargo build --release -p carepost; Postfix's smtp-source and smtp-sink.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
rate=${1:-400}; n=${2:-6000}
work=$(mktemp -d)
trap 'kill $sink_pid 2>/dev/null; carepost_stop; rm -rf "$work"' EXIT
sink=$(free_port)
mkdir -p "$work/sink"; chmod 777 "$work/sink"; chmod 755 "$work"
smtp-sink -u nobody -d "$work/sink/m." "127.0.0.1:$sink" 200 >/dev/null 2>&1 &
sink_pid=$!
peak_rss() { awk '/^VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$cp_pid/status"; }
wait_sink() {  # wait until the sink holds $1 messages
  local deadline=$(( $(date +%s) + 600 ))
  while [ "$(find "$work/sink" -type f | wc -l)" -lt "$1" ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
}

carepost_config "$work/lat" "$sink"; carepost_start "$work/lat" || exit 1
python3 "$bench_root/bench/load.py" "$cp_port" "$n" --sessions 20 --rate "$rate" --log "$work/accepted.log"
wait_sink "$n"
carepost_stop
python3 - "$work/accepted.log" "$work/sink" "$rate" <<'PY'
import os, sys
accepted = dict(line.split() for line in open(sys.argv[1]))
lat = []
for name in os.listdir(sys.argv[2]):
    path = os.path.join(sys.argv[2], name)
    with open(path, "rb") as f:
        for line in f:
            if line.lower().startswith(b"message-id:"):
                mid = line.split()[1].decode()
                if mid in accepted:
                    lat.append(os.stat(path).st_mtime - float(accepted[mid]))
                break
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
print(f"latency at {sys.argv[3]} msgs/s over {len(lat)} messages: p50={pick(0.5):.0f} ms p99={pick(0.99):.0f} ms max={lat[-1] * 1000:.0f} ms")
PY
rm -f "$work"/sink/m.*

carepost_config "$work/rss" "$sink"; carepost_start "$work/rss" || exit 1
timeout 600 smtp-source -l 10240 -m 20000 -s 20 -f a@example.com -t b@example.org "127.0.0.1:$cp_port"
wait_sink 20000
echo "peak RSS relaying 20000 x 10 KB over 20 sessions: $(peak_rss)"
carepost_stop
rm -f "$work"/sink/m.*

carepost_config "$work/big" "$sink"; carepost_start "$work/big" || exit 1
python3 - "$cp_port" <<'PY'
import smtplib, sys
line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ab\r\n"
body = "From: <a@example.com>\r\nTo: <b@example.org>\r\nSubject: big\r\nMessage-ID: <big@bench.example.com>\r\n\r\n" + line * (25_000_000 // len(line))
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=120) as s:
    s.sendmail("a@example.com", ["b@example.org"], body)
print(f"sent one message of {len(body) / 1e6:.1f} MB")
PY
wait_sink 1
echo "peak RSS relaying one 25 MB message: $(peak_rss)"
