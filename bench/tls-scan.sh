#!/usr/bin/env bash
# TLS scan of carepost's listeners with testssl (Debian package testssl.sh):
# STARTTLS on submission, implicit TLS on submissions (465) and HTTPS.
#   bench/tls-scan.sh
# Passes when no protocol below TLS 1.2 is offered and no finding is above LOW. Findings about
# the self-signed development certificate (trust, chain, revocation, OCSP, CT, CAA) are about the
# certificate an operator replaces, not about carepost's TLS settings; they are listed apart.
# Needs: cargo build --release -p carepost; apt-get install testssl.sh.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
command -v testssl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq testssl.sh >/dev/null; }
work=$(mktemp -d)
trap 'carepost_stop; rm -rf "$work"' EXIT
mkdir -p "$work/cp"; free_port >"$work/cp/port"
sub=$(free_port); subs=$(free_port); https=$(free_port)
cat >"$work/cp/carepost.toml" <<TOML
data_dir = "$work/cp/data"
[log]
level = "warn"
[smtp]
mx_listen = "127.0.0.1:$(cat "$work/cp/port")"
submission_listen = "127.0.0.1:$sub"
submissions_listen = "127.0.0.1:$subs"
[web]
listen = "127.0.0.1:$https"
[delivery]
enabled = false
TOML
carepost_start "$work/cp" || exit 1
certificate_only='cert_revocation|cert_trust|cert_chain_of_trust|cert_caaRecord|cert_crlDistributionPoints|cert_ocspURL|OCSP_stapling|cert_mustStapleExtension|certificate_transparency|DNS_CAArecord|cert_expirationStatus|cert_validityPeriod|cert_extlifeSpan'
status=0
for target in "submission STARTTLS:--starttls smtp 127.0.0.1:$sub" "submissions 465:127.0.0.1:$subs" "HTTPS:127.0.0.1:$https"; do
  name=${target%%:*}; args=${target#*:}
  # shellcheck disable=SC2086
  testssl --quiet --warnings off --color 0 --csvfile "$work/$name.csv" $args >"$work/$name.txt" 2>&1
  protocols=$(grep -E '"(SSLv2|SSLv3|TLS1|TLS1_1|TLS1_2|TLS1_3)"' "$work/$name.csv" | awk -F'","' '{ print $1 "=" $5 }' | tr -d '"' | tr '\n' ' ')
  high=$(awk -F'","' 'NR > 1 && $4 ~ /MEDIUM|HIGH|CRITICAL/ { print $1 " (" $4 "): " $5 }' "$work/$name.csv" | tr -d '"')
  findings=$(echo "$high" | grep -Ev "^($certificate_only) " | grep -v '^$')
  cert=$(echo "$high" | grep -E "^($certificate_only) " | cut -d' ' -f1 | tr '\n' ' ')
  echo "== $name: protocols: $protocols"
  echo "   findings above LOW: ${findings:-none}"
  echo "   about the self-signed development certificate: ${cert:-none}"
  if [ -n "$findings" ] || echo "$protocols" | grep -Eq '(SSLv2|SSLv3|TLS1|TLS1_1)=offered'; then status=1; fi
done
exit $status
