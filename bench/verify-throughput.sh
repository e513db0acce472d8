#!/usr/bin/env bash
# Verify throughput on a repository of a real backup: a throwaway PostgreSQL 15 cluster filled by
# pgbench (scale SCALE, default 20, about 300 MB, compresses ~17:1) and a table of ROWS random
# md5 pairs (default 1000000, about 100 MB, compresses ~2:1), one full backup, WAL_SEGMENTS
# archived segments (default 20), then `repoctl verify` with process-max 1, 2 and 4. Prints verify's
# own "read N files ... MiB/s" line for each. Needs a built tree (npm run build).
# Usage: bench/verify-throughput.sh      (SCALE=50 WAL_SEGMENTS=40 bench/verify-throughput.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
SCALE=${SCALE:-20}
WAL_SEGMENTS=${WAL_SEGMENTS:-20}
ROWS=${ROWS:-1000000}
PGBIN=/usr/lib/postgresql/15/bin
NODE=$(command -v node)
W=$(mktemp -d /tmp/pgrepo-bench-XXXXXX)
PORT_PG=$((40000 + RANDOM % 20000))
PORT_SERVER=$((PORT_PG + 1))

# PostgreSQL refuses root: everything runs as postgres then (setpriv execs, so $! is the program itself)
AS_PG=()
if [ "$(id -u)" -eq 0 ]; then AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups); chown postgres "$W"; fi
pg() { "${AS_PG[@]}" "$@"; }

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$W/pg/postmaster.pid" ] && pg "$PGBIN/pg_ctl" -D "$W/pg" stop -m immediate >/dev/null 2>&1 || true
  rm -rf "$W"
}
trap cleanup EXIT

pg bash deploy/make-certs.sh "$W/certs" localhost db1 ops >/dev/null
pg "$PGBIN/initdb" -k -D "$W/pg" -U postgres --auth=trust >/dev/null
cat >> "$W/pg/postgresql.conf" <<EOC
port = $PORT_PG
unix_socket_directories = '$W'
listen_addresses = ''
archive_mode = on
archive_command = '$NODE $ROOT/dist/agent/main.js archive-push --socket $W/db1.sock %p'
max_wal_size = 4GB
EOC
pg "$PGBIN/pg_ctl" -D "$W/pg" -l "$W/pg.log" -w start >/dev/null

pg "$NODE" dist/repo-server/main.js --listen "127.0.0.1:$PORT_SERVER" --repo-path "$W/repo" \
  --tls-cert "$W/certs/localhost.crt" --tls-key "$W/certs/localhost.key" --tls-ca "$W/certs/ca.crt" \
  --auth db1=agent:main --auth ops=admin --log-level warn > "$W/server.log" 2>&1 &
PIDS+=($!)
pg "$NODE" dist/agent/main.js --server "127.0.0.1:$PORT_SERVER" --stanza main --pg-path "$W/pg" --pg-port "$PORT_PG" \
  --pg-socket-path "$W" --pg-user postgres --socket "$W/db1.sock" \
  --tls-cert "$W/certs/db1.crt" --tls-key "$W/certs/db1.key" --tls-ca "$W/certs/ca.crt" > "$W/agent.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q 'attached to repository server' "$W/agent.log" && break; sleep 0.2; done

repoctl() {
  "$NODE" "$ROOT/dist/repo-server/repoctl/main.js" --server "127.0.0.1:$PORT_SERVER" \
    --tls-cert "$W/certs/ops.crt" --tls-key "$W/certs/ops.key" --tls-ca "$W/certs/ca.crt" "$@"
}
psql_at() { pg "$PGBIN/psql" -h "$W" -p "$PORT_PG" -U postgres -d postgres -Atqc "$1"; }

repoctl stanza-create --stanza main >/dev/null
pg "$PGBIN/pgbench" -h "$W" -p "$PORT_PG" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
psql_at "create table noise as select md5(random()::text) || md5(random()::text) as v from generate_series(1, $ROWS)" >/dev/null
repoctl backup --stanza main --start-fast --process-max 4 2>/dev/null
for _ in $(seq "$WAL_SEGMENTS"); do
  psql_at "insert into pgbench_history (tid, bid, aid, delta, mtime) select 1, 1, g, g, now() from generate_series(1, 20000) g" >/dev/null
  psql_at "select pg_switch_wal()" >/dev/null
done
last=$(psql_at "select pg_walfile_name(pg_current_wal_lsn() - 1)")
for _ in $(seq 600); do
  [ "$(psql_at "select coalesce(last_archived_wal, '') >= '$last' from pg_stat_archiver")" = t ] && break; sleep 0.2
done
echo "repository: $(du -sh "$W/repo" | cut -f1) on disk"
for p in 1 2 4; do
  printf 'repoctl verify --stanza main --process-max %s: ' "$p"
  repoctl verify --stanza main --process-max "$p" 2>/dev/null | tail -1 | sed 's/^ *//'
done
