#!/usr/bin/env bash
# Installs what pgrepo's quickstart and tests need from Debian's packages, only when missing:
# PostgreSQL 15 (server binaries under /usr/lib/postgresql/15/bin), openssl, the C/C++ tool
# chain npm ci uses to build the zstd and lz4 codecs (zstd-napi, lz4) from their sources, and
# what the benchmark's smoke test compares against and measures with: pgbackrest, /usr/bin/time.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15 postgresql-client-15)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v pgbackrest >/dev/null 2>&1 || need+=(pgbackrest)
[ -x /usr/bin/time ] || need+=(time)

if [ "${#need[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${need[*]}"
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# Debian's package starts a cluster of its own on 5432; pgrepo's quickstart and tests run their own.
if command -v pg_ctlcluster >/dev/null 2>&1; then
  pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
fi
