#!/usr/bin/env bash
# Runs carepost's whole test suite on a Debian machine with the Rust toolchain.
# Installs (through apt and pip) every peer the tests talk to, then runs every test.
#   scripts/test.sh
# Honours CARGO_TARGET_DIR so that repeated runs on one machine reuse the build.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers the tests use instead of mocks.
packages=(
  swaks                 # SMTP client: submission, STARTTLS, AUTH
  openssl               # s_client, cms -decrypt/-verify
  gnupg                 # gpg --decrypt of PGP/MIME
  postfix               # smtp-sink / smtp-source: the sink MTA and load generator
  libnet-ssleay-perl libio-socket-inet6-perl libauthen-sasl-perl  # swaks TLS and AUTH
  chromium chromium-driver  # headless browser driven over WebDriver: the portal at phone size
  curl                  # HTTP/2 uploads and plain HTTP checks in the end-to-end tests
  python3 python3-venv sqlite3 bc procps
  postgresql            # server binaries (initdb, pg_ctl): testkit starts a throwaway cluster on loopback
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string localhost.localdomain" | debconf-set-selections
  # The store tests start their own PostgreSQL cluster; the package must not create (and
  # start) the system's "main" cluster.
  mkdir -p /etc/postgresql-common
  grep -qs '^create_main_cluster' /etc/postgresql-common/createcluster.conf \
    || echo "create_main_cluster = false" >> /etc/postgresql-common/createcluster.conf
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" >/dev/null
fi
# Postfix's own daemons are not needed: the tests start smtp-sink themselves.
command -v smtp-sink >/dev/null || export PATH="$PATH:/usr/sbin"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
# Python tools the tests drive carepost with (the official `sendgrid` client, schemathesis)
# and moto's S3-compatible server (testkit/src/s3.rs), from PyPI into a virtual environment
# beside the build.
venv="$CARGO_TARGET_DIR/pyenv"
if ! "$venv/bin/python" -c "import sendgrid, schemathesis, moto.server, boto3" 2>/dev/null; then
  mkdir -p "$CARGO_TARGET_DIR"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check sendgrid schemathesis 'moto[server]'
fi
export CAREPOST_TEST_PYTHON="$venv/bin/python"
export CARGO_TERM_COLOR=never
# The habits first: formatted as rustfmt.toml says, and no clippy warning anywhere.
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets

# Fuzz smoke: 30 seconds per cargo-fuzz target when a nightly toolchain is present (the
# long runs are in bench/RESULTS.md). New inputs go to a scratch directory, not fuzz/corpus.
# The targets are those of fuzz/Cargo.toml: dlp_scan, smtp_session, policy_rules and
# api_request (the REST API's request parsing).
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
  scratch=$(mktemp -d)
  for target in $(cargo +nightly fuzz list); do
    mkdir -p "$scratch/$target" "fuzz/corpus/$target"
    cargo +nightly fuzz run --target-dir "$CARGO_TARGET_DIR/fuzz" "$target" "$scratch/$target" "fuzz/corpus/$target" \
      -- -max_total_time=30 -rss_limit_mb=2048 2>&1 | tail -n 20
  done
  rm -rf "$scratch"
fi
echo "all tests passed"
