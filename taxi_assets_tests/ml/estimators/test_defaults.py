"""Every registry entry at its defaults on the reference window (train 2024-01, validate
2024-02, quick space, seed 42): the validation RMSE each reaches, honest selection and early
stopping, repeatability, the leaderboard's figures and explanations, and the LightGBM champion
through MLflow.

Thresholds (minutes) are the measured figures (README "Models", benchmarks/selection_split.py)
plus a margin of 0.03 (about 0.5%: same seed, same data and pinned libraries give the same
figure; the margin covers another CPU count's thread splits); the issue targets (xgboost and
lightgbm <= 4.98, extra_trees <= 5.6, the others at or below the course's figures) are checked
as well. About two minutes on two cores: each model is tuned once here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from taxi_assets.ml.estimators import ESTIMATORS
from taxi_assets.ml.leaderboard import leaderboard_frame, top_features_frame, validation_predictions
from taxi_assets.ml.metrics import regression_metrics
from taxi_assets.ml.tuning import tune

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SEED = 42
MARGIN = 0.03
MEASURED = {  # validation RMSE at the defaults, 2026-12-07 (README "Models")
    "linear_regression": 5.7558,
    "lasso": 5.6877,
    "linear_svr": 5.8971,
    "extra_trees": 5.1349,
    "gradient_boosting": 5.1069,
    "random_forest": 5.0577,
    "xgboost": 4.9015,
    "lightgbm": 4.8726,
}
TARGETS = {  # the issues' promises: boosters 4.98, extra_trees 5.6, the others the course's figures
    "linear_regression": 5.995,
    "lasso": 9.110,
    "linear_svr": 7.14,
    "extra_trees": 5.6,
    "gradient_boosting": 5.43,
    "random_forest": 5.42,
    "xgboost": 4.98,
    "lightgbm": 4.98,
}
THRESHOLDS = {name: round(rmse + MARGIN, 4) for name, rmse in MEASURED.items()}


@pytest.fixture(scope="module")
def defaults(reference_training_set):
    return {name: tune(spec, reference_training_set, spec.max_evaluations, SEED) for name, spec in ESTIMATORS.items()}


def test_thresholds_cover_the_registry_and_keep_the_promises():
    assert set(THRESHOLDS) == set(TARGETS) == set(ESTIMATORS)
    assert all(THRESHOLDS[name] <= TARGETS[name] for name in ESTIMATORS)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_each_model_meets_its_threshold_at_defaults(defaults, name):
    result = defaults[name]
    assert len(result.trials) == ESTIMATORS[name].max_evaluations
    assert result.metrics["rmse"] <= THRESHOLDS[name], f"{name}: {result.metrics['rmse']:.4f} > {THRESHOLDS[name]}"
    assert result.metrics["rmse"] < result.baseline_rmse == pytest.approx(9.1109, abs=1e-3)


def test_boosters_beat_every_other_model(defaults):
    boosters = max(defaults[n].metrics["rmse"] for n in ("xgboost", "lightgbm"))
    others = min(r.metrics["rmse"] for n, r in defaults.items() if n not in ("xgboost", "lightgbm"))
    assert boosters < others


def test_early_stopping_never_sees_the_validation_month(defaults, reference_training_set):
    ts = reference_training_set
    boundary = pd.Timestamp(ts.info["boundary"])
    for name in ("xgboost", "lightgbm"):
        training = defaults[name].training
        newest = pd.Timestamp(ts.train_rides["pickup_datetime"].max())
        assert newest - pd.Timedelta(days=7) < pd.Timestamp(training["selection_from"]) < boundary
        assert training["fitted_rides"] + training["selection_rides"] == len(ts.y_train)
        assert training["train_rides"] == len(ts.y_train)


def _poisoned(ts, durations):
    import dataclasses

    return dataclasses.replace(ts, y_val=np.asarray(durations, dtype=np.float64))


def _stopped_rounds(result):
    return result.training.get("early_stopped_rounds")


@pytest.fixture(scope="module")
def poisoned(reference_training_set):
    """Every model at its defaults again, on the same window with the validation month's
    durations shuffled; the boosters also with them shifted by ten minutes."""
    ts = reference_training_set
    shuffled = _poisoned(ts, np.random.default_rng(0).permutation(ts.y_val))
    shifted = _poisoned(ts, ts.y_val + 10.0)
    return {
        "shuffled": {name: tune(spec, shuffled, spec.max_evaluations, SEED) for name, spec in ESTIMATORS.items()},
        "shifted": {name: tune(ESTIMATORS[name], shifted, ESTIMATORS[name].max_evaluations, SEED) for name in ("xgboost", "lightgbm")},
    }


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_poisoned_validation_month_changes_only_the_reported_rmse(defaults, poisoned, name):
    """The validation month is scored, not searched: with its durations shuffled (or shifted)
    every trial's score, the chosen hyperparameters and the early-stopping round stay the same;
    only the RMSE reported on it moves."""
    clean = defaults[name]
    for kind, results in poisoned.items():
        if name not in results:
            continue
        bad = results[name]
        assert [t.loss for t in bad.trials] == [t.loss for t in clean.trials], f"{name} ({kind}): trials scored on validation"
        assert bad.best_params == clean.best_params and bad.best_trial == clean.best_trial, f"{name} ({kind})"
        assert _stopped_rounds(bad) == _stopped_rounds(clean), f"{name} ({kind}): early stopping saw the validation month"
        assert bad.metrics["rmse"] > clean.metrics["rmse"] + 1.0, f"{name} ({kind}): the poison did not reach the score"
    if name in ("xgboost", "lightgbm"):
        assert _stopped_rounds(clean) is not None


def test_leaderboard_scores_and_explains_every_representation(defaults, reference_training_set):
    ts = reference_training_set
    predictions = {name: validation_predictions(result.predictor, ts) for name, result in defaults.items()}
    board = leaderboard_frame({n: r.predictor for n, r in defaults.items()}, predictions, ts)
    assert len(board) == 8 and board["model"].iloc[0] in ("xgboost", "lightgbm")
    for name, result in defaults.items():
        row = board[board["model"] == name].iloc[0]
        assert row["rmse"] == pytest.approx(result.metrics["rmse"], rel=1e-12)
        # the validation rides as records (what the champion step and serving send) score the same
        records = ts.validation_rides()[["PULocationID", "DOLocationID", "trip_distance"]]
        np.testing.assert_allclose(result.predictor.predict(records), predictions[name], rtol=1e-9, atol=1e-9)
    top = top_features_frame({n: r.predictor for n, r in defaults.items()}, ts, top_n=3)
    methods = top.groupby("model")["method"].first().to_dict()
    assert methods == {
        "linear_regression": "coefficient", "lasso": "coefficient", "linear_svr": "coefficient",
        "extra_trees": "impurity", "gradient_boosting": "impurity", "random_forest": "impurity",
        "xgboost": "shap", "lightgbm": "shap",
    }  # fmt: skip
    for name in ("xgboost", "lightgbm", "random_forest"):
        features = top[top["model"] == name]["feature"].tolist()
        assert set(features) <= {"PU", "DO", "PU_DO", "trip_distance"} and features[0] == "trip_distance"
    assert top[top["model"] == "linear_regression"]["feature"].str.startswith("PU_DO=").any()


def test_lightgbm_is_logged_served_and_pinned_through_mlflow(defaults, tmp_path):
    """The eighth estimator through MLflow as the registry logs any model: the pyfunc takes the
    course's raw records and pins lightgbm in its requirements."""
    import mlflow

    from taxi_assets.registry.pyfunc import log_predictor
    from taxi_assets.registry.tracking import tracking_uri_set

    predictor = defaults["lightgbm"].predictor
    records = [
        {"PULocationID": 236, "DOLocationID": 239, "trip_distance": 1.98},
        {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.2},
        {"PULocationID": 2, "DOLocationID": 2, "trip_distance": 0.5},  # a zone no January ride used
    ]
    with tracking_uri_set(f"sqlite:///{tmp_path / 'mlflow.db'}"):
        experiment = mlflow.create_experiment("lightgbm-test", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            info = log_predictor(predictor, "model", records[:2])
        loaded = mlflow.pyfunc.load_model(info.model_uri)
        requirements = (tmp_path / "artifacts").rglob("requirements.txt")
        text = next(requirements).read_text()
    np.testing.assert_array_equal(loaded.predict(pd.DataFrame(records)), predictor.predict(records))
    from importlib.metadata import version

    assert f"lightgbm=={version('lightgbm')}" in text.split()
    assert "xgboost" not in text


def test_extended_features_take_minutes_off(defaults, reference):
    """With TAXI_EXTENDED_FEATURES the models also see the pickup hour and day of week; the
    request then needs the pickup time. (XGBoost at its defaults: 4.90 -> 4.49; its first
    trial, checked here: 4.98 -> 4.60 before the refit.)"""
    from taxi_assets.ml import dataset
    from taxi_assets.ml.features import InvalidRequestError

    window = pd.concat([reference.training_set.rides("train").assign(duration=reference.training_set.y_train),
                        reference.validation_rides], ignore_index=True)  # fmt: skip
    from taxi_assets.ml.cleaning import pu_do

    window["PU_DO"] = pu_do(window["PULocationID"], window["DOLocationID"])
    ts = dataset.build_training_set(window, pd.Timestamp("2024-02-01"), extended_features=True)
    assert ts.X_train.shape == (54_378, 5_094) and ts.extended_features
    result = tune(ESTIMATORS["xgboost"], ts, 1, SEED)
    assert result.predictor.feature_names == ["PU", "DO", "PU_DO", "trip_distance", "pickup_hour", "pickup_dow"]
    course_features = defaults["xgboost"].trials[0]  # the same seed draws the same first trial
    assert result.trials[0].params == course_features.params
    assert result.trials[0].loss < course_features.loss - 0.3
    assert result.metrics["rmse"] <= 4.6
    rides = ts.validation_rides().iloc[:200]
    by_records = result.predictor.predict(rides[["PULocationID", "DOLocationID", "trip_distance", "pickup_datetime"]])
    np.testing.assert_allclose(by_records, result.predictor.predict_training_set(ts)[:200], rtol=1e-9)
    assert regression_metrics(ts.y_val, result.predictor.predict_training_set(ts))["rmse"] == result.metrics["rmse"]
    with pytest.raises(InvalidRequestError, match="missing field"):
        result.predictor.predict(rides[["PULocationID", "DOLocationID", "trip_distance"]])
