#!/usr/bin/env bash
# Outbound mail over verified TLS: carepost against Postfix, the same load, alternating.
#   bench/outbound-tls.sh [RUNS=3] [MESSAGES=20000] [SESSIONS=20] [BYTES=10240]
# smtp-source sends to b@example.net, a domain neither relay serves, so the mail leaves for a
# next hop that takes it only over STARTTLS (testkit's tls_sink, which counts and discards)
# with a certificate from a test CA. carepost relays with everything on (DLP, policy, the body
# sealed and fsynced before the 250, DKIM) and delivery.smart_host_tls = "required" (the
# certificate verified against the test CA in delivery.tls_ca_file); Postfix relays with
# smtp_tls_security_level = secure against the same CA, and reuses its TLS connections
# (smtp_tls_connection_reuse). The clock stops when the sink has counted every message.
# Needs: cargo build --release -p carepost; ../shared/peers/postfix-relay.sh install; openssl;
# cargo build --release -p carepost-testkit --example tls_sink.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
runs=${1:-3}; n=${2:-20000}; s=${3:-20}; bytes=${4:-10240}
peers=$bench_root/../shared/peers
tls_sink=${CARGO_TARGET_DIR:-$bench_root/target}/release/examples/tls_sink
[ -x "$tls_sink" ] || { echo "build first: cargo build --release -p carepost-testkit --example tls_sink" >&2; exit 2; }
work=$(mktemp -d); chmod 755 "$work"
trap 'carepost_stop; "$peers/postfix-relay.sh" stop; kill $sink_pid 2>/dev/null; rm -rf "$work"' EXIT
sink=$(free_port); postfix_port=$(free_port)

# The test CA and the sink's certificate: sink.test and 127.0.0.1.
(
  cd "$work"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=bench test CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  openssl req -newkey rsa:2048 -nodes -keyout sink.key -out sink.csr -subj "/CN=sink.test"
  printf 'subjectAltName=DNS:sink.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >ext
  openssl x509 -req -in sink.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out sink.pem -days 2 -extfile ext
) >/dev/null 2>&1 || { echo "openssl could not make the test CA" >&2; exit 1; }
chmod 644 "$work"/*.pem
echo "[127.0.0.1]:$sink secure match=sink.test" >"$work/tls_policy"

"$tls_sink" "127.0.0.1:$sink" "$work/sink.pem" "$work/sink.key" "$work/count" >/dev/null &
sink_pid=$!
for _ in $(seq 1 50); do [ -s "$work/count" ] && break; sleep 0.1; done

delivered() { cat "$work/count" 2>/dev/null || echo 0; }
# One run against whatever listens on $1; prints the rate.
drive() {
  local start=$(date +%s.%N) base=$(delivered) deadline
  timeout 600 smtp-source -l "$bytes" -m "$n" -s "$s" -f a@example.com -t b@example.net "127.0.0.1:$1" >/dev/null 2>&1
  local rc=$?
  # Gives up when nothing reaches the sink for 60 s (a relay that cannot reach it).
  local last=-1 now
  deadline=$(( $(date +%s) + 60 ))
  while [ $(( $(delivered) - base )) -lt "$n" ] && [ "$(date +%s)" -lt "$deadline" ]; do
    now=$(delivered)
    [ "$now" != "$last" ] && { last=$now; deadline=$(( $(date +%s) + 60 )); }
    sleep 0.1
  done
  local end=$(date +%s.%N) got=$(( $(delivered) - base ))
  awk -v n="$n" -v got="$got" -v rc="$rc" -v e="$(echo "$end - $start" | bc -l)" \
    'BEGIN { printf "sent=%d received=%d source_rc=%d end_to_end_s=%.2f msgs_per_s=%.0f\n", n, got, rc, e, got / e }'
}

echo "carepost $(git -C "$bench_root" rev-parse --short HEAD), $(nproc) cores; $runs runs of $n messages x $bytes bytes over $s sessions, to a TLS-only next hop"
for run in $(seq 1 "$runs"); do
  rm -rf "$work/cp"
  CP_SMART_HOST_TLS=required CP_TLS_CA_FILE="$work/ca.pem" carepost_config "$work/cp" "$sink"
  carepost_start "$work/cp" || exit 1
  line=$(drive "$cp_port")
  carepost_stop
  echo "carepost run $run: $line"
  echo "${line##*=}" >>"$work/carepost.rates"

  "$peers/postfix-relay.sh" start "$postfix_port" "$sink" >/dev/null 2>&1
  postconf -e 'smtp_tls_security_level = secure' "smtp_tls_CAfile = $work/ca.pem" \
    "smtp_tls_policy_maps = texthash:$work/tls_policy" \
    'smtp_tls_connection_reuse = yes' 'smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache'
  # Connection reuse over TLS goes through tlsproxy(8), which Debian's master.cf leaves out.
  postconf -M 'tlsproxy/unix=tlsproxy unix - - y - 0 tlsproxy'
  postfix reload >/dev/null 2>&1; sleep 1
  line=$(drive "$postfix_port")
  "$peers/postfix-relay.sh" stop
  postsuper -d ALL >/dev/null 2>&1   # whatever did not make it, so that the next run starts empty
  postconf -e 'smtp_tls_security_level = none' 'smtp_tls_policy_maps =' 'smtp_tls_connection_reuse = no'
  echo "postfix  run $run: $line"
  echo "${line##*=}" >>"$work/postfix.rates"
done
c=$(median <"$work/carepost.rates"); p=$(median <"$work/postfix.rates")
awk -v c="$c" -v p="$p" 'BEGIN { printf "median msgs/s: carepost=%.0f postfix=%.0f ratio=%.2f\n", c, p, c / p }'
