#!/usr/bin/env bash
# Stop the throwaway cluster started by start-local-postgres.sh.
#
# Usage: deploy/postgres/stop-local-postgres.sh [DIR] [--purge]
#   DIR      cluster folder (default $TAXI_PG_DIR or /tmp/taxi-postgres)
#   --purge  also delete DIR (all Dagster and MLflow metadata in it)
# Stopping a cluster that is not running is not an error.
set -euo pipefail
# runuser, pg_ctl helpers and apt live in sbin folders that a minimal PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

PURGE=0
ARGS=()
for arg in "$@"; do
  if [[ "$arg" == "--purge" ]]; then PURGE=1; else ARGS+=("$arg"); fi
done
DIR="${ARGS[0]:-${TAXI_PG_DIR:-/tmp/taxi-postgres}}"

log() { echo "stop-local-postgres: $*" >&2; }

if [[ ! -e "$DIR/.taxi-postgres" ]]; then
  log "no cluster made by start-local-postgres.sh in $DIR; nothing to stop"
  exit 0
fi

BINDIR=""
for candidate in /usr/lib/postgresql/*/bin; do
  [[ -x "$candidate/pg_ctl" ]] && BINDIR="$candidate"
done
[[ -n "$BINDIR" ]] || { log "error: no pg_ctl under /usr/lib/postgresql/*/bin"; exit 1; }

if [[ "$(id -u)" -eq 0 ]]; then
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

if [[ -f "$DIR/data/PG_VERSION" ]] && as_pg "$BINDIR/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
  as_pg "$BINDIR/pg_ctl" -D "$DIR/data" -m fast -w -t 60 stop >/dev/null
  log "stopped the server in $DIR"
else
  log "the server in $DIR is not running"
fi

if [[ "$PURGE" -eq 1 ]]; then
  rm -rf -- "$DIR"
  log "deleted $DIR"
fi
