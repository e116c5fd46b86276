"""A locked embedded MLflow store is transient (``registry/tracking.py``): another *process*
holds a real SQLite lock (``BEGIN EXCLUSIVE`` on ``mlflow.db``, as a second run's write, ``mlflow
ui`` or a backup would) while a real model step, or the store operations a step does, runs.

Before: ``linear_regression[2024-02]`` failed 6 s into a 60-s lock with a raw
``sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked`` and was not
retried. Now a lock within the bound is waited out; a longer one fails naming the store and the
step is retried as an outage.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from mlflow.tracking import MlflowClient

from taxi_assets.defs.models.assets import model_assets
from taxi_assets.defs.partitions import monthly_partitions
from taxi_assets.defs.resources.io_manager import TaxiIOManager
from taxi_assets.defs.resources.tracking import MLFLOW_RESOURCE_KEY, MlflowTracking
from taxi_assets.ml.tuning import TrialResult
from taxi_assets.registry.tracking import DEFAULT_LOCK_TIMEOUT_SECONDS, TrackingStore, TrackingStoreUnavailable
from taxi_assets.settings import SETTINGS

EXPERIMENT = "taxi-trip-duration-lock-test"
ONE_TRIAL = {"ops": {"linear_regression": {"config": {"max_evaluations": 1}}}}

LOCKER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
print("released", flush=True)
"""


class Lock:
    """``BEGIN EXCLUSIVE`` on ``db`` held by another Python process for ``seconds``."""

    def __init__(self, db: Path, seconds: float):
        self.process = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(db), str(seconds)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout.readline().strip() == "locked"
        self.taken = time.monotonic()

    def release_time(self, timeout: float = 120) -> float:
        """Seconds from taking the lock until the holder released it."""
        assert self.process.stdout.readline().strip() == "released"
        self.process.wait(timeout)
        return time.monotonic() - self.taken

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


pytestmark = pytest.mark.usefixtures("restore_mlflow_globals")  # tests here set the process-wide tracking URI


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lock-template")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    TrackingStore(uri, EXPERIMENT, (root / "artifacts").as_uri()).experiment_id()
    return root / "mlflow.db"


@pytest.fixture
def store_root(tmp_path, migrated_db) -> Path:
    (tmp_path / "mlflow").mkdir()
    shutil.copyfile(migrated_db, tmp_path / "mlflow" / "mlflow.db")
    return tmp_path


def _uri(root: Path) -> str:
    return f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"


def _training_set_stub(ts):
    @dg.asset(name="training_set", partitions_def=monthly_partitions)
    def training_set():
        return ts

    return training_set


def _materialize(ts, root: Path, **resource_config):
    linear = next(a for a in model_assets if a.key == dg.AssetKey("linear_regression"))
    tracking = MlflowTracking(
        tracking_uri=_uri(root), experiment_name=EXPERIMENT, artifact_location=(root / "artifacts").as_uri(), **resource_config
    )
    return dg.materialize(
        [_training_set_stub(ts), linear],
        partition_key="2024-02",
        resources={MLFLOW_RESOURCE_KEY: tracking, "io_manager": TaxiIOManager(data_root=str(root / "outputs"))},
        run_config=ONE_TRIAL,
        raise_on_error=False,
    )


def test_the_default_bound_is_documented():
    assert DEFAULT_LOCK_TIMEOUT_SECONDS == 45
    assert MlflowTracking(tracking_uri="sqlite:///x.db", experiment_name="e").lock_timeout_seconds == 45
    assert TrackingStore("sqlite:////tmp/x.db", "e").store_uri == "sqlite:////tmp/x.db?timeout=45"
    assert TrackingStore("sqlite:////tmp/x.db?timeout=5", "e").store_uri == "sqlite:////tmp/x.db?timeout=5"
    assert TrackingStore("http://127.0.0.1:5000", "e").store_uri == "http://127.0.0.1:5000"


def test_a_model_step_waits_out_a_20_second_lock(store_root, reference_training_set):
    """The lock is taken before the step starts: every store operation of the step (opening the
    store, the experiment, the run, the trial, the model, the registered version) meets it."""
    lock = Lock(store_root / "mlflow" / "mlflow.db", 20)
    try:
        result = _materialize(reference_training_set, store_root)
        held = lock.release_time()
    finally:
        lock.stop()
    assert result.success
    assert held >= 19.5
    assert [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"] == []
    client = MlflowClient(tracking_uri=_uri(store_root))
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]  # the model run and its trial
    assert client.get_model_version("taxi-trip-duration-green-linear_regression", "1").status == "READY"


def test_a_lock_longer_than_mlflows_own_wait_is_waited_out(store_root):
    """MLflow's sessions wait 20 s for SQLite, then fail; the store retries within its bound."""
    store = TrackingStore(_uri(store_root), EXPERIMENT, (store_root / "artifacts").as_uri())
    with store.model_run(estimator="linear_regression", tags={}, run_name="locked") as run:
        lock = Lock(store_root / "mlflow" / "mlflow.db", 28)
        try:
            started = time.monotonic()
            child = run.log_trial(TrialResult(index=1, total=1, params={"a": 1}, loss=5.0, best_loss=5.0, seconds=0.1))
            waited = time.monotonic() - started
        finally:
            lock.stop()
    assert 25 <= waited < DEFAULT_LOCK_TIMEOUT_SECONDS
    client = MlflowClient(tracking_uri=_uri(store_root))
    assert client.get_run(child).data.metrics["selection_rmse"] == 5.0
    assert client.get_run(run.run_id).info.status == "FINISHED"


def test_a_lock_past_the_bound_is_a_named_outage(store_root):
    store = TrackingStore(_uri(store_root), EXPERIMENT, (store_root / "artifacts").as_uri(), lock_timeout=3)
    lock = Lock(store_root / "mlflow" / "mlflow.db", 300)
    try:
        started = time.monotonic()
        with pytest.raises(TrackingStoreUnavailable) as caught:
            with store.model_run(estimator="linear_regression", tags={}, run_name="locked"):
                pass
        seconds = time.monotonic() - started
    finally:
        lock.stop()
    message = str(caught.value)
    assert message.startswith(f"MLflow tracking store {_uri(store_root)} is locked by another writer")
    assert "database is locked" in message and "stayed locked for" in message
    assert "Traceback" not in message and "sqlalchemy" not in message.lower()
    assert 3 <= seconds < 30


def test_a_step_meeting_a_lock_past_the_bound_is_retried(store_root, reference_training_set):
    lock = Lock(store_root / "mlflow" / "mlflow.db", 600)
    try:
        result = _materialize(reference_training_set, store_root, lock_timeout_seconds=3)
    finally:
        lock.stop()
    assert not result.success
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retried) == SETTINGS.max_retries == 2
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    texts = []
    for event in result.all_events:
        if event.event_type_value in ("STEP_UP_FOR_RETRY", "STEP_FAILURE"):
            error = getattr(event.event_specific_data, "error", None)
            while error is not None:
                texts.append(error.message)
                error = error.cause
    text = "\n".join(texts)
    assert failures and f"linear_regression[2024-02]: MLflow tracking store {_uri(store_root)} is locked" in text
    assert "OperationalError" not in text
