"""MLflow side of the models: pyfunc logging/registry/serving, the ``mlflow`` resource's run
lifecycle, and the model assets built by the factory (each test on its own sqlite store)."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from taxi_assets.assets.models import build_model_asset, example_records, model_assets, model_check_keys, model_checks
from taxi_assets.ml.estimators import ESTIMATORS, EstimatorSpec
from taxi_assets.ml.features import InvalidRequestError
from taxi_assets.ml.tuning import tune
from taxi_assets.defs.partitions import monthly_partitions
from taxi_assets.defs.resources.io_manager import TaxiIOManager
from taxi_assets.resources.mlflow import MLFLOW_RESOURCE_KEY, build_mlflow_resource, ensure_experiment
from taxi_assets_tests.scoring_server import ScoringServer
from taxi_assets.registry.names import registered_model_name
from taxi_assets.registry.pyfunc import REQUEST_METADATA, log_predictor
from taxi_assets.settings import SETTINGS
from taxi_assets_tests.model_fixtures import reference, reference_training_set  # noqa: F401 (fixtures)

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

    def resource(self):
        return build_mlflow_resource(
            tracking_uri=self.uri, experiment_name=EXPERIMENT, artifact_location=self.artifacts, taxi_type="green"
        )


@pytest.fixture(autouse=True)
def _restore_mlflow_globals():
    """dagster-mlflow sets the process-wide tracking URI; leave the process as found."""
    previous = mlflow.get_tracking_uri()
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run("FAILED")
    mlflow.set_tracking_uri(previous)


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
def predictors(reference_training_set):  # noqa: F811
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
    # the experiment's explicit artifact root holds the pickled predictor
    stored = list((store.root / "artifacts").rglob("predictor.joblib"))
    assert len(stored) == 1
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


def test_model_asset_logs_nested_runs_registers_and_ends_every_run(store, reference_training_set, tmp_path):  # noqa: F811
    ts = reference_training_set
    linear = next(a for a in model_assets if a.key == dg.AssetKey("linear_regression"))
    io_manager = TaxiIOManager(base_dir=str(tmp_path / "outputs"))
    result = dg.materialize(
        [_training_set_stub(ts), linear],
        partition_key="2024-02",
        resources={MLFLOW_RESOURCE_KEY: store.resource(), "io_manager": io_manager},
    )
    assert result.success
    runs = store.runs()
    assert sorted(r.info.status for r in runs) == ["FINISHED"] * 4  # dagster run, model run, 2 trials
    by_name = {r.info.run_name: r for r in runs}
    top = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert top.data.tags["dagster_run_id"] == result.run_id
    model_run = by_name["linear_regression-2024-02"]
    assert model_run.data.tags["mlflow.parentRunId"] == top.info.run_id
    assert model_run.data.tags["dagster.partition"] == "2024-02"
    assert model_run.data.tags["dagster.asset_key"] == "linear_regression"
    assert model_run.data.tags["dagster.run_id"] == result.run_id
    # only the Dagster run's run carries dagster-mlflow's lookup tag
    assert [r.info.run_id for r in runs if "dagster_run_id" in r.data.tags] == [top.info.run_id]
    assert model_run.data.params["fit_intercept"] == "True"
    assert model_run.data.params["config.max_evaluations"] == "2"
    assert model_run.data.metrics["rmse"] == pytest.approx(5.995, abs=0.01)
    trials = sorted((r for r in runs if r.data.tags.get("mlflow.parentRunId") == model_run.info.run_id),
                    key=lambda r: int(r.data.tags["trial"]))  # fmt: skip
    assert [r.data.params["fit_intercept"] for r in trials] == ["True", "False"]
    assert trials[0].data.metrics["rmse"] == pytest.approx(5.995, abs=0.01)

    metadata = result.asset_materializations_for_node("linear_regression")[0].metadata
    assert metadata["rmse"].value == pytest.approx(5.995, abs=0.01)
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


def test_failed_model_step_ends_its_runs_failed(store, reference_training_set, tmp_path):  # noqa: F811
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
        resources={MLFLOW_RESOURCE_KEY: store.resource(), "io_manager": TaxiIOManager(base_dir=str(tmp_path / "o"))},
        raise_on_error=False,
    )
    assert not result.success
    runs = store.runs()
    assert "RUNNING" not in {r.info.status for r in runs}
    by_name = {r.info.run_name: r for r in runs}
    assert by_name["broken-2024-02"].info.status == "FAILED"
    assert by_name["broken-2024-02"].data.tags["error"] == "ValueError: broken estimator: cannot fit"
    assert by_name["linear_regression-2024-02"].info.status == "FINISHED"
    top = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert top.info.status == "FAILED"  # one failed step fails the Dagster run's run
    assert "taxi_failed.broken.2024-02" in top.data.tags


def test_factory_builds_one_asset_per_registry_entry():
    assert [a.key.to_user_string() for a in model_assets] == list(ESTIMATORS)
    for asset in model_assets:
        spec = ESTIMATORS[asset.key.to_user_string()]
        assert asset.group_names_by_key[asset.key] == "models"
        assert asset.partitions_def == monthly_partitions
        assert asset.descriptions_by_key[asset.key] == spec.description
        assert [k.name for k in asset.check_keys] == ["beats_baseline"]
        (asset_spec,) = asset.specs
        assert asset_spec.freshness_policy == dg.FreshnessPolicy.time_window(fail_window=SETTINGS.model_freshness)
        assert set(asset.keys_by_input_name) == {"training_set"}
        config_fields = set(asset.op.config_schema.config_type.fields)
        expected = {"max_evaluations", "random_state", "search_space"}
        if spec.name == "xgboost":
            expected |= {"early_stopping_rounds", "num_boost_round", "max_depth"}
        assert config_fields == expected
        default = asset.op.config_schema.config_type.fields["max_evaluations"].default_value
        assert default == spec.max_evaluations
    assert model_checks == []
    assert model_check_keys == [dg.AssetCheckKey(a.key, "beats_baseline") for a in model_assets]
    assert SETTINGS.mlflow_tracking_uri.startswith("sqlite:///")


def test_example_records_rebuild_raw_requests_from_training_rows(reference_training_set):  # noqa: F811
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
