#!/usr/bin/env bash
# Entrypoint of deploy/podman/Dockerfile.postgres: the part of the official postgres image's
# docker-entrypoint.sh that deploy/docker-compose.yml relies on. On an empty $PGDATA: initdb
# with POSTGRES_USER / POSTGRES_PASSWORD, then each /docker-entrypoint-initdb.d/*.sh (run if
# executable, sourced otherwise) and *.sql against a server listening on the socket only;
# then the server in the foreground, listening on all addresses with password authentication.
set -Eeuo pipefail
shopt -s nullglob

: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (as for the official postgres image)}"
export POSTGRES_USER=${POSTGRES_USER:-postgres}
export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" > /dev/null
  printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start > /dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -c "CREATE DATABASE \"$POSTGRES_DB\";"
  fi
  for script in /docker-entrypoint-initdb.d/*; do
    case "$script" in
      *.sh) echo "running $script"; if [ -x "$script" ]; then "$script"; else . "$script"; fi ;;
      *.sql) echo "running $script"; psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f "$script" ;;
      *) echo "ignoring $script" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
  echo "PostgreSQL init process complete; ready for start up."
fi

if [ "${1:-}" = postgres ]; then
  shift
  exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"
