#!/usr/bin/env bash
# pgrepo quickstart on one machine: a throwaway PostgreSQL 15 cluster, a CA and certificates,
# the repository server, two agents (db1 on the cluster, db2 as the restore host), a full backup,
# `repoctl info`, and a restore into a second directory that is started and queried.
# Usage: deploy/quickstart.sh [WORKDIR]    (default /tmp/pgrepo-quickstart; removed first)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
W=${1:-/tmp/pgrepo-quickstart}
PGBIN=/usr/lib/postgresql/15/bin
NODE=$(command -v node)
PORT_PG1=${PORT_PG1:-54321}
PORT_PG2=${PORT_PG2:-54322}
PORT_SERVER=${PORT_SERVER:-58432}

step() { printf '\n==> %s\n' "$*"; }

step "installing prerequisites (PostgreSQL 15, openssl) and building pgrepo"
bash deploy/install-prereqs.sh
npm ci --no-audit --no-fund --loglevel=error
npm run build --silent

# PostgreSQL refuses to run as root: when root, the clusters and agents run as the postgres user
AS_PG=()
if [ "$(id -u)" -eq 0 ]; then AS_PG=(runuser -u postgres --); fi

PIDS=()
cleanup() {
  # runuser does not pass signals on: stop the programs themselves, found by the work directory they use
  pkill -TERM -f -- "--tls-ca $W/certs/ca.crt" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for d in "$W/pg1" "$W/pg2"; do
    [ -f "$d/postmaster.pid" ] && "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$d" stop -m fast >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

rm -rf "$W" && mkdir -p "$W"
[ "$(id -u)" -eq 0 ] && chown postgres "$W"
pg() { "${AS_PG[@]}" "$@"; }

step "making a CA and certificates for the server (localhost), agents db1 and db2, and operator ops"
pg bash deploy/make-certs.sh "$W/certs" localhost db1 db2 ops

step "creating PostgreSQL cluster $W/pg1 on port $PORT_PG1"
pg "$PGBIN/initdb" -k -D "$W/pg1" -U postgres --auth=trust >/dev/null
cat >> "$W/pg1/postgresql.conf" <<EOC
port = $PORT_PG1
unix_socket_directories = '$W'
listen_addresses = ''
archive_mode = on
archive_command = '$ROOT/dist/agent/pgrepo-archive push --socket $W/db1.sock --spool-path $W/spool-db1 --stanza main --node $NODE %p'
EOC
pg "$PGBIN/pg_ctl" -D "$W/pg1" -l "$W/pg1.log" -w start >/dev/null

step "starting pgrepo-server on 127.0.0.1:$PORT_SERVER (repository $W/repo)"
pg "$NODE" --initial-old-space-size=64 dist/repo-server/main.js --listen "127.0.0.1:$PORT_SERVER" --repo-path "$W/repo" \
  --tls-cert "$W/certs/localhost.crt" --tls-key "$W/certs/localhost.key" --tls-ca "$W/certs/ca.crt" \
  --auth db1=agent:main --auth db2=agent:main --auth ops=admin > "$W/server.log" 2>&1 &
PIDS+=($!)

step "starting agents db1 (for pg1) and db2 (restore host)"
for a in db1:pg1:$PORT_PG1 db2:pg2:$PORT_PG2; do
  IFS=: read -r name dir port <<< "$a"
  pg "$NODE" --initial-old-space-size=64 dist/agent/main.js --server "127.0.0.1:$PORT_SERVER" --stanza main --pg-path "$W/$dir" \
    --pg-port "$port" --pg-socket-path "$W" --socket "$W/$name.sock" --spool-path "$W/spool-$name" --archive-async \
    --tls-cert "$W/certs/$name.crt" --tls-key "$W/certs/$name.key" --tls-ca "$W/certs/ca.crt" > "$W/agent-$name.log" 2>&1 &
  PIDS+=($!)
done
for name in db1 db2; do
  for _ in $(seq 50); do grep -q 'attached to repository server' "$W/agent-$name.log" && break; sleep 0.2; done
done

repoctl() {
  "$NODE" "$ROOT/dist/repo-server/repoctl/main.js" --server "127.0.0.1:$PORT_SERVER" \
    --tls-cert "$W/certs/ops.crt" --tls-key "$W/certs/ops.key" --tls-ca "$W/certs/ca.crt" "$@"
}
psql_at() { pg "$PGBIN/psql" -h "$W" -p "$1" -U postgres -d postgres -Atqc "$2"; }

step "repoctl stanza-create --stanza main"
repoctl stanza-create --stanza main

step "writing data: table quickstart with 1000 rows"
psql_at "$PORT_PG1" "create table quickstart as select g as id, md5(g::text) as v from generate_series(1, 1000) g"

step "repoctl backup --stanza main --type full --start-fast"
repoctl backup --stanza main --type full --start-fast

step "more data after the backup (replayed from the WAL archive on restore)"
# two calls: one -c string is one transaction, and a commit after pg_switch_wal() would land in the next segment
psql_at "$PORT_PG1" "insert into quickstart select g, 'after backup' from generate_series(1001, 1010) g"
psql_at "$PORT_PG1" "select pg_switch_wal()" >/dev/null
last=$(psql_at "$PORT_PG1" "select pg_walfile_name(pg_current_wal_lsn() - 1)")
for _ in $(seq 100); do
  [ "$(psql_at "$PORT_PG1" "select coalesce(last_archived_wal, '') >= '$last' from pg_stat_archiver")" = t ] && break; sleep 0.2
done

step "repoctl info"
repoctl info

step "repoctl restore --stanza main --host db2 --pg-path $W/pg2"
repoctl restore --stanza main --host db2 --pg-path "$W/pg2"

step "starting the restored cluster on port $PORT_PG2 (it replays the archived WAL, then promotes)"
pg "$PGBIN/pg_ctl" -D "$W/pg2" -l "$W/pg2.log" -o "-p $PORT_PG2 -c archive_mode=off" -w -t 120 start >/dev/null
for _ in $(seq 150); do [ "$(psql_at "$PORT_PG2" "select pg_is_in_recovery()")" = f ] && break; sleep 0.2; done
rows=$(psql_at "$PORT_PG2" "select count(*) from quickstart")
echo "restored cluster has $rows rows in table quickstart (expected 1010)"
[ "$rows" = 1010 ] || { echo "quickstart FAILED: the restored cluster does not have every row"; exit 1; }
step "quickstart done: everything is in $W (logs: server.log, agent-*.log)"
