#!/usr/bin/env bash
# Acceptance throughput of carepost's SMTP ingress, sealing and fsync on (the defaults), with
# Postfix on the same machine as the reference peer.
#   bench/smtp-accept.sh [MESSAGES=20000] [SESSIONS=20] [BYTES=10240]
# Needs a release build (cargo build --release -p carepost; CARGO_TARGET_DIR is honoured) and
# Postfix's smtp-source (../shared/peers/postfix-relay.sh install). carepost runs in a scratch
# directory with relay_networks = 127.0.0.0/8 and delivery off, so only acceptance (the 250
# after sealing, fsync and group commit) is measured. Bounded: each run stops after 600 s.
set -uo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}; s=${2:-20}; bytes=${3:-10240}
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/carepost
[ -x "$bin" ] || { echo "build first: cargo build --release -p carepost" >&2; exit 2; }
command -v smtp-source >/dev/null || export PATH="$PATH:/usr/sbin"
work=$(mktemp -d)
trap 'kill $cp_pid 2>/dev/null; wait $cp_pid 2>/dev/null; rm -rf "$work"' EXIT
cat >"$work/carepost.toml" <<TOML
data_dir = "$work/data"
[log]
level = "warn"
[smtp]
mx_listen = "127.0.0.1:0"
submission_listen = ""
submissions_listen = ""
relay_networks = ["127.0.0.0/8"]
max_connections_per_ip = 1000
[web]
listen = ""
[delivery]
enabled = false
TOML
"$bin" serve --config "$work/carepost.toml" >"$work/banner" 2>"$work/log" &
cp_pid=$!
for _ in $(seq 1 600); do grep -q '^ready' "$work/banner" 2>/dev/null && break; sleep 0.1; done
port=$(awk '$1 == "mx" { split($2, a, ":"); print a[2] }' "$work/banner")
[ -n "$port" ] || { cat "$work/banner" "$work/log"; exit 1; }
echo "carepost $(git rev-parse --short HEAD) on 127.0.0.1:$port, $(nproc) cores, data in $work"
echo "+ smtp-source -l $bytes -m $n -s $s -f a@example.com -t b@example.org 127.0.0.1:$port"
start=$(date +%s.%N)
timeout 600 smtp-source -l "$bytes" -m "$n" -s "$s" -f a@example.com -t b@example.org "127.0.0.1:$port"
rc=$?
end=$(date +%s.%N)
queued=$(sqlite3 "$work/data/carepost.db" "SELECT COUNT(*) FROM messages" 2>/dev/null || echo "?")
awk -v n="$n" -v q="$queued" -v rc="$rc" -v t="$(echo "$end - $start" | bc -l)" \
  'BEGIN { printf "sent=%d queued=%s smtp_source_rc=%d seconds=%.2f accepted_per_s=%.0f\n", n, q, rc, t, q / t }'
