#!/usr/bin/env bash
# Makes, with openssl, a CA and certificates for a local pool:
#   DIR/ca.pem                     the pool's CA (its key: DIR/ca.key)
#   DIR/server.pem, DIR/server.key gpupool-server (TLS server for clients,
#                                  TLS client for its broker: both usages)
#   DIR/broker.pem, DIR/broker.key gpupool-broker
# every certificate valid for localhost and 127.0.0.1 (and ::1), plus any
# names given with --name, for --days days (default 825). Keys are P-256,
# mode 0600. An existing DIR/ca.pem + ca.key is reused unless --new-ca, so
# a re-run renews the certificates under the same CA.
#
# usage: scripts/gen-certs.sh [--name DNS|IP]... [--days N] [--new-ca] DIR
set -euo pipefail

usage() {
  echo "usage: $0 [--name DNS|IP]... [--days N] [--new-ca] DIR" >&2
  exit 2
}

names=()
days=825
new_ca=0
dir=
while [ $# -gt 0 ]; do
  case "$1" in
    --name) [ $# -ge 2 ] || usage; names+=("$2"); shift 2 ;;
    --days) [ $# -ge 2 ] || usage; days=$2; shift 2 ;;
    --new-ca) new_ca=1; shift ;;
    -h|--help) usage ;;
    -*) echo "gen-certs.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$dir" ] || usage; dir=$1; shift ;;
  esac
done
[ -n "$dir" ] || usage
case "$days" in ''|*[!0-9]*) echo "gen-certs.sh: --days needs a number" >&2; exit 2 ;; esac
command -v openssl >/dev/null || { echo "gen-certs.sh: openssl is not installed" >&2; exit 1; }

mkdir -p "$dir"
umask 077
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gpupool-certs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for n in "${names[@]+"${names[@]}"}"; do
  if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then
    san="$san,IP:$n"
  else
    san="$san,DNS:$n"
  fi
done

if [ "$new_ca" -eq 1 ] || [ ! -s "$dir/ca.pem" ] || [ ! -s "$dir/ca.key" ]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" -days "$days" \
    -subj "/O=gpupool/CN=gpupool local CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>"$tmp/err" ||
    { cat "$tmp/err" >&2; exit 1; }
fi

# issue ROLE: DIR/ROLE.key and DIR/ROLE.pem signed by the CA.
issue() {
  local role=$1
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/$role.key" -out "$tmp/$role.csr" \
    -subj "/O=gpupool/CN=gpupool-$role" 2>"$tmp/err" ||
    { cat "$tmp/err" >&2; exit 1; }
  cat >"$tmp/$role.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san
EOF
  openssl x509 -req -in "$tmp/$role.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -CAserial "$tmp/ca.srl" -days "$days" -sha256 \
    -extfile "$tmp/$role.ext" -out "$dir/$role.pem" 2>"$tmp/err" ||
    { cat "$tmp/err" >&2; exit 1; }
  chmod 600 "$dir/$role.key"
  chmod 644 "$dir/$role.pem"
}
issue server
issue broker
chmod 644 "$dir/ca.pem"
chmod 600 "$dir/ca.key"
echo "gen-certs.sh: wrote $dir/ca.pem, server.pem/.key, broker.pem/.key (valid for ${san//DNS:/}; $days days)"
