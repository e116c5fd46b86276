"""Feature steps, early-stopping slices and training caps on small hand-made rides (no real
months, no Postgres): what each representation computes, that it travels with the model, and
that serving encodes a request exactly as tuning encoded the training rides."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from taxi_assets.ml import dataset
from taxi_assets.ml.estimators import ESTIMATORS, refit_rounds, training_rows
from taxi_assets.ml.features import InvalidRequestError
from taxi_assets.ml.predictor import TripDurationPredictor
from taxi_assets.ml.representation import (
    CompactFeatures,
    OneHotFeatures,
    distance_clip,
    fit_representation,
)
from taxi_assets_tests.rides import synthetic_rides

pytestmark = pytest.mark.fast

BOUNDARY = pd.Timestamp("2024-02-01")


def cleaned_rides() -> pd.DataFrame:
    """Cleaned-like rides: January (train) then February (validation), zones 10..14, one
    201,421-mile ride in training."""
    return synthetic_rides(2000, 300, long_ride_miles=201_421.68)


@pytest.fixture(scope="module")
def ts():
    return dataset.build_training_set(cleaned_rides(), BOUNDARY, {"months": ["2024-01", "2024-02"]}, extended_features=False)


@pytest.fixture(scope="module")
def ts_extended():
    return dataset.build_training_set(cleaned_rides(), BOUNDARY, extended_features=True)


def test_distance_clip_is_the_training_p999_and_travels_with_every_step(ts):
    distance = ts.train_rides["trip_distance"].to_numpy()
    clip = distance_clip(distance)
    assert clip == np.quantile(distance, 0.999)
    assert clip < 30  # the one impossible ride among 2,000 does not set the clip
    for kind in ("onehot", "ordinal", "categorical"):
        step = fit_representation(kind, ts)
        assert step.clip == clip
        assert step.kind == kind
        X = step.from_training_set(ts, "train")
        column = step.feature_names.index("trip_distance")
        values = X[:, column].toarray().ravel() if hasattr(X, "toarray") else X[:, column]
        assert values.max() == pytest.approx(clip, rel=1e-6)
        assert values[7] == pytest.approx(clip, rel=1e-6)  # the 201,421-mile ride
    # the training set's own matrix is never modified
    assert ts.X_train[7, ts.vectorizer.vocabulary_["trip_distance"]] == 201_421.68


def test_onehot_is_the_course_matrix_with_the_clip(ts):
    step = fit_representation("onehot", ts)
    assert isinstance(step, OneHotFeatures) and step.feature_names == ts.feature_names
    X = step.from_training_set(ts, "val")
    assert X.shape == ts.X_val.shape
    other = X != ts.X_val
    # only the distance column may differ, and only where the validation ride is beyond the clip
    rows, cols = other.nonzero()
    assert set(cols.tolist()) <= {ts.vectorizer.vocabulary_["trip_distance"]}
    assert (ts.val_rides["trip_distance"].to_numpy()[rows] > step.clip).all()
    # clipping again changes nothing (predict_features may get a clipped or an unclipped matrix)
    assert (step.transform(X) != X).nnz == 0


def test_compact_codes_categorical_and_ordinal(ts):
    cat = fit_representation("categorical", ts)
    assert isinstance(cat, CompactFeatures) and cat.feature_names == ["PU", "DO", "PU_DO", "trip_distance"]
    assert cat.pu.tolist() == [10, 11, 12, 13, 14] and cat.categorical_columns == [0, 1, 2]
    assert cat.feature_types == ["c", "c", "c", "q"]
    X = cat.encode([10, 14, 12, 9], [10, 14, 13, 10], [1.0, 2.0, 3.0, 4.0])
    assert X.dtype == np.float32 and X.shape == (4, 4)
    assert X[:, 0].tolist()[:3] == [0.0, 4.0, 2.0] and np.isnan(X[3, 0])  # zone 9 never seen: missing
    assert X[0, 2] == 0.0 and X[1, 2] == len(cat.pairs) - 1  # pair codes 0..n-1
    assert np.isnan(X[3, 2])
    ordinal = fit_representation("ordinal", ts)
    assert ordinal.categorical_columns == [] and ordinal.feature_types == ["q"] * 4
    Y = ordinal.encode([10, 9, 12], [10, 10, 99], [1.0, 2.0, 3.0])
    assert Y[:, 0].tolist() == [10.0, 9.0, 12.0]  # zone ids as numbers
    keys = ordinal.pairs.tolist()
    assert Y[0, 2] == keys.index(10_010)
    assert Y[1, 2] == -0.5  # an unseen pair before every training pair
    # 12_099 is unseen: half-way between 12_014 and 13_010, its neighbours in pickup-major order
    assert Y[2, 2] == keys.index(12_014) + 0.5


def test_request_and_training_set_give_the_same_input(ts):
    rides = ts.val_rides
    values = {c: rides[c].to_numpy() for c in ("PULocationID", "DOLocationID", "trip_distance")}
    for kind in ("onehot", "ordinal", "categorical"):
        step = fit_representation(kind, ts)
        a, b = step.from_request(values), step.from_training_set(ts, "val")
        if hasattr(a, "toarray"):
            assert (a != b).nnz == 0
        else:
            np.testing.assert_array_equal(a, b)


def test_extended_features_add_hour_and_day_of_week(ts_extended):
    assert ts_extended.info["extended_features"] is True
    onehot = fit_representation("onehot", ts_extended)
    assert onehot.num_features == ts_extended.num_features + 31
    assert onehot.feature_names[-31:] == [f"pickup_hour={h}" for h in range(24)] + [f"pickup_dow={d}" for d in range(7)]
    X = onehot.from_training_set(ts_extended, "val")
    pickups = pd.DatetimeIndex(ts_extended.val_rides["pickup_datetime"])
    first = X[0].toarray().ravel()
    assert first[ts_extended.num_features + pickups[0].hour] == 1.0
    assert first[ts_extended.num_features + 24 + pickups[0].dayofweek] == 1.0
    assert X[:, ts_extended.num_features:].sum(axis=1).A1.tolist() == [2.0] * X.shape[0]
    compact = fit_representation("categorical", ts_extended)
    C = compact.from_training_set(ts_extended, "val")
    assert compact.feature_names[-2:] == ["pickup_hour", "pickup_dow"]
    np.testing.assert_array_equal(C[:, 4], pickups.hour.to_numpy())
    np.testing.assert_array_equal(C[:, 5], pickups.dayofweek.to_numpy())
    assert fit_representation("ordinal", ts_extended, extended=False).num_features == 4


def test_extended_requests_need_a_pickup_time(ts_extended):
    from sklearn.linear_model import LinearRegression

    step = fit_representation("onehot", ts_extended)
    model = LinearRegression().fit(step.from_training_set(ts_extended, "train"), ts_extended.y_train)
    predictor = TripDurationPredictor(step, model, "linear_regression")
    assert predictor.request_fields == ["PULocationID", "DOLocationID", "trip_distance", "pickup_datetime"]
    ride = {"PULocationID": 10, "DOLocationID": 11, "trip_distance": 2.0}
    at_eight = predictor.predict({**ride, "pickup_datetime": "2024-02-05T08:15:00"})
    at_eight_ts = predictor.predict(pd.DataFrame([{**ride, "pickup_datetime": pd.Timestamp("2024-02-05 08:15")}]))
    assert at_eight.shape == (1,) and at_eight[0] == at_eight_ts[0]
    assert predictor.predict({**ride, "pickup_datetime": "2024-02-05T03:00:00"})[0] != at_eight[0]
    with pytest.raises(InvalidRequestError) as missing:
        predictor.predict(ride)
    assert str(missing.value) == (
        "missing field(s) pickup_datetime: each record needs PULocationID, DOLocationID, trip_distance, "
        "pickup_datetime (this model uses the pickup hour and day of week)"
    )
    for bad, shown in (("yesterday", "'yesterday'"), (None, "None"), (1706774400, "1706774400"), (True, "True")):
        with pytest.raises(InvalidRequestError) as caught:
            predictor.predict([{**ride, "pickup_datetime": "2024-02-05T08:15:00"}, {**ride, "pickup_datetime": bad}])
        assert str(caught.value) == (
            "field 'pickup_datetime' must be a date and time (ISO 8601, e.g. '2024-02-01T08:30:00'), "
            f"got {shown} in record 1"
        )


def test_example_records_carry_what_the_models_need(ts, ts_extended):
    records = dataset.example_records(ts, rows=3)
    assert [set(r) for r in records] == [{"PULocationID", "DOLocationID", "trip_distance"}] * 3
    first = ts.train_rides.iloc[0]
    assert records[0] == {"PULocationID": int(first["PULocationID"]), "DOLocationID": int(first["DOLocationID"]),
                          "trip_distance": float(first["trip_distance"])}  # fmt: skip
    extended = dataset.example_records(ts_extended, rows=2)
    assert extended[0]["pickup_datetime"] == pd.Timestamp(ts_extended.train_rides["pickup_datetime"].iloc[0]).isoformat()


def test_training_set_round_trips_its_rides(ts_extended, tmp_path):
    path = tmp_path / "ts.npz"
    dataset.save_training_set(ts_extended, path)
    back = dataset.load_training_set(path)
    for part in ("train", "val"):
        pd.testing.assert_frame_equal(back.rides(part), ts_extended.rides(part))
    assert back.extended_features is True
    assert (back.X_train != ts_extended.X_train).nnz == 0
    step, again = fit_representation("categorical", ts_extended), fit_representation("categorical", back)
    np.testing.assert_array_equal(step.from_training_set(ts_extended, "train"), again.from_training_set(back, "train"))
    with np.load(path) as z:  # plain arrays, no pickle
        assert z["train_PULocationID"].dtype == np.int16 and z["train_pickup_us"].dtype == np.int64
    with pytest.raises(ValueError, match=r"^part must be 'train' or 'val', got 'test'$"):
        back.rides("test")


def test_early_stopping_slice_is_the_last_week_of_training(ts):
    pickups = ts.train_rides["pickup_datetime"].to_numpy()
    mask = dataset.selection_mask(pickups)
    newest = pickups.max()
    assert (pickups[mask] > newest - np.timedelta64(7, "D")).all()
    assert (pickups[~mask] <= newest - np.timedelta64(7, "D")).all()
    assert 0.15 < mask.mean() < 0.3  # a week of a month
    # a window of two days: the last 7 days would be everything; the newest 20% instead
    two_days = np.datetime64("2024-01-30", "us") + (np.arange(100) * 1_700_000_000).astype("timedelta64[us]")
    fallback = dataset.selection_mask(two_days)
    assert fallback.sum() == 20 and fallback[-20:].all()
    with pytest.raises(ValueError, match="from 1 training ride"):
        dataset.selection_mask(two_days[:1])


def test_training_caps_and_refit_rounds():
    assert training_rows(1000, None, 7) is None and training_rows(1000, 1000, 7) is None
    rows = training_rows(1000, 100, 7)
    assert len(rows) == 100 and len(set(rows.tolist())) == 100 and (np.diff(rows) > 0).all()
    np.testing.assert_array_equal(rows, training_rows(1000, 100, 7))
    assert not np.array_equal(rows, training_rows(1000, 100, 8))
    assert refit_rounds(80, 41_691, 54_378) == 104
    assert refit_rounds(80, 0, 54_378) == 80
    caps = {name: spec.max_train_rows for name, spec in ESTIMATORS.items() if spec.max_train_rows}
    assert caps == {"lasso": 200_000, "linear_svr": 200_000, "extra_trees": 300_000, "gradient_boosting": 200_000,
                    "random_forest": 300_000}  # fmt: skip
    searched = {name: spec.max_search_rows for name, spec in ESTIMATORS.items() if spec.max_search_rows}
    assert searched == {"xgboost": 250_000, "lightgbm": 250_000}
    assert {n: ESTIMATORS[n].fit_options["num_boost_round"] for n in searched} == {"xgboost": 1_000, "lightgbm": 500}
    assert refit_rounds(100, 500_000, 1_642_876) == 150  # at most 1.5x the early-stopped rounds


def test_registry_decides_each_representation():
    got = {name: (spec.library, spec.representation, spec.early_stopping, spec.refit is not None)
           for name, spec in ESTIMATORS.items()}  # fmt: skip
    assert got == {
        "linear_regression": ("sklearn", "onehot", False, False),
        "lasso": ("sklearn", "onehot", False, False),
        "linear_svr": ("sklearn", "onehot", False, False),
        "extra_trees": ("sklearn", "ordinal", False, False),
        "gradient_boosting": ("sklearn", "ordinal", False, False),
        "random_forest": ("sklearn", "ordinal", False, False),
        "xgboost": ("xgboost", "categorical", True, True),
        "lightgbm": ("lightgbm", "categorical", True, True),
    }
    for name in ("extra_trees", "random_forest"):
        assert "max_features" in ESTIMATORS[name].search_space(0)
    with pytest.raises(ValueError, match=r"^bad: unknown representation 'sparse': expected one of onehot, ordinal, categorical$"):
        type(ESTIMATORS["lasso"])(name="bad", description="", spaces={}, fit=len, max_evaluations=1, representation="sparse")


def test_predictors_pickled_before_feature_steps_still_load(ts):
    """A predictor pickled by the previous version (a bare ``vectorizer`` attribute) loads as a
    one-hot predictor without clip and predicts as it did."""
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(ts.X_train, ts.y_train)
    old = TripDurationPredictor.__new__(TripDurationPredictor)
    old.__dict__.update(vectorizer=ts.vectorizer, estimator=model, name="linear_regression")  # the old layout
    loaded = pickle.loads(pickle.dumps(old))
    assert isinstance(loaded.feature_step, OneHotFeatures) and loaded.feature_step.clip is None
    ride = {"PULocationID": 10, "DOLocationID": 11, "trip_distance": 200.0}
    expected = model.predict(ts.vectorizer.transform([{"PU_DO": "10_11", "trip_distance": 200.0}]))
    np.testing.assert_allclose(loaded.predict(ride), expected, rtol=1e-12)


def test_the_ml_core_and_the_boosters_load_without_dagster_after_the_settings():
    """The settings load without Dagster and export OMP_WAIT_POLICY=PASSIVE before the
    boosters' OpenMP runtimes start (the code location reads them first); a value set wins."""
    code = (
        "import sys; from taxi_assets.settings import SETTINGS; import taxi_assets.ml.representation, "
        "taxi_assets.ml.tuning, taxi_assets.ml.leaderboard, taxi_assets.ml.explain, taxi_assets.ml.predictor, "
        "lightgbm, xgboost; import os; assert 'dagster' not in sys.modules, 'dagster imported'; "
        "print(os.environ['OMP_WAIT_POLICY'])"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "OMP_WAIT_POLICY": "active"})  # fmt: skip
    assert out.stdout.strip() == "ACTIVE"


