#!/bin/sh
# Creates the certificates pgrepo's mutual TLS needs: a CA, one server certificate and any
# number of client certificates, all signed by that CA. Re-running it with new client names
# reuses the CA already in OUTDIR, so agents can be added later without re-issuing the rest.
set -eu

PROG=${0##*/}
CA_DAYS=3650
LEAF_DAYS=825 # the longest lifetime macOS/iOS and browsers still accept for a TLS certificate

usage() {
  cat <<EOF
Usage: $PROG OUTDIR SERVER_NAME [CLIENT_CN ...]

Creates, in OUTDIR (made if needed, with mode 0700):
  ca.crt, ca.key                    a certificate authority, valid ${CA_DAYS} days; reused if present
  SERVER_NAME.crt, SERVER_NAME.key  the repository server's certificate (serverAuth), with
                                    subjectAltName DNS:SERVER_NAME, DNS:localhost, IP:127.0.0.1, IP:::1
  CLIENT_CN.crt, CLIENT_CN.key      one client certificate (clientAuth) per CLIENT_CN, e.g. one per agent

Keys are EC P-256 and written with mode 0600; certificates are valid ${LEAF_DAYS} days.
Existing server or client files are replaced (a renewal); the CA never is.

Example:
  $PROG /etc/pgrepo/tls backup.example.com db1.example.com db2.example.com
  $PROG /etc/pgrepo/tls backup.example.com db3.example.com   # later: adds db3, renews the server cert
EOF
}

die() {
  echo "$PROG: error: $*" >&2
  exit 1
}

# The name becomes a file name and part of an openssl -subj string, where '/' and '=' have meaning.
check_name() {
  case "$1" in
    '' | *[!A-Za-z0-9._-]* | .* ) die "'$1' is not usable as a certificate name (letters, digits, '.', '_' and '-' only, not starting with '.')" ;;
  esac
  [ "$1" != ca ] || die "'ca' is reserved for the certificate authority's own files"
}

new_key() {
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>"$WORK/err") ||
    die "openssl could not create key $1: $(cat "$WORK/err")"
  chmod 0600 "$1"
}

make_ca() {
  if [ -f "$OUT/ca.crt" ] && [ -f "$OUT/ca.key" ]; then
    echo "reusing   $OUT/ca.crt (existing CA)"
    return
  fi
  [ ! -f "$OUT/ca.crt" ] && [ ! -f "$OUT/ca.key" ] ||
    die "only one of $OUT/ca.crt and $OUT/ca.key exists; restore the other or move both away to make a new CA"
  new_key "$WORK/ca.key"
  openssl req -new -x509 -key "$WORK/ca.key" -subj "/CN=pgrepo CA" -days "$CA_DAYS" -sha256 \
    -extensions v3_ca -config "$WORK/req.cnf" -out "$WORK/ca.crt" 2>"$WORK/err" ||
    die "openssl could not create the CA certificate: $(cat "$WORK/err")"
  mv -f "$WORK/ca.key" "$OUT/ca.key" && chmod 0600 "$OUT/ca.key"
  mv -f "$WORK/ca.crt" "$OUT/ca.crt"
  echo "wrote     $OUT/ca.crt, $OUT/ca.key (new CA, ${CA_DAYS} days)"
}

# sign NAME USAGE SAN: a key and a CA-signed certificate for NAME
sign() {
  name=$1 usage=$2 san=$3
  new_key "$WORK/$name.key"
  openssl req -new -key "$WORK/$name.key" -subj "/CN=$name" -out "$WORK/$name.csr" 2>"$WORK/err" ||
    die "openssl could not create a signing request for $name: $(cat "$WORK/err")"
  {
    echo "basicConstraints = critical, CA:false"
    echo "keyUsage = critical, digitalSignature"
    echo "extendedKeyUsage = $usage"
    echo "subjectKeyIdentifier = hash"
    echo "authorityKeyIdentifier = keyid"
    [ -z "$san" ] || echo "subjectAltName = $san"
  } >"$WORK/$name.ext"
  openssl x509 -req -in "$WORK/$name.csr" -CA "$OUT/ca.crt" -CAkey "$OUT/ca.key" -CAcreateserial \
    -CAserial "$WORK/ca.srl" -days "$LEAF_DAYS" -sha256 -extfile "$WORK/$name.ext" \
    -out "$WORK/$name.crt" 2>"$WORK/err" ||
    die "openssl could not sign the certificate for $name: $(cat "$WORK/err")"
  # moved into place only once both exist, so a failure never leaves a key without its certificate
  mv -f "$WORK/$name.key" "$OUT/$name.key" && chmod 0600 "$OUT/$name.key"
  mv -f "$WORK/$name.crt" "$OUT/$name.crt"
  echo "wrote     $OUT/$name.crt, $OUT/$name.key ($usage, ${LEAF_DAYS} days)"
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  -*) die "unknown option '$1' (see $PROG --help)" ;;
esac
[ $# -ge 2 ] || die "OUTDIR and SERVER_NAME are required: $PROG OUTDIR SERVER_NAME [CLIENT_CN ...] (see --help)"
command -v openssl >/dev/null 2>&1 || die "openssl is not installed or not on PATH (install the 'openssl' package)"

OUT=$1
SERVER=$2
shift 2
check_name "$SERVER"
for cn in "$@"; do
  check_name "$cn"
  [ "$cn" != "$SERVER" ] || die "client name '$cn' is the same as the server name; their files would overwrite each other"
done

mkdir -p "$OUT" || die "cannot create $OUT"
chmod 0700 "$OUT" 2>/dev/null || true
WORK=$(mktemp -d "${TMPDIR:-/tmp}/make-certs.XXXXXX") || die "cannot create a temporary directory"
trap 'rm -rf "$WORK"' EXIT
trap 'exit 1' HUP INT TERM
# A minimal config keeps the result independent of the distribution's openssl.cnf.
cat >"$WORK/req.cnf" <<EOF
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF

make_ca
sign "$SERVER" serverAuth "DNS:$SERVER,DNS:localhost,IP:127.0.0.1,IP:::1"
for cn in "$@"; do
  sign "$cn" clientAuth ""
done
echo "done: give $OUT/ca.crt to every host; $SERVER.* to the repository server; each client's .crt/.key to its agent"
