# Shared by the bench scripts: a release carepost in a scratch directory, relaying mail for
# example.org from 127.0.0.0/8 to a smart host, with carepost's defaults for durability, DLP and DKIM.
#   source bench/lib.sh
#   carepost_config WORK SINK_PORT [EXTRA_TOML]   writes WORK/carepost.toml
#     (CP_LOG sets log.level; CP_SMART_HOST_TLS and CP_TLS_CA_FILE set delivery.smart_host_tls
#     and delivery.tls_ca_file, for a next hop that must be reached over verified TLS)
#   carepost_start WORK                           starts it; sets cp_pid and cp_port (the MX)
#   carepost_stop                                 SIGTERM and wait
# The MX port is kept in WORK/port so a restarted carepost listens where the clients expect.

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$bench_root/target}/release/carepost
[ -x "$bin" ] || { echo "build first: cargo build --release -p carepost" >&2; exit 2; }
command -v smtp-source >/dev/null || export PATH="$PATH:/usr/sbin"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

carepost_config() {
  local work=$1 sink=$2 extra=${3:-}
  mkdir -p "$work"
  [ -s "$work/port" ] || free_port >"$work/port"
  cat >"$work/carepost.toml" <<TOML
data_dir = "$work/data"
[log]
level = "${CP_LOG:-warn}"
[smtp]
mx_listen = "127.0.0.1:$(cat "$work/port")"
submission_listen = ""
submissions_listen = ""
relay_networks = ["127.0.0.0/8"]
# smtp-source and load.py write to b@example.org: mail for a domain carepost serves, relayed
# to the internal server behind it (the smart host). Outbound mail is not measured this way:
# under the default policy it must leave over verified TLS, end-to-end encryption or the
# portal, and a smart host without TLS is not trusted with it.
local_domains = ["example.org"]
max_connections_per_ip = 1000
[web]
listen = ""
[delivery]
smart_host = "127.0.0.1:$sink"
smart_host_tls = "${CP_SMART_HOST_TLS:-none}"
tls_ca_file = "${CP_TLS_CA_FILE:-}"
retry_first = "1s"
retry_max = "5s"
$extra
TOML
  # DKIM keys for the sending domain of smtp-source and bench/load.py: every message is
  # signed twice (Ed25519 and RSA-2048), as in production.
  if [ ! -d "$work/data" ]; then
    "$bin" dkim generate example.com --config "$work/carepost.toml" >/dev/null
  fi
}

carepost_start() {
  local work=$1
  : >"$work/banner"
  "$bin" serve --config "$work/carepost.toml" >"$work/banner" 2>>"$work/log" &
  cp_pid=$!
  for _ in $(seq 1 600); do grep -q '^ready' "$work/banner" 2>/dev/null && break; sleep 0.1; done
  grep -q '^ready' "$work/banner" || { cat "$work/banner" "$work/log" >&2; return 1; }
  cp_port=$(cat "$work/port")
}

carepost_stop() {
  [ -n "${cp_pid:-}" ] || return 0
  kill -TERM "$cp_pid" 2>/dev/null
  wait "$cp_pid" 2>/dev/null
  cp_pid=
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# A throwaway PostgreSQL cluster for carepost's store (STORES=postgres in the relay bench),
# the way testkit/src/postgres.rs starts one: the Debian binaries, initdb and pg_ctl as the
# postgres user when run as root, in a scratch directory, on a free 127.0.0.1 port, no unix
# socket. Unlike the tests' cluster, fsync stays on: a commit is as durable as SQLite's.
#   pg_start                 sets pg_port
#   pg_database NAME         creates NAME, prints its URL
#   pg_stop
pg_start() {
  pg_bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
  [ -x "$pg_bin/initdb" ] || { echo "no initdb under /usr/lib/postgresql/*/bin: apt-get install postgresql" >&2; return 1; }
  pg_dir=$(mktemp -d /tmp/carepost-bench-pg.XXXXXX)
  as_pg=()
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$pg_dir"; as_pg=(runuser -u postgres --); fi
  "${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -A trust -U postgres -E UTF8 --locale=C >"$pg_dir/initdb.log" 2>&1 \
    || { cat "$pg_dir/initdb.log" >&2; return 1; }
  pg_port=$(free_port)
  printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = ''\n" "$pg_port" >>"$pg_dir/data/postgresql.conf"
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/data/server.log" -w -t 60 start >/dev/null \
    || { cat "$pg_dir/data/server.log" >&2; return 1; }
}

pg_database() {
  "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -qc "CREATE DATABASE $1" postgres >&2 || return 1
  echo "postgres://postgres@127.0.0.1:$pg_port/$1"
}

pg_stop() {
  [ -n "${pg_dir:-}" ] || return 0
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1
  rm -rf "$pg_dir"
  pg_dir=
}