@pytest.mark.fast
def test_no_module_of_the_core_imports_dagster():
    """Every module under taxi_assets/ml, taxi_assets/io and taxi_assets/registry, and
    taxi_assets.months, imported in a fresh interpreter, leaves Dagster out."""
    code = (
        "import importlib, pkgutil, sys, taxi_assets.ml, taxi_assets.io, taxi_assets.registry\n"
        "names = ['taxi_assets.months'] + [m.name for p in (taxi_assets.ml, taxi_assets.io, taxi_assets.registry)\n"
        "    for m in pkgutil.iter_modules(p.__path__, p.__name__ + '.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "    assert 'dagster' not in sys.modules, name\n"
        "print(len(names))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip()) >= 25


def test_boosters_search_on_a_sample_and_refit_on_every_ride(ts):
    """``max_search_rows``: the trials fit on a seeded sample (its last week stops them), the
    kept booster is refitted on all the training rides."""
    import dataclasses

    from taxi_assets.ml.tuning import tune

    spec = dataclasses.replace(ESTIMATORS["lightgbm"], max_search_rows=1_000)
    result = tune(spec, ts, 1, 5, num_leaves=8, num_boost_round=30, early_stopping_rounds=3)
    training = result.training
    assert training["search_rides"] == 1_000 and training["train_rides"] == 2_000
    assert training["fitted_rides"] + training["selection_rides"] == 1_000
    model = result.predictor.estimator
    assert model.current_iteration() == refit_rounds(model.early_stopped_rounds, training["fitted_rides"], 2_000)
    again = tune(spec, ts, 1, 5, num_leaves=8, num_boost_round=30, early_stopping_rounds=3)
    assert again.metrics == result.metrics
    with pytest.raises(ValueError, match=r"^lasso: max_search_rows needs a refit"):
        dataclasses.replace(ESTIMATORS["lasso"], max_search_rows=1_000)


def test_trials_on_a_big_window_are_compared_on_a_sample_of_its_last_week(ts, monkeypatch):
    """At most MAX_SELECTION_ROWS rides of the selection slice score a trial (a seeded sample);
    the kept model is refitted on the window and scored on every validation ride."""
    from taxi_assets.ml import tuning
    from taxi_assets.ml.metrics import regression_metrics
    from taxi_assets.ml.representation import fit_representation

    monkeypatch.setattr(tuning, "MAX_SELECTION_ROWS", 100)
    spec = ESTIMATORS["linear_regression"]
    result = tuning.tune(spec, ts, 1, 5)
    assert result.training["selection_scored_rides"] == 100 < result.training["selection_rides"]
    training = tuning.LocalTraining(spec, fit_representation("onehot", ts), ts, 5, 1, {})
    trial_model = training.fit(result.best_params)
    assert len(training.selection_y) == 100
    assert result.trials[0].loss == regression_metrics(training.selection_y, training.predict_selection(trial_model))["rmse"]
    assert result.metrics == regression_metrics(ts.y_val, result.predictor.predict_training_set(ts))
