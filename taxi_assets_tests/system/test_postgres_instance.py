"""The production instance (deploy/dagster.yaml) on a real Postgres: the CLI materializes two
months of data, a training set and a model; runs, materialization events and MLflow runs land
in Postgres, and a submitted run waits in the QueuedRunCoordinator's queue.

The cluster comes from deploy/postgres/start-local-postgres.sh (idempotent: CI's .ci/run starts
it first, then this fixture only reuses it; when this session started it, it stops it again). Each session works in its own pair of fresh
databases, dropped at the end, so repeated runs never see each other's runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

REPO = Path(__file__).resolve().parents[2]
START = REPO / "deploy" / "postgres" / "start-local-postgres.sh"
STOP = REPO / "deploy" / "postgres" / "stop-local-postgres.sh"
DAGSTER = str(Path(sys.executable).parent / "dagster")
EXPERIMENT = "taxi-trip-duration-green"


def parse_exports(text: str) -> dict[str, str]:
    pairs = [line.removeprefix("export ").split("=", 1) for line in text.splitlines() if line.startswith("export ")]
    return dict(pairs)


@pytest.fixture(scope="session")
def local_postgres():
    """Connection settings of the local cluster, pointing at per-session databases."""
    done = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{START.name} failed:\n{done.stderr[-3000:]}"
    env = parse_exports(done.stdout)
    assert set(env) == {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB", "MLFLOW_BACKEND_STORE_URI"}
    suffix = uuid.uuid4().hex[:10]
    dagster_db, mlflow_db = f"dagster_test_{suffix}", f"mlflow_test_{suffix}"
    mlflow_password = env["MLFLOW_BACKEND_STORE_URI"].split("://mlflow:", 1)[1].split("@", 1)[0]
    logins = {
        dagster_db: ("dagster", env["DAGSTER_PG_PASSWORD"], "dagster"),
        mlflow_db: ("mlflow", mlflow_password, "mlflow"),
    }

    def admin(db_home: str, user: str, password: str, sql: str) -> None:
        conn = psycopg2.connect(host="127.0.0.1", port=env["DAGSTER_PG_PORT"], user=user, password=password, dbname=db_home)
        conn.autocommit = True  # CREATE/DROP DATABASE refuse to run inside a transaction
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    for name, (user, password, home) in logins.items():
        admin(home, user, password, f"CREATE DATABASE {name}")
    settings = {
        **env,
        "DAGSTER_PG_DB": dagster_db,
        "MLFLOW_PG_PASSWORD": mlflow_password,
        "MLFLOW_TRACKING_URI": f"postgresql+psycopg2://mlflow:{mlflow_password}@127.0.0.1:{env['DAGSTER_PG_PORT']}/{mlflow_db}",
    }
    yield settings
    for name, (user, password, home) in logins.items():
        admin(home, user, password, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    if "starting server" in done.stderr:  # this session started the server: stop it again
        stopped = subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr[-2000:]


@pytest.fixture(scope="session")
def deployment(local_postgres, tmp_path_factory, shared_data):
    """A DAGSTER_HOME holding deploy/dagster.yaml, and the environment of a code process."""
    root = tmp_path_factory.mktemp("pg-deployment")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        **local_postgres,
        "DAGSTER_HOME": str(home),
        "TAXI_DATA_ROOT": str(root / "data"),
        "TAXI_DATA_SOURCE": str(shared_data),
        "MLFLOW_ARTIFACT_LOCATION": (root / "mlflow-artifacts").as_uri(),
        # One process per run: no per-step interpreter start-up on a small CI machine.
        "TAXI_EXECUTOR": "in_process",
    }
    return home, env


@pytest.fixture
def instance(deployment, monkeypatch):
    home, env = deployment
    for key in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"):
        monkeypatch.setenv(key, env[key])
    with dg.DagsterInstance.from_config(str(home)) as inst:
        yield inst


def dagster_cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([DAGSTER, *args], env=env, capture_output=True, text=True, timeout=600, cwd=env["TAXI_DATA_ROOT"].rsplit("/", 1)[0])
    assert done.returncode == 0, f"dagster {' '.join(args)} failed:\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="session")
def materialized(deployment):
    """raw_trips + cleaned_trips for 2024-01 and 2024-02 (in parallel), then the 2024-02
    training set and linear regression, each through the CLI against the Postgres instance."""
    _, env = deployment
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(
            lambda month: dagster_cli(env, "asset", "materialize", "-m", "taxi_assets.definitions", "--select", "raw_trips,cleaned_trips", "--partition", month),
            ["2024-01", "2024-02"],
        ))
    config = {"ops": {"linear_regression": {"config": {"max_evaluations": 1}}}}
    dagster_cli(
        env, "asset", "materialize", "-m", "taxi_assets.definitions", "--select", "training_set,linear_regression",
        "--partition", "2024-02", "--config-json", json.dumps(config),
    )
    return env


def query(env: dict, sql: str) -> list[tuple]:
    conn = psycopg2.connect(
        host=env["DAGSTER_PG_HOST"], port=env["DAGSTER_PG_PORT"], user=env["DAGSTER_PG_USER"],
        password=env["DAGSTER_PG_PASSWORD"], dbname=env["DAGSTER_PG_DB"],
    )
    with conn, conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall()
    conn.close()
    return rows


def test_runs_and_materializations_are_in_postgres(materialized, instance):
    env = materialized
    # Straight from the tables: three successful runs, one materialization per asset partition.
    statuses = query(env, "SELECT status FROM runs")
    assert sorted(s for (s,) in statuses) == ["SUCCESS", "SUCCESS", "SUCCESS"]
    events = query(
        env,
        "SELECT asset_key, partition FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'",
    )
    assert sorted((json.loads(key)[0], partition) for key, partition in events) == [
        ("cleaned_trips", "2024-01"), ("cleaned_trips", "2024-02"),
        ("linear_regression", "2024-02"),
        ("raw_trips", "2024-01"), ("raw_trips", "2024-02"),
        ("training_set", "2024-02"),
    ]
    # And through Dagster's API on the same instance, as the webserver reads it.
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    runs = instance.get_runs()
    assert {run.tags.get("dagster/partition") for run in runs} == {"2024-01", "2024-02"}
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    ts = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("training_set"), asset_partitions=["2024-02"]), limit=1
    ).records[0].asset_materialization
    assert ts.metadata["train_rows"].value == 54_378 and ts.metadata["validation_rows"].value == 51_492
    assert instance.get_materialized_partitions(dg.AssetKey("raw_trips")) == {"2024-01", "2024-02"}


def test_mlflow_runs_are_in_postgres(materialized):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=materialized["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None, f"no MLflow experiment {EXPERIMENT} in the Postgres store"
    assert experiment.artifact_location == materialized["MLFLOW_ARTIFACT_LOCATION"]
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.estimator = 'linear_regression'")
    by_id = {run.info.run_id: run for run in runs}
    # The model run, and under it one child run per hyperopt trial (max_evaluations=1 -> one).
    (model_run,) = [run for run in runs if run.data.tags.get("mlflow.parentRunId") not in by_id]
    (trial,) = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == model_run.info.run_id]
    assert model_run.info.status == "FINISHED" and trial.info.status == "FINISHED"
    assert model_run.data.tags["dagster.partition"] == "2024-02"
    metrics = model_run.data.metrics
    assert {"rmse", "baseline_rmse"} <= set(metrics), sorted(metrics)
    assert 0 < metrics["rmse"] < metrics["baseline_rmse"]
    assert trial.data.metrics["selection_rmse"] == pytest.approx(metrics["selection_rmse"], rel=1e-6)
    everything = client.search_runs([experiment.experiment_id])
    assert {run.info.status for run in everything} == {"FINISHED"}


def test_submitted_run_waits_in_the_queue(deployment, instance):
    """`dagster job launch` goes through the instance's QueuedRunCoordinator: with no daemon
    running, the run is stored QUEUED with its tags (the daemon would launch it within the
    limits), never executed by the CLI itself."""
    coordinator = instance.run_coordinator
    assert isinstance(coordinator, dg.QueuedRunCoordinator)
    queue = coordinator.get_run_queue_config()
    assert queue.max_concurrent_runs == 6
    assert {"key": "taxi/workload", "value": "training", "limit": 2} in queue.tag_concurrency_limits

    _, env = deployment
    run_id = str(uuid.uuid4())
    tags = {"dagster/partition": "2024-01", "taxi/workload": "training"}
    dagster_cli(env, "job", "launch", "-m", "taxi_assets.definitions", "-j", "ingest_month", "--run-id", run_id, "--tags", json.dumps(tags))
    run = instance.get_run_by_id(run_id)
    try:
        assert run.status == dg.DagsterRunStatus.QUEUED
        assert run.tags["taxi/workload"] == "training" and run.tags["dagster/partition"] == "2024-01"
        events = [e.event_log_entry.dagster_event.event_type for e in instance.get_records_for_run(run_id).records]
        assert events[-1] == dg.DagsterEventType.RUN_ENQUEUED
        started = {dg.DagsterEventType.RUN_START, dg.DagsterEventType.STEP_START, dg.DagsterEventType.ASSET_MATERIALIZATION}
        assert not started & set(events), events
    finally:
        instance.delete_run(run_id)
