#!/bin/sh
# Creates the certificates pgrepo's mutual TLS needs in one go: a CA, one server certificate and
# any number of client certificates, all signed by that CA. A wrapper around `repoctl cert`
# (the one implementation); re-running it with new client names reuses the CA in OUTDIR.
set -eu

PROG=${0##*/}
HERE=$(cd "$(dirname "$0")" && pwd)
REPOCTL=${REPOCTL:-$HERE/../dist/repo-server/repoctl/main.js}
NODE=${NODE:-node}

usage() {
  cat <<EOF2
Usage: $PROG OUTDIR SERVER_NAME [CLIENT_CN ...]

Creates, in OUTDIR (made if needed, with mode 0700):
  ca.crt, ca.key                    a certificate authority (repoctl cert init); reused if present
  SERVER_NAME.crt, SERVER_NAME.key  the repository server's certificate (repoctl cert issue server),
                                    with subjectAltName SERVER_NAME, localhost, 127.0.0.1, ::1
  CLIENT_CN.crt, CLIENT_CN.key      one client certificate per CLIENT_CN (repoctl cert issue agent)

Keys are EC P-256 with mode 0600. Existing server or client files are replaced (a renewal);
the CA never is.

Example:
  $PROG /etc/pgrepo/tls backup.example.com db1.example.com db2.example.com
EOF2
}

die() {
  echo "$PROG: error: $*" >&2
  exit 1
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  -*) die "unknown option '$1' (see $PROG --help)" ;;
esac
[ $# -ge 2 ] || die "OUTDIR and SERVER_NAME are required: $PROG OUTDIR SERVER_NAME [CLIENT_CN ...] (see --help)"
[ -f "$REPOCTL" ] || die "$REPOCTL is missing: build pgrepo first (npm ci && npm run build)"
command -v "$NODE" >/dev/null 2>&1 || die "node is not installed or not on PATH"

OUT=$1
SERVER=$2
shift 2
for cn in "$@"; do
  [ "$cn" != "$SERVER" ] || die "client name '$cn' is the same as the server name; their files would overwrite each other"
done
cert() { "$NODE" "$REPOCTL" cert "$@" --cert-dir "$OUT"; }

if [ -f "$OUT/ca.crt" ] && [ -f "$OUT/ca.key" ]; then
  echo "reusing $OUT/ca.crt (existing CA)"
else
  cert init
fi
cert issue server "$SERVER"
[ $# -eq 0 ] || cert issue agent "$@"
echo "done: give $OUT/ca.crt to every host; $SERVER.* to the repository server; each client's .crt/.key to its agent"
