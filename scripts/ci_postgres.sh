#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1 for tests/test_db_postgres.py, print its URL.
#
#   export LEDGFORMER_TEST_PG_URL="$(scripts/ci_postgres.sh)"   # install if missing, start, create db
#   scripts/ci_postgres.sh stop                                 # stop it (the data dir is kept)
#
# Installs the Debian package `postgresql` when no server binaries are found (needs root and a
# package mirror). The cluster lives in $LEDGFORMER_PG_DIR (default /tmp/ledgformer-pg), listens on
# 127.0.0.1:$LEDGFORMER_PG_PORT (default 55432) only, trusts local connections (throwaway, test
# use only) and runs with fsync=off for speed: a server crash may lose it, a client crash never.
# Everything but the URL goes to stderr. Running it again while the cluster is up reuses it.
set -euo pipefail

DIR="${LEDGFORMER_PG_DIR:-/tmp/ledgformer-pg}"
PORT="${LEDGFORMER_PG_PORT:-55432}"
USER_NAME=ledgformer
DB_NAME=ledgformer_test

log() { echo "ci_postgres: $*" >&2; }

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  command -v pg_ctl >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1 && { dirname "$(command -v pg_ctl)"; return 0; }
  return 1
}

BIN="$(find_bindir || true)"
if [ -z "$BIN" ]; then
  [ "$(id -u)" = 0 ] || { log "PostgreSQL server binaries not found and not root: install package 'postgresql'"; exit 1; }
  log "installing postgresql (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  BIN="$(find_bindir)"
fi

# initdb and the server refuse to run as root: use the package's postgres user then
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

if [ "${1:-}" = stop ]; then
  as_pg "$BIN/pg_ctl" -D "$DIR" -m fast -w stop >&2 || true
  exit 0
fi

if ! as_pg "$BIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
  if [ ! -f "$DIR/PG_VERSION" ]; then
    mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres: "$DIR"
    chmod 700 "$DIR"
    log "initdb $DIR"
    as_pg "$BIN/initdb" -D "$DIR" -U "$USER_NAME" -A trust --no-sync -E UTF8 >/dev/null
  fi
  log "starting PostgreSQL ($BIN) on 127.0.0.1:$PORT"
  as_pg "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c full_page_writes=off" start >&2
fi

PSQL_ARGS=(-h 127.0.0.1 -p "$PORT" -U "$USER_NAME")
if ! "$BIN/psql" "${PSQL_ARGS[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'" \
    | grep -q 1; then
  "$BIN/createdb" "${PSQL_ARGS[@]}" "$DB_NAME"
fi
echo "postgresql+psycopg://$USER_NAME@127.0.0.1:$PORT/$DB_NAME"
