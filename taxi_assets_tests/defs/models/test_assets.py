"""MLflow side of the models: pyfunc logging/registry/serving, the ``mlflow`` resource's run
lifecycle and outages, and the model assets built by the factory (each test on its own
sqlite store)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from importlib.metadata import version
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from support.local import closed_port
from support.scoring_server import ScoringServer
from taxi_assets.defs.models.assets import build_model_asset, model_assets
from taxi_assets.defs.partitions import monthly_partitions
from taxi_assets.defs.resources.io_manager import TaxiIOManager
from taxi_assets.defs.resources.tracking import MLFLOW_RESOURCE_KEY, MlflowTracking
from taxi_assets.ml.dataset import example_records
from taxi_assets.ml.estimators import ESTIMATORS, EstimatorSpec
from taxi_assets.ml.features import InvalidRequestError
from taxi_assets.ml.tuning import tune
from taxi_assets.registry.names import registered_model_name
from taxi_assets.registry.pyfunc import REQUEST_METADATA, log_predictor
from taxi_assets.registry.tracking import TrackingStore
from taxi_assets.settings import SETTINGS

RECORDS = pd.DataFrame(
    {"PULocationID": [74, 75, 166, 1], "DOLocationID": [75, 42, 166, 265], "trip_distance": [1.2, 3.0, 0.0, 12.5]}
)
EXPERIMENT = "taxi-trip-duration-test"


class Store:
    def __init__(self, root: Path):
        self.root = root
        self.uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
        self.artifacts = (root / "artifacts").as_uri()
        self.client = MlflowClient(tracking_uri=self.uri)

    def runs(self) -> list:
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        return self.client.search_runs([experiment.experiment_id], max_results=1000)

    def resource(self, **overrides):
        return MlflowTracking(tracking_uri=self.uri, experiment_name=EXPERIMENT, artifact_location=self.artifacts, **overrides)


def ensure_experiment(uri: str, name: str, artifacts: str) -> str:
    return TrackingStore(uri, name, artifacts).experiment_id()


pytestmark = pytest.mark.usefixtures("restore_mlflow_globals")  # tests here set the process-wide tracking URI


@pytest.fixture(scope="module")
def empty_store_db(tmp_path_factory) -> Path:
    """A migrated, empty sqlite store; creating one costs seconds, copying it milliseconds."""
    template = Store(tmp_path_factory.mktemp("mlflow-template"))
    template.client.search_experiments()  # creates and migrates the schema
    return template.root / "mlflow" / "mlflow.db"


@pytest.fixture
def store(tmp_path, empty_store_db) -> Store:
    (tmp_path / "mlflow").mkdir()
    shutil.copyfile(empty_store_db, tmp_path / "mlflow" / "mlflow.db")
    return Store(tmp_path)


@pytest.fixture(scope="module")
def predictors(reference_training_set):
    ts = reference_training_set
    return {
        "linear_regression": tune(ESTIMATORS["linear_regression"], ts, 1, 7).predictor,
        "xgboost": tune(
            ESTIMATORS["xgboost"], ts, 1, 7, max_depth=6, learning_rate=1.0, early_stopping_rounds=3, num_boost_round=60
        ).predictor,
    }


def _training_set_stub(ts):
    @dg.asset(name="training_set", partitions_def=monthly_partitions)
    def training_set():
        return ts

    return training_set


def test_registered_model_names_are_one_per_estimator():
    assert registered_model_name("green", "xgboost") == "taxi-trip-duration-green-xgboost"
    assert registered_model_name("yellow", "lasso") == "taxi-trip-duration-yellow-lasso"


@pytest.mark.parametrize("name", ["linear_regression", "xgboost"])
def test_log_register_and_load_predicts_like_the_predictor(store, predictors, name):
    predictor = predictors[name]
    experiment_id = ensure_experiment(store.uri, EXPERIMENT, store.artifacts)
    mlflow.set_tracking_uri(store.uri)
    registered = registered_model_name("green", name)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = log_predictor(predictor, "model", RECORDS, registered_model_name=registered)
    assert int(info.registered_model_version) == 1
    assert store.client.get_run(run.info.run_id).info.status == "FINISHED"
    loaded = mlflow.pyfunc.load_model(f"models:/{registered}/1")
    predicted = loaded.predict(RECORDS)
    assert isinstance(predicted, np.ndarray) and predicted.dtype == np.float64
    np.testing.assert_array_equal(predicted, predictor.predict(RECORDS))
    # What a scoring server does, in a fresh interpreter: load and predict without Dagster.
    code = (
        "import json, sys, mlflow; mlflow.set_tracking_uri(sys.argv[1]); "
        "m = mlflow.pyfunc.load_model(sys.argv[2]); print(json.dumps(m.predict(json.loads(sys.argv[3])).tolist())); "
        "assert 'dagster' not in sys.modules, 'dagster imported'"
    )
    served = subprocess.run([sys.executable, "-c", code, store.uri, f"models:/{registered}/1", RECORDS.to_json(orient="records")],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert served.returncode == 0, served.stderr[-2000:]
    np.testing.assert_allclose(json.loads(served.stdout.strip().splitlines()[-1]), predicted, rtol=1e-12)
    # the experiment's explicit artifact root holds the pickled predictor
    stored = list((store.root / "artifacts").rglob("predictor.joblib"))
    assert len(stored) == 1
    # the requirements pin the installed distribution of the estimator's package (xgboost-cpu)
    pinned = (stored[0].parent.parent / "requirements.txt").read_text().split()
    if name == "xgboost":
        assert f"xgboost-cpu=={version('xgboost-cpu')}" in pinned and not any(p.startswith("xgboost==") for p in pinned)
    # no MLflow signature (the model validates requests itself); the fields are in the metadata
    assert loaded.metadata.signature is None
    assert loaded.metadata.metadata == REQUEST_METADATA
    # int64 ids, whole-number float ids and integer distances all reach the model and agree
    as_floats = RECORDS.astype({"PULocationID": "float64", "DOLocationID": "float64"}).assign(trip_distance=[1, 3, 0, 12])
    np.testing.assert_array_equal(loaded.predict(as_floats), predictor.predict(RECORDS.assign(trip_distance=[1.0, 3.0, 0.0, 12.0])))


def test_loaded_model_rejects_bad_records_with_the_validation_message(store, predictors):
    experiment_id = ensure_experiment(store.uri, EXPERIMENT, store.artifacts)
    mlflow.set_tracking_uri(store.uri)
    with mlflow.start_run(experiment_id=experiment_id):
        info = log_predictor(predictors["linear_regression"], "model", RECORDS, "taxi-trip-duration-green-bad")
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    with pytest.raises(InvalidRequestError) as caught:
        loaded.predict(RECORDS.assign(DOLocationID=[75, 42, 999, 1]))
    assert caught.value.message == "field 'DOLocationID' must be a TLC zone id between 1 and 265, got 999 in record 2"
    # MLflow's schema check does not get to truncate a fractional zone id into a valid one
    with pytest.raises(InvalidRequestError) as caught:
        loaded.predict(RECORDS.assign(PULocationID=[74.0, 75.0, 166.5, 1.0]))
    assert caught.value.message == "field 'PULocationID' must be a TLC zone id between 1 and 265, got 166.5 in record 2"


def test_log_predictor_needs_an_active_run(predictors):
    with pytest.raises(RuntimeError, match=r"^log_predictor\('model'\) needs an active MLflow run"):
        log_predictor(predictors["linear_regression"], "model", RECORDS, None)


def _post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_registered_model_is_served_by_mlflow_models_serve(store, predictors, tmp_path):
    predictor = predictors["xgboost"]
    experiment_id = ensure_experiment(store.uri, EXPERIMENT, store.artifacts)
    mlflow.set_tracking_uri(store.uri)
    registered = registered_model_name("green", "xgboost")
    with mlflow.start_run(experiment_id=experiment_id):
        log_predictor(predictor, "model", RECORDS, registered_model_name=registered)
    with ScoringServer(f"models:/{registered}/1", store.uri, tmp_path / "serve.log", workers=1, ready_timeout=90) as server:
        url = f"{server.url}/invocations"
        status, body = _post(url, {"dataframe_records": RECORDS.to_dict(orient="records")})
        assert status == 200
        np.testing.assert_allclose(body["predictions"], predictor.predict(RECORDS), rtol=1e-6)
        # JSON has no int/float distinction worth failing on: a whole-number distance is fine
        status, body = _post(url, {"dataframe_records": [{"PULocationID": 74, "DOLocationID": 75, "trip_distance": 3}]})
        assert status == 200
        np.testing.assert_allclose(body["predictions"], predictor.predict(RECORDS.iloc[[0]].assign(trip_distance=3.0)))
        bad = [{"PULocationID": 74, "DOLocationID": 75, "trip_distance": -1.0}]
        status, body = _post(url, {"dataframe_records": bad})
        assert status == 400
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"
        assert body["message"].endswith("Error: field 'trip_distance' must not be negative, got -1.0 in record 0")


def test_model_asset_logs_nested_runs_registers_and_ends_every_run(store, reference_training_set, tmp_path):
    ts = reference_training_set
    linear = next(a for a in model_assets if a.key == dg.AssetKey("linear_regression"))
    io_manager = TaxiIOManager(data_root=str(tmp_path / "outputs"))
    result = dg.materialize(
        [_training_set_stub(ts), linear],
        partition_key="2024-02",
        resources={MLFLOW_RESOURCE_KEY: store.resource(), "io_manager": io_manager},
    )
    assert result.success
    runs = store.runs()
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 3  # the model run and its 2 trials
    by_name = {r.info.run_name: r for r in runs}
    model_run = by_name["linear_regression-2024-02"]
    assert "mlflow.parentRunId" not in model_run.data.tags  # one run per model materialization
    assert model_run.data.tags["dagster.partition"] == "2024-02"
    assert model_run.data.tags["dagster.asset_key"] == "linear_regression"
    assert model_run.data.tags["dagster.run_id"] == result.run_id
    assert model_run.data.params["fit_intercept"] == "True"
    assert model_run.data.params["config.max_evaluations"] == "2"
    rmse = model_run.data.metrics["rmse"]
    assert 5.0 < rmse <= 5.996  # at or below the course's 5.995
    trials = sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId") == model_run.info.run_id),
                    key=lambda r: int(r.data.tags["trial"]))  # fmt: skip
    assert [r.data.params["fit_intercept"] for r in trials] == ["True", "False"]
    # Trials are compared on the training window's last week; the kept one's figure is the run's selection_rmse.
    assert trials[0].data.metrics["selection_rmse"] == pytest.approx(model_run.data.metrics["selection_rmse"], abs=1e-9)
    assert trials[1].data.metrics["best_selection_rmse"] == trials[0].data.metrics["selection_rmse"]
    assert "rmse" not in trials[0].data.metrics  # the validation month is scored once, on the model run only
    assert {r.data.tags["dagster.run_id"] for r in trials} == {result.run_id}

    metadata = result.asset_materializations_for_node("linear_regression")[0].metadata
    assert metadata["rmse"].value == pytest.approx(rmse, abs=1e-9)
    assert metadata["baseline_rmse"].value == pytest.approx(9.1109, abs=1e-3)
    assert metadata["trials"].value == 2
    assert metadata["best_params"].value == {"fit_intercept": True}
    assert metadata["mlflow_run_id"].value == model_run.info.run_id
    assert metadata["registered_model_name"].value == "taxi-trip-duration-green-linear_regression"
    assert metadata["registered_model_version"].value == 1
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "beats_baseline" and check.passed

    version = store.client.get_model_version("taxi-trip-duration-green-linear_regression", "1")
    assert version.tags["dagster.partition"] == "2024-02"
    assert version.tags["beats_baseline"] == "true"
    stored = io_manager.load(dg.AssetKey("linear_regression"), "2024-02")
    mlflow.set_tracking_uri(store.uri)
    loaded = mlflow.pyfunc.load_model(metadata["registered_model_uri"].value)
    np.testing.assert_array_equal(loaded.predict(RECORDS), stored.predict(RECORDS))


def _broken_fit(params, X_train, y_train, X_val=None, y_val=None, *, n_jobs=1):
    raise ValueError("broken estimator: cannot fit")


def test_failed_model_step_ends_its_runs_failed(store, reference_training_set, tmp_path):
    from hyperopt import hp

    broken = EstimatorSpec(
        name="broken",
        description="always fails",
        spaces={"quick": lambda rs: {"alpha": hp.uniform("alpha", 0, 1)}},
        fit=_broken_fit,
        max_evaluations=1,
    )
    linear = next(a for a in model_assets if a.key == dg.AssetKey("linear_regression"))
    result = dg.materialize(
        [_training_set_stub(reference_training_set), linear, build_model_asset(broken)],
        partition_key="2024-02",
        resources={MLFLOW_RESOURCE_KEY: store.resource(), "io_manager": TaxiIOManager(data_root=str(tmp_path / "o"))},
        raise_on_error=False,
    )
    assert not result.success
    runs = store.runs()
    assert "RUNNING" not in {r.info.status for r in runs}
    by_name = {r.info.run_name: r for r in runs}
    assert by_name["broken-2024-02"].info.status == "FAILED"
    assert by_name["broken-2024-02"].data.tags["error"] == "ValueError: broken estimator: cannot fit"
    assert by_name["linear_regression-2024-02"].info.status == "FINISHED"
    # a bug is not an outage: the failed step was not retried
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries == []


def test_factory_builds_one_asset_per_registry_entry():
    assert [a.key.to_user_string() for a in model_assets] == list(ESTIMATORS)
    for asset in model_assets:
        spec = ESTIMATORS[asset.key.to_user_string()]
        assert asset.group_names_by_key[asset.key] == "models"
        assert asset.partitions_def == monthly_partitions
        assert asset.descriptions_by_key[asset.key] == spec.description
        assert [k.name for k in asset.check_keys] == ["beats_baseline"]
        assert asset.op.pool == "model_training"
        (asset_spec,) = asset.specs
        assert asset_spec.freshness_policy == dg.FreshnessPolicy.time_window(fail_window=SETTINGS.model_freshness)
        # training_set is loaded; cleaned_trips is a non-loaded edge (what Dask workers read)
        assert set(asset.keys_by_input_name) == {"training_set", "cleaned_trips"}
        config_fields = set(asset.op.config_schema.config_type.fields)
        expected = {"max_evaluations", "random_state", "search_space"} | set(spec.fit_options) | set(spec.config_overrides)
        assert config_fields == expected
        default = asset.op.config_schema.config_type.fields["max_evaluations"].default_value
        assert default == spec.max_evaluations
    assert SETTINGS.mlflow_tracking_uri.startswith("sqlite:///")


def test_example_records_rebuild_raw_requests_from_training_rows(reference_training_set):
    records = example_records(reference_training_set, rows=3)
    assert len(records) == 3
    for record in records:
        assert set(record) == {"PULocationID", "DOLocationID", "trip_distance"}
        assert 1 <= record["PULocationID"] <= 265 and 1 <= record["DOLocationID"] <= 265
    features = reference_training_set.X_train[:3].toarray()
    names = reference_training_set.feature_names
    distance = names.index("trip_distance")
    assert [r["trip_distance"] for r in records] == list(features[:, distance])
    for row, record in zip(features, records):
        assert row[names.index(f"PU_DO={record['PULocationID']}_{record['DOLocationID']}")] == 1.0


def _step_failures(result) -> list[str]:
    texts = []
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        data = event.step_failure_data
        error = data.error
        while error is not None:
            texts.append(error.message)
            error = error.cause
        if data.user_failure_data is not None and data.user_failure_data.description:
            texts.append(data.user_failure_data.description)
    return texts


def test_tracking_server_down_fails_fast_naming_the_uri(reference_training_set, tmp_path):
    """Before: 929 s (3 attempts of about 4 minutes, MLflow's own 120 s x 7 retries), nothing
    in the log. Now each attempt fails in seconds, before any training, naming the store, and
    the step is retried as an outage (TAXI_MAX_RETRIES, delays shortened by conftest)."""
    import time

    uri = f"http://127.0.0.1:{closed_port()}"
    linear = next(a for a in model_assets if a.key == dg.AssetKey("linear_regression"))
    started = time.monotonic()
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [_training_set_stub(reference_training_set), linear],
            partition_key="2024-02",
            resources={
                MLFLOW_RESOURCE_KEY: MlflowTracking(tracking_uri=uri, experiment_name=EXPERIMENT, artifact_location="file:///tmp"),
                "io_manager": TaxiIOManager(data_root=str(tmp_path / "o")),
            },
            raise_on_error=False,
            instance=instance,
        )
        logs = [record.user_message for record in instance.all_logs(result.run_id)]
    seconds = time.monotonic() - started
    assert not result.success
    assert seconds < 90, f"took {seconds:.0f}s"
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retried) == SETTINGS.max_retries == 2
    text = "\n".join(_step_failures(result))
    assert f"linear_regression[2024-02]: MLflow tracking store {uri} is unreachable" in text
    # nothing was trained: the run's log says it was about to tune, and no trial ever ran
    assert sum("linear_regression[2024-02]: tuning with" in m for m in logs) == 3  # each attempt
    assert not [m for m in logs if ": trial " in m]


def test_a_hanging_tracking_server_is_a_timeout(reference_training_set, tmp_path, monkeypatch):
    """A server that accepts connections and never answers, with the resource's own defaults
    (15 s per request, 2 retries): three timed-out requests and MLflow's backoff, about 50 s
    (MLflow's own defaults would wait 120 s per request, seven times: 15 minutes)."""
    import socket
    import time

    from taxi_assets.defs.resources.tracking import MlflowTracking

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts (kernel backlog) but never answers
    uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        for variable in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
            monkeypatch.delenv(variable, raising=False)  # restored after the test: the resource writes them
        store = MlflowTracking(tracking_uri=uri, experiment_name=EXPERIMENT).store()
        assert (os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"], os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]) == ("15", "2")
        started = time.monotonic()
        with pytest.raises(Exception) as caught:
            store.check_reachable()
        seconds = time.monotonic() - started
    finally:
        listener.close()
    assert type(caught.value).__name__ == "TrackingStoreUnavailable"
    assert f"MLflow tracking store {uri} is unreachable" in str(caught.value)
    assert 3 * 15 <= seconds < 3 * 15 + 30, f"took {seconds:.0f}s"  # the defaults, not MLflow's 7 x 120 s


def test_no_lock_is_shared_between_deployments(store, tmp_path, reference_training_set):
    """Before: a machine-wide lock file in the temp folder made a healthy deployment wait for
    another one's stalled step (4 min 19 s). Now the only lock sits beside a local sqlite
    store: holding another store's lock does not slow this one."""
    import tempfile
    import time

    from taxi_assets.registry.tracking import _store_lock

    old_lock = Path(tempfile.gettempdir()) / "taxi-assets-mlflow-run.lock"
    old_lock.unlink(missing_ok=True)  # left by an earlier version of the project
    other = tmp_path / "other" / "mlflow.db"
    linear = next(a for a in model_assets if a.key == dg.AssetKey("linear_regression"))
    with _store_lock(other):
        started = time.monotonic()
        result = dg.materialize(
            [_training_set_stub(reference_training_set), linear],
            partition_key="2024-02",
            resources={MLFLOW_RESOURCE_KEY: store.resource(), "io_manager": TaxiIOManager(data_root=str(tmp_path / "o"))},
        )
        assert result.success and time.monotonic() - started < 120
    assert not old_lock.exists()
    assert (other.parent / "mlflow.db.init-lock").exists()
