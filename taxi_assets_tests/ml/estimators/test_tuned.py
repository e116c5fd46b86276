"""The pure training core (no Dagster, no MLflow) on the real 2024-02 reference training set.

Every registry entry is tuned once with small fixed settings (the ``tuned`` fixture); the
thresholds at the registry's defaults are in ``test_defaults.py``."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pytest

from taxi_assets.ml.estimators import ESTIMATORS, available_threads, clean_params, get_estimator
from taxi_assets.ml.features import InvalidRequestError
from taxi_assets.ml.metrics import regression_metrics
from taxi_assets.ml.predictor import TripDurationPredictor
from taxi_assets.ml.tuning import TrialResult, tune

# LinearSVR with max_iter=300 stops before liblinear's tolerance; the model is still usable.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Small, fast settings per estimator: fixed tree counts and depths, everything else tuned.
QUICK_OVERRIDES = {
    "linear_svr": {"C": 0.1, "max_iter": 300},
    "extra_trees": {"n_estimators": 10, "max_depth": 10},
    "gradient_boosting": {"n_estimators": 10, "max_depth": 3},
    "random_forest": {"n_estimators": 10, "max_depth": 10},
    "xgboost": {"max_depth": 6, "learning_rate": 1.0, "early_stopping_rounds": 3, "num_boost_round": 60},
    "lightgbm": {"num_leaves": 31, "learning_rate": 0.3, "early_stopping_rounds": 3, "num_boost_round": 60},
}
INT_PARAMS_EXTRA = {"num_leaves", "min_data_in_leaf", "min_data_per_group", "max_cat_threshold", "bagging_freq"}
INT_PARAMS = {"max_depth", "max_iter", "min_samples_leaf", "min_samples_split", "n_estimators", "random_state", "seed"}
REFITTED = {name for name, spec in ESTIMATORS.items() if spec.refit is not None}
REQUEST = [
    {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.2},
    {"PULocationID": 75, "DOLocationID": 42, "trip_distance": 3.0},
]


@pytest.fixture(scope="module")
def tuned(reference_training_set):
    """Every registry entry tuned once with max_evaluations=2 (shared by several tests)."""
    return {
        name: tune(spec, reference_training_set, 2, 7, **QUICK_OVERRIDES.get(name, {}))
        for name, spec in ESTIMATORS.items()
    }


def test_reference_training_set_shape(reference_training_set):
    ts = reference_training_set
    assert ts.X_train.shape == (54_378, 5_094)
    assert ts.X_val.shape == (51_492, 5_094)
    assert ts.X_train.indices.dtype == np.int32


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_each_estimator_tunes_and_beats_the_baseline(tuned, reference_training_set, name):
    ts = reference_training_set
    result = tuned[name]
    assert result.estimator == name
    assert [t.index for t in result.trials] == [1, 2]
    assert all(t.total == 2 for t in result.trials)
    assert result.trials[1].best_loss == min(t.loss for t in result.trials)
    # trials are compared on the window's last week; the kept parameters are refitted on the
    # whole window and scored once on the validation month
    assert result.selection_rmse == result.training["selection_rmse"] == min(t.loss for t in result.trials)
    assert result.training["fitted_rides"] + result.training["selection_rides"] == 54_378
    assert result.training["train_rides"] == 54_378
    assert result.metrics["rmse"] != pytest.approx(result.selection_rmse)
    assert result.best_params == result.trials[result.best_trial - 1].params
    assert result.baseline_rmse == pytest.approx(9.1109, abs=1e-3)
    assert result.metrics["rmse"] < result.baseline_rmse, f"{name} does not beat the baseline"
    assert result.beats_baseline
    # the metrics are the kept predictor's, scored like serving scores
    again = regression_metrics(ts.y_val, result.predictor.predict_training_set(ts))
    assert again == pytest.approx(result.metrics)
    assert result.predictor.feature_step.kind == ESTIMATORS[name].representation
    assert result.training["distance_clip"] == pytest.approx(27.41329, abs=1e-4)
    for key, value in QUICK_OVERRIDES.get(name, {}).items():
        if key in result.best_params:
            assert all(t.params[key] == value for t in result.trials)


def test_hyperopt_params_come_back_as_python_ints_and_choice_values(tuned):
    seen = [t.params["fit_intercept"] for t in tuned["linear_regression"].trials]
    assert sorted(seen) == [False, True]
    assert all(type(v) is bool for v in seen)
    for name, result in tuned.items():
        for trial in result.trials:
            for key, value in trial.params.items():
                if key in INT_PARAMS | INT_PARAMS_EXTRA:
                    assert type(value) is int, f"{name}.{key} = {value!r}"
                else:
                    assert type(value) in (float, bool, str), f"{name}.{key} = {value!r}"
    assert tuned["random_forest"].best_params["random_state"] == 7
    assert tuned["xgboost"].best_params["seed"] == 7


def test_linear_regression_reproduces_the_course_rmse_and_the_clip_improves_it(tuned, reference_training_set):
    from sklearn.linear_model import LinearRegression

    ts = reference_training_set
    # The course's model: plain OLS on the unclipped one-hot matrix (a bare vectorizer = no clip).
    course = TripDurationPredictor(ts.vectorizer, LinearRegression().fit(ts.X_train, ts.y_train), "course")
    assert regression_metrics(ts.y_val, course.predict_features(ts.X_val))["rmse"] == pytest.approx(5.995, abs=0.001)
    # The registry's: the same matrix with trip_distance clipped at the training p99.9.
    result = tuned["linear_regression"]
    assert result.best_params == {"fit_intercept": True}
    assert result.metrics["rmse"] == pytest.approx(5.7558, abs=0.001)


def test_same_seed_same_params_and_rmse(reference_training_set):
    spec = ESTIMATORS["extra_trees"]  # randomized splits and threads: only the seed makes it repeatable
    runs = [tune(spec, reference_training_set, 3, 11, n_estimators=10, max_depth=10) for _ in range(2)]
    assert [t.params for t in runs[0].trials] == [t.params for t in runs[1].trials]
    assert [t.loss for t in runs[0].trials] == [t.loss for t in runs[1].trials]
    assert runs[0].metrics == runs[1].metrics
    other = tune(spec, reference_training_set, 3, 12, n_estimators=10, max_depth=10)
    assert [t.params for t in other.trials] != [t.params for t in runs[0].trials]


def _stopped_rounds(booster) -> int:
    return int(getattr(booster, "early_stopped_rounds", None) or booster.attr("early_stopped_rounds"))


def test_boosters_stop_on_the_training_windows_last_week_then_refit(tuned, reference_training_set):
    """Early stopping never sees the validation month: the slice is the last week of January,
    and the kept booster is refitted on all of January for the early-stopped rounds scaled by
    the rides added back."""
    import lightgbm as lgb
    import xgboost as xgb

    ts = reference_training_set
    for name in ("xgboost", "lightgbm"):
        training = tuned[name].training
        assert training["fitted_rides"] + training["selection_rides"] == 54_378
        assert training["selection_rides"] == 12_687
        assert training["selection_from"].startswith("2024-01-24")
        assert training["categories"] == {"PU": 207, "DO": 241, "PU_DO": 5_093}
        assert training["early_stopped_rounds"] == _stopped_rounds(tuned[name].predictor.estimator)
    booster = tuned["xgboost"].predictor.estimator
    stopped = int(booster.attr("early_stopped_rounds"))
    assert stopped < 60  # early stopping ended the search fit before the cap
    assert booster.num_boosted_rounds() == round(stopped * 54_378 / 41_691)
    assert booster.feature_types == ["c", "c", "c", "q"]
    assert booster.feature_names == ["PU", "DO", "PU_DO", "trip_distance"]
    again = tune(ESTIMATORS["xgboost"], ts, 1, 7, **QUICK_OVERRIDES["xgboost"])  # the same first trial
    assert again.trials[0].params == tuned["xgboost"].trials[0].params
    assert again.trials[0].loss == tuned["xgboost"].trials[0].loss
    # what serving computes is what a plain DMatrix prediction of the booster gives
    X = tuned["xgboost"].predictor.feature_step.from_training_set(ts, "val")[:500]
    plain = booster.predict(xgb.DMatrix(X, feature_names=booster.feature_names, feature_types=booster.feature_types,
                                        enable_categorical=True))  # fmt: skip
    np.testing.assert_allclose(tuned["xgboost"].predictor.predict_features(X), plain, rtol=1e-6)
    model = tuned["lightgbm"].predictor.estimator
    assert isinstance(model, lgb.Booster)
    assert model.current_iteration() == round(model.early_stopped_rounds * 54_378 / 41_691)


def test_unseen_zones_and_pairs_are_scored_by_every_model(tuned):
    """A pair never seen in training and a zone never seen as pickup nor dropoff still get a
    finite prediction from every representation, and the same request always the same one."""
    step = tuned["xgboost"].predictor.feature_step
    seen_pairs = set(step.pairs.tolist())
    unseen_pair = next((pu, do) for pu in (74, 75) for do in range(1, 266) if pu * 1000 + do not in seen_pairs)
    zone = next(z for z in range(1, 266) if z not in set(step.pu.tolist()) | set(step.do.tolist()))
    assert zone == 2  # Jamaica Bay: no green ride in January 2024
    records = [
        {"PULocationID": unseen_pair[0], "DOLocationID": unseen_pair[1], "trip_distance": 2.0},
        {"PULocationID": zone, "DOLocationID": zone, "trip_distance": 5.0},
    ]
    for name, result in tuned.items():
        minutes = result.predictor.predict(records)
        assert minutes.shape == (2,) and np.isfinite(minutes).all(), name
        np.testing.assert_array_equal(minutes, result.predictor.predict(records))
    codes = step.from_request({"PULocationID": np.array([zone]), "DOLocationID": np.array([zone]), "trip_distance": np.array([1.0])})
    assert np.isnan(codes[0, :3]).all()  # unknown to the booster: missing, its default branch


def test_heavy_distance_tail_cannot_move_a_prediction(tuned):
    """Every model clips trip_distance at the training p99.9 (27.4 miles): a 201,421-mile
    request predicts what a 27.4-mile one does."""
    for name, result in tuned.items():
        far, clip = result.predictor.predict(
            [{"PULocationID": 74, "DOLocationID": 75, "trip_distance": d} for d in (201_421.68, 27.41329)]
        )
        assert far == pytest.approx(clip, abs=1e-9), name


def test_overrides_fix_hyperparameters_and_unknown_names_fail():
    spec = get_estimator("xgboost")
    space = spec.search_space(7, max_depth=10)
    assert space["max_depth"] == 10
    assert spec.split_overrides({"early_stopping_rounds": 3, "max_depth": None}) == (
        {},
        {"early_stopping_rounds": 3, "num_boost_round": 1000},
    )
    with pytest.raises(ValueError, match=r"^lasso: unknown setting 'alpah': expected one of alpha, max_iter$"):
        get_estimator("lasso").search_space(7, alpah=0.1)
    with pytest.raises(KeyError, match="unknown estimator 'ridge'"):
        get_estimator("ridge")


def test_predict_on_records_equals_predict_features_on_x_val(tuned, reference, reference_training_set):
    rides = reference.validation_rides.iloc[:300]
    for name in ESTIMATORS:
        predictor = tuned[name].predictor
        from_records = predictor.predict(rides[["PULocationID", "DOLocationID", "trip_distance"]])
        from_matrix = predictor.predict_training_set(reference_training_set)[:300]
        if predictor.feature_step.kind == "onehot":  # the training set's own matrix works as is
            np.testing.assert_array_equal(from_matrix, predictor.predict_features(reference_training_set.X_val[:300]))
        assert from_records.dtype == np.float64
        # same model, same rows; only the summation order inside forests may differ (1 ulp)
        np.testing.assert_allclose(from_records, from_matrix, rtol=1e-12, atol=0)
    single = tuned["linear_regression"].predictor.predict(REQUEST[0])
    assert single.shape == (1,)
    assert tuned["linear_regression"].predictor.predict(REQUEST)[0] == single[0]


def test_predictor_survives_joblib(tuned, tmp_path):
    for name in ESTIMATORS:
        predictor = tuned[name].predictor
        path = tmp_path / f"{name}.joblib"
        joblib.dump(predictor, path)
        loaded = joblib.load(path)
        assert isinstance(loaded, TripDurationPredictor)
        assert loaded.name == name
        np.testing.assert_array_equal(loaded.predict(REQUEST), predictor.predict(REQUEST))


@pytest.mark.parametrize(
    "records, message",
    [
        ([], "no records to score: send at least one {PULocationID, DOLocationID, trip_distance}"),
        (
            [{"PULocationID": 74, "trip_distance": 1.0}],
            "missing field(s) DOLocationID: each record needs PULocationID, DOLocationID, trip_distance",
        ),
        (
            [{"PULocationID": 74, "DOLocationID": 999, "trip_distance": 1.0}],
            "field 'DOLocationID' must be a TLC zone id between 1 and 265, got 999 in record 0",
        ),
        (
            [REQUEST[0], {"PULocationID": 74, "DOLocationID": 75, "trip_distance": "far"}],
            "field 'trip_distance' must be a finite number, got 'far' in record 1",
        ),
        (
            [{"PULocationID": 74, "DOLocationID": 75, "trip_distance": -2.0}],
            "field 'trip_distance' must not be negative, got -2.0 in record 0",
        ),
        (
            [REQUEST[0], {"PULocationID": 74.5, "DOLocationID": 75, "trip_distance": 1.0}],
            "field 'PULocationID' must be a TLC zone id between 1 and 265, got 74.5 in record 1",
        ),
    ],
)
def test_bad_records_raise_invalid_request_error(tuned, records, message):
    with pytest.raises(InvalidRequestError) as caught:
        tuned["linear_regression"].predictor.predict(records)
    assert str(caught.value) == message


def test_predict_features_rejects_a_matrix_of_another_width(tuned, reference_training_set):
    with pytest.raises(ValueError, match=r"^lasso: matrix has 5093 features but the model was trained on 5094$"):
        tuned["lasso"].predictor.predict_features(reference_training_set.X_val[:5, :5093])


def test_on_trial_reports_every_trial_in_order(reference_training_set):
    seen: list[TrialResult] = []
    result = tune(ESTIMATORS["lasso"], reference_training_set, 3, 5, on_trial=seen.append, alpha=0.01)
    assert [(t.index, t.total) for t in seen] == [(1, 3), (2, 3), (3, 3)]
    assert seen == result.trials
    assert all(t.seconds > 0 and t.params["alpha"] == 0.01 for t in seen)
    assert [t.best_loss for t in seen] == list(np.minimum.accumulate([t.loss for t in seen]))


def test_clean_params_gives_plain_python_values():
    cleaned = clean_params({"n_estimators": np.float64(20.0), "alpha": np.float64(0.5), "fit_intercept": np.bool_(True)})
    assert cleaned == {"alpha": 0.5, "fit_intercept": True, "n_estimators": 20}
    assert [type(v) for v in cleaned.values()] == [float, bool, int]


def test_available_threads_respects_affinity_and_the_cap():
    import os

    assert available_threads() == len(os.sched_getaffinity(0))
    assert available_threads(1) == 1
    assert available_threads(64) == len(os.sched_getaffinity(0))


def test_small_inputs_use_a_single_threaded_view_of_a_threaded_forest(tuned, reference, tmp_path):
    """A forest trained on several threads predicts a few records on one thread, averaging its
    trees itself: the same minutes as sklearn's own single-threaded predict (bit for bit),
    without touching the fitted estimator and without pickling the view."""
    import copy

    from taxi_assets.ml.predictor import SMALL_INPUT_ROWS

    trained = tuned["random_forest"].predictor
    threaded = copy.copy(trained.estimator)
    threaded.n_jobs = 2
    predictor = TripDurationPredictor(trained.feature_step, threaded, "random_forest")
    rides = reference.validation_rides[["PULocationID", "DOLocationID", "trip_distance"]].iloc[:50]
    one_by_one = np.concatenate([predictor.predict(rides.iloc[i : i + 1]) for i in range(len(rides))])
    sequential = copy.copy(threaded)
    sequential.n_jobs = 1
    np.testing.assert_array_equal(one_by_one, sequential.predict(predictor.features(rides)))
    np.testing.assert_allclose(one_by_one, threaded.predict(predictor.features(rides)), rtol=1e-12, atol=0)
    view = predictor._single_threaded()
    assert view is not threaded and view.n_jobs == 1 and view.estimators_ is threaded.estimators_
    assert threaded.n_jobs == 2
    # a large batch goes to the threaded estimator, through sklearn
    big = reference.validation_rides[["PULocationID", "DOLocationID", "trip_distance"]].iloc[:SMALL_INPUT_ROWS]
    np.testing.assert_allclose(predictor.predict(big)[:50], one_by_one, rtol=1e-12, atol=0)
    path = tmp_path / "forest.joblib"
    joblib.dump(predictor, path)
    loaded = joblib.load(path)
    assert "_single_threaded_view" not in vars(loaded) and loaded.estimator.n_jobs == 2
    np.testing.assert_array_equal(loaded.predict(rides.iloc[:3]), one_by_one[:3])


def test_small_inputs_use_a_single_threaded_booster_copy(tuned, reference):
    booster = tuned["xgboost"].predictor.estimator
    predictor = TripDurationPredictor(tuned["xgboost"].predictor.feature_step, booster, "xgboost")
    rides = reference.validation_rides[["PULocationID", "DOLocationID", "trip_distance"]].iloc[:20]
    one_by_one = np.concatenate([predictor.predict(rides.iloc[i : i + 1]) for i in range(len(rides))])
    np.testing.assert_array_equal(one_by_one, tuned["xgboost"].predictor.predict(rides))
    view = predictor._single_threaded()
    assert view is not booster and view.num_boosted_rounds() == booster.num_boosted_rounds()
    assert json.loads(view.save_config())["learner"]["generic_param"]["nthread"] == "1"
    assert json.loads(booster.save_config())["learner"]["generic_param"]["nthread"] != "1" or available_threads() == 1
