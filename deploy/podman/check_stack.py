"""What deploy/test-containers.sh asserts about the running compose stack, from inside it (a
container of the user-code image in the stack's network, so the service names resolve).

``pipeline MONTH``: waits for the MLflow server, the webserver, the code location it loads from
the code server and the daemon; launches ``prepare_month`` for the training month(s) and then
``taxi_pipeline`` for MONTH through the webserver's GraphQL API (``DagsterGraphQLClient``: the
run is queued, dequeued by the daemon, executed by the code server); asserts the runs
succeeded, their events are in the ``dagster`` Postgres database, and the MLflow server holds the
champion alias this run promoted. ``score URL``: POSTs one ride to a scoring server's
``/invocations`` and asserts one positive prediction.

Exit 1 with one line naming what failed; a failed run prints its step failures first.
"""

from __future__ import annotations

import os
import sys
import time

import psycopg2
import requests
from dagster import DagsterEventType
from dagster_graphql import DagsterGraphQLClient

WEBSERVER = ("webserver", 3000)
MLFLOW = "http://mlflow:5000"
LOCATION = "taxi_assets"
MODEL = "taxi-trip-duration-green"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


class CheckFailed(Exception):
    pass


def wait_for(what: str, probe, timeout: float, interval: float = 2.0):
    """Call ``probe`` until it returns something truthy; its value. CheckFailed after ``timeout``."""
    started, last = time.monotonic(), None
    while time.monotonic() - started < timeout:
        try:
            value = probe()
            if value:
                print(f"  {what}: ready after {time.monotonic() - started:.0f} s", flush=True)
                return value
        except (requests.RequestException, KeyError, TypeError, ValueError) as exc:
            last = exc
        time.sleep(interval)
    raise CheckFailed(f"{what} not ready within {timeout:.0f} s (last error: {last})")


