#!/usr/bin/env bash
# End-to-end relay throughput: carepost against Postfix, the same load, alternating.
#   [STORES="sqlite postgres"] bench/relay-vs-postfix.sh [RUNS=3] [MESSAGES=20000] [SESSIONS=20] [BYTES=10240]
# carepost relays from 127.0.0.0/8 to a smart host with everything on: DLP on every message,
# policy, the body sealed (AES-256-GCM) and fsynced with the queue commit before the 250, and
# DKIM signing (Ed25519 + RSA). Postfix relays with its own durable queue
# (../shared/peers/postfix-relay.sh). ../shared/peers/relay-bench.sh drives smtp-source
# into each and stops the clock when smtp-sink has counted every message.
# STORES names carepost's store for each run, in turn (default: sqlite). "postgres" starts a
# throwaway PostgreSQL cluster on loopback (bench/lib.sh pg_start, fsync on) with a fresh
# database per run, and sets store.url.
# Needs: cargo build --release -p carepost; ../shared/peers/postfix-relay.sh install;
# for postgres, the Debian postgresql package.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
runs=${1:-3}; n=${2:-20000}; s=${3:-20}; bytes=${4:-10240}
stores=${STORES:-sqlite}
peers=$bench_root/../shared/peers
work=$(mktemp -d)
trap 'carepost_stop; "$peers/postfix-relay.sh" stop; pg_stop; rm -rf "$work"' EXIT
sink=$(free_port); postfix_port=$(free_port)
case " $stores " in *" postgres "*) pg_start || exit 1 ;; esac
echo "carepost $(git -C "$bench_root" rev-parse --short HEAD), $(nproc) cores; $runs runs of $n messages x $bytes bytes over $s sessions; stores: $stores"
for run in $(seq 1 "$runs"); do
  for store in $stores; do
    rm -rf "$work/cp"
    case $store in
      sqlite) extra="" ;;
      postgres) url=$(pg_database "carepost_run$run") || exit 1; extra=$(printf '[store]\nurl = "%s"' "$url") ;;
      *) echo "unknown store $store (sqlite, postgres)" >&2; exit 2 ;;
    esac
    carepost_config "$work/cp" "$sink" "$extra"
    carepost_start "$work/cp" || exit 1
    line=$("$peers/relay-bench.sh" "$cp_port" "$sink" "$n" "$s" "$bytes")
    carepost_stop
    label=carepost; [ "$stores" = sqlite ] || label="carepost-$store"
    echo "$label run $run: $line"
    echo "${line##*=}" >>"$work/carepost-$store.rates"
  done

  "$peers/postfix-relay.sh" start "$postfix_port" "$sink" >/dev/null 2>&1
  line=$("$peers/relay-bench.sh" "$postfix_port" "$sink" "$n" "$s" "$bytes")
  "$peers/postfix-relay.sh" stop
  echo "postfix  run $run: $line"
  echo "${line##*=}" >>"$work/postfix.rates"
done
pf_median=$(median <"$work/postfix.rates")
for store in $stores; do
  c=$(median <"$work/carepost-$store.rates")
  label=carepost; [ "$stores" = sqlite ] || label="carepost-$store"
  awk -v l="$label" -v c="$c" -v p="$pf_median" 'BEGIN { printf "median msgs/s: %s=%.0f postfix=%.0f ratio=%.2f\n", l, c, p, c / p }'
done
case " $stores " in
  *" sqlite "*" postgres "* | *" postgres "*" sqlite "*)
    awk -v pg="$(median <"$work/carepost-postgres.rates")" -v sq="$(median <"$work/carepost-sqlite.rates")" \
      'BEGIN { printf "postgres/sqlite ratio=%.2f\n", pg / sq }' ;;
esac
