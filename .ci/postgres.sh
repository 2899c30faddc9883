#!/usr/bin/env bash
# Start a PostgreSQL server on loopback for the test suite and print its SQLAlchemy URL.
#
#   export NETREVEAL_TEST_POSTGRES_URL="$(.ci/postgres.sh)"
#
# Installs the Debian "postgresql" package when no server is installed (apt-get, sudo unless root),
# then either starts a Debian cluster (root or sudo: pg_ctlcluster) or, as a plain user without
# sudo, runs initdb + pg_ctl in a folder of its own. Creates the role and database when missing.
# Idempotent: a second run finds everything in place and prints the same URL. Progress goes to
# stderr; stdout carries the URL only.
# Settings (environment): NETREVEAL_PG_USER, NETREVEAL_PG_PASSWORD, NETREVEAL_PG_DB,
# NETREVEAL_PG_PORT (own cluster only, default 54329), NETREVEAL_PG_DIR (own cluster folder).
set -euo pipefail

PG_USER="${NETREVEAL_PG_USER:-netreveal}"
PG_PASSWORD="${NETREVEAL_PG_PASSWORD:-netreveal}"
PG_DB="${NETREVEAL_PG_DB:-netreveal_test}"
say() { echo "postgres.sh: $*" >&2; }

# Everything up to the final URL runs with stdout sent to stderr: the commands' own messages (e.g.
# pg_ctlcluster's "Removed stale pid file.") must not reach the caller, who reads the URL only.
{

# ROOT=1 when we may administer the machine: as root, or through password-less sudo
if [ "$(id -u)" -eq 0 ]; then ROOT=1; SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then ROOT=1; SUDO="sudo -n"
else ROOT=0; SUDO=""; fi

pg_bindir() {
  local v
  v="$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$v" ] && [ -x "/usr/lib/postgresql/$v/bin/initdb" ] && echo "/usr/lib/postgresql/$v/bin"
}

# 1. the server package
if [ -z "$(pg_bindir || true)" ]; then
  [ "$ROOT" = 1 ] || { say "PostgreSQL is not installed and there is no root or sudo to install it"; exit 1; }
  say "installing the Debian postgresql package"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
fi
BIN="$(pg_bindir)"
VERSION="$(basename "$(dirname "$BIN")")"

sql_quote() { printf "%s" "$1" | sed "s/'/''/g"; }
ROLE_SQL="DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$(sql_quote "$PG_USER")') THEN
    CREATE ROLE \"$PG_USER\" LOGIN PASSWORD '$(sql_quote "$PG_PASSWORD")';
  ELSE
    ALTER ROLE \"$PG_USER\" LOGIN PASSWORD '$(sql_quote "$PG_PASSWORD")';
  END IF;
END \$\$;"
DB_EXISTS_SQL="SELECT 1 FROM pg_database WHERE datname = '$(sql_quote "$PG_DB")'"

if [ "$ROOT" = 1 ] && command -v pg_ctlcluster >/dev/null 2>&1; then
  # 2a. a Debian cluster, run by the postgres user
  if ! pg_lsclusters -h 2>/dev/null | awk -v v="$VERSION" '$1 == v' | grep -q .; then
    say "creating cluster $VERSION/main"
    $SUDO pg_createcluster "$VERSION" main >/dev/null
  fi
  read -r _ CLUSTER PORT STATUS _ < <(pg_lsclusters -h | awk -v v="$VERSION" '$1 == v' | head -n 1)
  if [ "$STATUS" != "online" ]; then
    say "starting cluster $VERSION/$CLUSTER on port $PORT"
    $SUDO pg_ctlcluster "$VERSION" "$CLUSTER" start
  fi
  as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/bash -c "$(printf '%q ' "$@")"
    else $SUDO -u postgres "$@"; fi
  }
  psql_admin() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres "$@"; }
  HOST=127.0.0.1
else
  # 2b. our own cluster in a folder of ours, as the current (non-root) user
  PORT="${NETREVEAL_PG_PORT:-54329}"
  DIR="${NETREVEAL_PG_DIR:-${TMPDIR:-/tmp}/netreveal-postgres-$(id -u)}"
  if [ ! -f "$DIR/data/PG_VERSION" ]; then
    say "initialising a cluster in $DIR"
    mkdir -p "$DIR"
    "$BIN/initdb" -D "$DIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >/dev/null 2>&1 || "$BIN/initdb" -D "$DIR/data" -U postgres \
      --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale >/dev/null
  fi
  if ! "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
    say "starting the cluster in $DIR on port $PORT"
    "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR" start >/dev/null
  fi
  psql_admin() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres -d postgres "$@"; }
  HOST=127.0.0.1
fi

# 3. role and database (owned by the role, so tests may create schemas in it)
for _ in $(seq 1 30); do psql_admin -c "SELECT 1" >/dev/null 2>&1 && break; sleep 1; done
psql_admin -c "$ROLE_SQL" >/dev/null
if [ -z "$(psql_admin -tAc "$DB_EXISTS_SQL")" ]; then
  say "creating database $PG_DB"
  psql_admin -c "CREATE DATABASE \"$PG_DB\" OWNER \"$PG_USER\"" >/dev/null
fi

} >&2

urlencode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
echo "postgresql+psycopg://$(urlencode "$PG_USER"):$(urlencode "$PG_PASSWORD")@$HOST:$PORT/$(urlencode "$PG_DB")"