def graphql(query: str) -> dict:
    response = requests.post(f"http://{WEBSERVER[0]}:{WEBSERVER[1]}/graphql", json={"query": query}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


def location_loaded() -> bool:
    entries = graphql(
        "{ workspaceOrError { ... on Workspace { locationEntries { name"
        " locationOrLoadError { __typename ... on PythonError { message } } } } } }"
    )["workspaceOrError"]["locationEntries"]
    (entry,) = [e for e in entries if e["name"] == LOCATION]
    kind = entry["locationOrLoadError"] and entry["locationOrLoadError"]["__typename"]
    if kind == "PythonError":
        print(f"  code location error (retrying): {entry['locationOrLoadError']['message'][:300]}", flush=True)
    return kind == "RepositoryLocation"


def daemons_healthy() -> bool:
    statuses = graphql("{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }")
    required = [s for s in statuses["instance"]["daemonHealth"]["allDaemonStatuses"] if s["required"]]
    return bool(required) and all(s["healthy"] for s in required)


def step_failures(run_id: str) -> list[str]:
    data = graphql(
        f'{{ logsForRun(runId: "{run_id}") {{ ... on EventConnection {{ events {{ __typename'
        " ... on ExecutionStepFailureEvent { stepKey error { message } }"
        " ... on RunFailureEvent { message } } } } }"
    )
    lines = []
    for event in data["logsForRun"].get("events", []):
        if event["__typename"] == "ExecutionStepFailureEvent":
            lines.append(f"{event['stepKey']}: {(event.get('error') or {}).get('message', '').strip()[:500]}")
        elif event["__typename"] == "RunFailureEvent":
            lines.append(f"run: {event['message']}")
    return lines


def launch(client: DagsterGraphQLClient, job: str, month: str, timeout: float) -> str:
    """Submit ``job`` for partition ``month``, wait for it to end; the run id of a success."""
    started = time.monotonic()
    run_id = client.submit_job_execution(job, repository_location_name=LOCATION, tags={"dagster/partition": month})
    print(f"  launched {job}[{month}]: run {run_id}", flush=True)
    status = None
    while time.monotonic() - started < timeout:
        status = client.get_run_status(run_id).value
        if status in TERMINAL:
            break
        time.sleep(5)
    seconds = time.monotonic() - started
    if status != "SUCCESS":
        for line in step_failures(run_id):
            print(f"    {line}", file=sys.stderr)
        raise CheckFailed(f"{job}[{month}] run {run_id} ended {status} after {seconds:.0f} s")
    print(f"  {job}[{month}] SUCCESS in {seconds:.0f} s", flush=True)
    return run_id


def events_in_postgres(run_id: str) -> None:
    """The run and its events are rows of the dagster database (not just the webserver's view)."""
    with psycopg2.connect(
        host=os.environ["DAGSTER_PG_HOST"], port=os.environ["DAGSTER_PG_PORT"], dbname=os.environ["DAGSTER_PG_DB"],
        user=os.environ["DAGSTER_PG_USER"], password=os.environ["DAGSTER_PG_PASSWORD"],
    ) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        row = cursor.fetchone()
        if row is None or row[0] != "SUCCESS":
            raise CheckFailed(f"runs table: run {run_id} has status {row and row[0]}")
        cursor.execute(
            "SELECT dagster_event_type, count(*) FROM event_logs WHERE run_id = %s GROUP BY 1", (run_id,)
        )
        counts = dict(cursor.fetchall())
        assets = {}
        for kind in (DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.ASSET_MATERIALIZATION):
            cursor.execute(
                "SELECT DISTINCT asset_key FROM event_logs WHERE run_id = %s AND dagster_event_type = %s", (run_id, kind.value)
            )
            assets[kind] = {key.strip('[]"') for (key,) in cursor.fetchall()}
    # Stored under the events' serialized names (RUN_SUCCESS is 'PIPELINE_SUCCESS').
    start, success = DagsterEventType.RUN_START.value, DagsterEventType.RUN_SUCCESS.value
    if counts.get(success) != 1 or counts.get(start) != 1:
        raise CheckFailed(f"event_logs of run {run_id}: {counts.get(start)} {start}, {counts.get(success)} {success}")
    planned, done = assets[DagsterEventType.ASSET_MATERIALIZATION_PLANNED], assets[DagsterEventType.ASSET_MATERIALIZATION]
    expected = {"raw_trips", "cleaned_trips", "training_set", "model_leaderboard", "champion_model", "trip_duration_predictions"}
    if not expected <= planned or done != planned:
        raise CheckFailed(f"event_logs of run {run_id}: planned but not materialized {sorted(planned - done)}, "
                          f"never planned {sorted(expected - planned)}")  # fmt: skip
    print(
        f"  Postgres event_logs: {sum(counts.values())} events of run {run_id}, all {len(done)} planned assets "
        "materialized", flush=True,
    )


def champion_in_mlflow(run_id: str, month: str) -> None:
    response = requests.get(
        f"{MLFLOW}/api/2.0/mlflow/registered-models/alias", params={"name": MODEL, "alias": "champion"}, timeout=30
    )
    if response.status_code != 200:
        raise CheckFailed(f"MLflow: no champion alias on {MODEL} (HTTP {response.status_code}: {response.text[:200]})")
    version = response.json()["model_version"]
    tags = {t["key"]: t["value"] for t in version.get("tags", [])}
    if tags.get("dagster.run_id") != run_id or tags.get("dagster.partition") != month:
        raise CheckFailed(f"MLflow: champion version {version['version']} was not promoted by run {run_id}: {tags}")
    if tags.get("champion_month") != month:
        raise CheckFailed(f"MLflow: champion version {version['version']} is not the champion of {month}: {tags}")
    print(
        f"  MLflow: {MODEL}@champion = version {version['version']} ({tags.get('estimator')}, champion of "
        f"{tags.get('champion_month')}, RMSE {tags.get('rmse')} on {tags.get('validation_month')})", flush=True,
    )


def pipeline(month: str, training_months: list[str]) -> None:
    wait_for("MLflow server", lambda: requests.get(f"{MLFLOW}/health", timeout=5).ok, 300)
    wait_for("webserver", lambda: graphql("{ version }")["version"], 300)
    wait_for(f"code location {LOCATION}", location_loaded, 300, interval=5)
    wait_for("daemon", daemons_healthy, 300, interval=5)
    client = DagsterGraphQLClient(WEBSERVER[0], port_number=WEBSERVER[1])
    for training_month in training_months:
        launch(client, "prepare_month", training_month, 900)
    run_id = launch(client, "taxi_pipeline", month, 1800)
    events_in_postgres(run_id)
    champion_in_mlflow(run_id, month)


def score(url: str) -> None:
    base = url.rstrip("/")
    wait_for("scoring server", lambda: requests.get(f"{base}/ping", timeout=5).ok, 300)
    ride = {"PULocationID": 236, "DOLocationID": 239, "trip_distance": 1.98}
    response = requests.post(f"{base}/invocations", json={"dataframe_records": [ride]}, timeout=60)
    if response.status_code != 200:
        raise CheckFailed(f"POST {base}/invocations: HTTP {response.status_code}: {response.text[:300]}")
    predictions = response.json()["predictions"]
    if len(predictions) != 1 or not 0 < float(predictions[0]) < 180:
        raise CheckFailed(f"POST {base}/invocations answered {predictions!r}, not one duration in minutes")
    print(f"  POST /invocations {ride} -> {predictions[0]:.2f} minutes", flush=True)


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["pipeline"] and len(argv) >= 2:
            pipeline(argv[1], argv[2:])
        elif argv[:1] == ["score"] and len(argv) == 2:
            score(argv[1])
        else:
            print("usage: check_stack.py pipeline MONTH [TRAINING_MONTH...] | score URL", file=sys.stderr)
            return 2
    except CheckFailed as exc:
        print(f"check failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
