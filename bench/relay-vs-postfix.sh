#!/usr/bin/env bash
# End-to-end relay throughput: carepost against Postfix, the same load, alternating.
#   bench/relay-vs-postfix.sh [RUNS=3] [MESSAGES=20000] [SESSIONS=20] [BYTES=10240]
# carepost relays from 127.0.0.0/8 to a smart host with everything on: DLP on every message,
# policy, the body sealed (AES-256-GCM) and fsynced with the queue commit before the 250, and
# DKIM signing (Ed25519 + RSA). Postfix relays with its own durable queue
# (../shared/peers/postfix-relay.sh). ../shared/peers/relay-bench.sh drives smtp-source
# into each and stops the clock when smtp-sink has counted every message.
# Needs: cargo build --release -p carepost; ../shared/peers/postfix-relay.sh install.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
runs=${1:-3}; n=${2:-20000}; s=${3:-20}; bytes=${4:-10240}
peers=$bench_root/../shared/peers
work=$(mktemp -d)
trap 'carepost_stop; "$peers/postfix-relay.sh" stop; rm -rf "$work"' EXIT
sink=$(free_port); postfix_port=$(free_port)
echo "carepost $(git -C "$bench_root" rev-parse --short HEAD), $(nproc) cores; $runs runs of $n messages x $bytes bytes over $s sessions"
for run in $(seq 1 "$runs"); do
  rm -rf "$work/cp"; carepost_config "$work/cp" "$sink"
  carepost_start "$work/cp" || exit 1
  line=$("$peers/relay-bench.sh" "$cp_port" "$sink" "$n" "$s" "$bytes")
  carepost_stop
  echo "carepost run $run: $line"
  echo "${line##*=}" >>"$work/carepost.rates"

  "$peers/postfix-relay.sh" start "$postfix_port" "$sink" >/dev/null 2>&1
  line=$("$peers/relay-bench.sh" "$postfix_port" "$sink" "$n" "$s" "$bytes")
  "$peers/postfix-relay.sh" stop
  echo "postfix  run $run: $line"
  echo "${line##*=}" >>"$work/postfix.rates"
done
cp_median=$(median <"$work/carepost.rates"); pf_median=$(median <"$work/postfix.rates")
awk -v c="$cp_median" -v p="$pf_median" 'BEGIN { printf "median msgs/s: carepost=%.0f postfix=%.0f ratio=%.2f\n", c, p, c / p }'
