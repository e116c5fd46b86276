#!/usr/bin/env bash
# Runs once, when the compose `postgres` service initializes its volume
# (mounted into /docker-entrypoint-initdb.d): one role and database each for Dagster and
# MLflow, with the passwords the other services are given.
set -euo pipefail
: "${DAGSTER_PG_PASSWORD:?set DAGSTER_PG_PASSWORD for the postgres service}"
: "${MLFLOW_PG_PASSWORD:?set MLFLOW_PG_PASSWORD for the postgres service}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE dagster LOGIN PASSWORD '${DAGSTER_PG_PASSWORD}';
CREATE DATABASE dagster OWNER dagster;
CREATE ROLE mlflow LOGIN PASSWORD '${MLFLOW_PG_PASSWORD}';
CREATE DATABASE mlflow OWNER mlflow;
SQL
