#!/usr/bin/env bash
# Crash safety: full load while carepost is killed with SIGKILL at random moments.
#   bench/crash-test.sh [MESSAGES=10000] [KILLS=5] [SESSIONS=20]
# bench/load.py sends MESSAGES with unique Message-IDs and logs each one answered 250;
# meanwhile carepost is killed (kill -9) KILLS times at random moments and restarted at once.
# At the end every Message-ID that got a 250 must have reached smtp-sink at least once.
# Prints: accepted=N delivered=N lost=N duplicates=N (lost must be 0; exit status 1 if not).
# Needs: cargo build --release -p carepost; Postfix's smtp-sink (postfix-relay.sh install).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
n=${1:-10000}; kills=${2:-5}; s=${3:-20}
work=$(mktemp -d)
trap 'kill $load_pid $sink_pid 2>/dev/null; carepost_stop; rm -rf "$work"' EXIT
sink=$(free_port)
mkdir -p "$work/sink"; chmod 777 "$work/sink"; chmod 755 "$work"
smtp-sink -u nobody -d "$work/sink/m." "127.0.0.1:$sink" 200 >/dev/null 2>&1 &
sink_pid=$!
carepost_config "$work/cp" "$sink"
carepost_start "$work/cp" || exit 1
python3 "$bench_root/bench/load.py" "$cp_port" "$n" --sessions "$s" --log "$work/accepted.log" >"$work/load.out" 2>&1 &
load_pid=$!
for k in $(seq 1 "$kills"); do
  sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.5 + (r % 3000) / 1000 }')"
  kill -0 "$load_pid" 2>/dev/null || { echo "the load finished before kill $k; use more messages" >&2; break; }
  kill -9 "$cp_pid"; wait "$cp_pid" 2>/dev/null
  echo "kill -9 #$k after $(wc -l <"$work/accepted.log") accepted"
  carepost_start "$work/cp" || exit 1
done
wait "$load_pid"; cat "$work/load.out"
accepted=$(cut -d' ' -f1 "$work/accepted.log" | sort -u | tee "$work/accepted.ids" | wc -l)
received() { cat "$work"/sink/m.* 2>/dev/null | grep -ai '^Message-ID:' | awk '{ print $2 }' | tr -d '\r'; }
deadline=$(( $(date +%s) + 300 ))
while :; do
  received | sort -u >"$work/delivered.ids"
  lost=$(comm -23 "$work/accepted.ids" "$work/delivered.ids" | wc -l)
  [ "$lost" -eq 0 ] || [ "$(date +%s)" -ge "$deadline" ] && break
  sleep 1
done
delivered=$(comm -12 "$work/accepted.ids" "$work/delivered.ids" | wc -l)
duplicates=$(( $(received | wc -l) - $(wc -l <"$work/delivered.ids") ))
echo "accepted=$accepted delivered=$delivered lost=$lost duplicates=$duplicates"
[ "$lost" -eq 0 ]
