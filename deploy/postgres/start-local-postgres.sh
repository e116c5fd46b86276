#!/usr/bin/env bash
# Start a throwaway local PostgreSQL cluster for the production-shaped instance: Dagster's
# run/event-log/schedule storage and MLflow's tracking store, each in its own database.
#
# Usage: deploy/postgres/start-local-postgres.sh [DIR] [PORT]
#   DIR   cluster folder (default $TAXI_PG_DIR or /tmp/taxi-postgres); holds data/, run/ (socket),
#         postgres.log and env.sh. Only ever a dedicated folder: it is chowned to `postgres`.
#   PORT  TCP port on 127.0.0.1 (default $TAXI_PG_PORT or 5433, beside a system cluster on 5432)
# Passwords: $DAGSTER_PG_PASSWORD (default dagster_local), $MLFLOW_PG_PASSWORD (default mlflow_local).
#
# Installs Debian's `postgresql` if no server binaries exist (root only). Idempotent: a second
# run reuses the cluster (starting it if it was stopped) and re-applies the roles, so it is
# cheap enough for every CI job and test session to call. Progress goes to stderr; stdout is only
# the `export` lines, so `eval "$(deploy/postgres/start-local-postgres.sh)"` configures a shell.
# The roles get CREATEDB so test suites can create and drop per-session databases: this cluster
# is for development and CI, never for shared data.
# The MLflow URI names the psycopg2 driver: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3,
# which this project does not install.
set -euo pipefail
# runuser, pg_ctl helpers and apt live in sbin folders that a minimal PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

DIR="${1:-${TAXI_PG_DIR:-/tmp/taxi-postgres}}"
PORT="${2:-${TAXI_PG_PORT:-5433}}"
DAGSTER_PASSWORD="${DAGSTER_PG_PASSWORD:-dagster_local}"
MLFLOW_PASSWORD="${MLFLOW_PG_PASSWORD:-mlflow_local}"

log() { echo "start-local-postgres: $*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$PORT" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$PORT'"
[[ "$DIR" = /* ]] || DIR="$(pwd)/$DIR"
case "$DIR" in
  / | /root | /home | /tmp | /var | /usr | /etc) die "DIR=$DIR is not a dedicated folder; pass e.g. /tmp/taxi-postgres" ;;
esac
for pw in "$DAGSTER_PASSWORD" "$MLFLOW_PASSWORD"; do
  [[ "$pw" =~ ^[A-Za-z0-9_.-]+$ ]] || die "passwords may only hold letters, digits, '_', '.', '-' (they go into URLs and SQL)"
done

find_bindir() {
  # Newest installed major version (Debian keeps each under /usr/lib/postgresql/<major>/bin).
  local candidate best=""
  for candidate in /usr/lib/postgresql/*/bin; do
    [[ -x "$candidate/initdb" && -x "$candidate/pg_ctl" ]] && best="$candidate"
  done
  [[ -n "$best" ]] && printf '%s\n' "$best"
  return 0
}

BINDIR="$(find_bindir)"
if [[ -z "$BINDIR" ]]; then
  [[ "$(id -u)" -eq 0 ]] || die "no PostgreSQL server under /usr/lib/postgresql; run as root to install it, or: apt-get install -y postgresql"
  log "installing Debian's postgresql (apt-get update + install)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
  BINDIR="$(find_bindir)"
  [[ -n "$BINDIR" ]] || die "apt-get installed postgresql but no initdb/pg_ctl appeared under /usr/lib/postgresql/*/bin"
fi

# The server refuses to run as root: as root everything runs as the `postgres` system user
# (created by the Debian package); as any other user it runs as that user.
if [[ "$(id -u)" -eq 0 ]]; then
  id postgres >/dev/null 2>&1 || die "user 'postgres' is missing; reinstall the package: apt-get install --reinstall postgresql-common"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

mkdir -p "$DIR"
if [[ "$(id -u)" -eq 0 ]]; then
  if [[ -n "$(ls -A "$DIR")" && ! -e "$DIR/.taxi-postgres" ]]; then
    die "$DIR is not empty and was not made by this script; pass an empty or new folder"
  fi
  touch "$DIR/.taxi-postgres"
  chown -R postgres:postgres "$DIR"
  as_pg test -x "$DIR" || die "user postgres cannot reach $DIR (a parent folder is private); pick a folder under /tmp"
fi
touch "$DIR/.taxi-postgres"

# One caller at a time (parallel CI steps or test sessions share the cluster).
exec 9>"$DIR/.lock"
flock 9

DATA="$DIR/data"
RUN="$DIR/run"
as_pg mkdir -p "$RUN"

if [[ ! -f "$DATA/PG_VERSION" ]]; then
  log "initializing cluster in $DATA ($("$BINDIR/postgres" --version))"
  as_pg "$BINDIR/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1 \
    || die "initdb failed, see $DIR/initdb.log"
  # Settings live in the cluster, so a plain `pg_ctl start` later keeps them.
  as_pg tee -a "$DATA/postgresql.conf" >/dev/null <<EOF

# taxi-assets local cluster
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$RUN'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
fi

running_port() {
  # Line 4 of postmaster.pid is the port of a live server.
  if as_pg "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    sed -n 4p "$DATA/postmaster.pid"
  fi
}

current="$(running_port)"
if [[ -n "$current" && "$current" != "$PORT" ]]; then
  die "the cluster in $DIR already runs on port $current, not $PORT; stop it first: deploy/postgres/stop-local-postgres.sh $DIR"
fi
if [[ -z "$current" ]]; then
  log "starting server on 127.0.0.1:$PORT (log: $DIR/postgres.log)"
  # -o overrides the port in postgresql.conf when a reused cluster is started on a new port;
  # 9>&- keeps the lock descriptor out of the long-lived server (else the next caller waits forever).
  as_pg "$BINDIR/pg_ctl" -D "$DATA" -l "$DIR/postgres.log" -w -t 60 -o "-p $PORT" start >/dev/null 9>&- \
    || die "server did not start on port $PORT (port taken?); see $DIR/postgres.log"
else
  log "reusing server on 127.0.0.1:$PORT"
fi

# Roles and databases, idempotently; passwords are (re)set every time so they match the env.
as_pg "$BINDIR/psql" -X -q -h "$RUN" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT format('CREATE ROLE %I LOGIN CREATEDB', name)
  FROM (VALUES ('dagster'), ('mlflow')) AS wanted(name)
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) \gexec
ALTER ROLE dagster WITH LOGIN CREATEDB PASSWORD '$DAGSTER_PASSWORD';
ALTER ROLE mlflow WITH LOGIN CREATEDB PASSWORD '$MLFLOW_PASSWORD';
SELECT format('CREATE DATABASE %I OWNER %I', name, name)
  FROM (VALUES ('dagster'), ('mlflow')) AS wanted(name)
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = name) \gexec
SQL

ENV_LINES="export DAGSTER_PG_HOST=127.0.0.1
export DAGSTER_PG_PORT=$PORT
export DAGSTER_PG_USER=dagster
export DAGSTER_PG_PASSWORD=$DAGSTER_PASSWORD
export DAGSTER_PG_DB=dagster
export MLFLOW_BACKEND_STORE_URI=postgresql+psycopg2://mlflow:$MLFLOW_PASSWORD@127.0.0.1:$PORT/mlflow"
printf '%s\n' "$ENV_LINES" >"$DIR/env.sh"
log "ready; connection settings also in $DIR/env.sh"
printf '%s\n' "$ENV_LINES"
