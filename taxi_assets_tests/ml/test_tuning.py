"""``taxi_assets/ml/tuning.py`` with a recording estimator on synthetic rides: what each trial is
fitted on (the window without its last week), what the boosters early-stop on (that week),
what trials are compared on (RMSE on that week), what the kept parameters are refitted on (the
whole window) and what is scored (the validation month, once): poisoning the validation
durations moves the score and nothing else."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from taxi_assets.ml import tuning
from taxi_assets.ml.dataset import selection_mask
from taxi_assets.ml.estimators import EstimatorSpec
from taxi_assets.ml.metrics import baseline_rmse, regression_metrics
from taxi_assets.ml.tuning import TrialResult, tune

pytestmark = pytest.mark.fast

OFFSETS = [-3.0, 0.0, 0.5, 4.0]


class Shifted:
    """Predicts the mean of the durations it was fitted on, plus ``offset``."""

    def __init__(self, y, offset, rounds=None):
        self.value = float(np.mean(y)) + offset
        if rounds is not None:
            self.early_stopped_rounds = rounds

    def predict(self, X):
        return np.full(X.shape[0], self.value)


class Recorder:
    """A spec's ``fit``/``refit`` that records what they were handed."""

    def __init__(self):
        self.fits: list[dict] = []
        self.refits: list[dict] = []

    def fit(self, params, X, y, X_es, y_es, n_jobs=1, **options):
        self.fits.append({"params": params, "X": X, "y": np.array(y), "X_es": X_es, "y_es": None if y_es is None else np.array(y_es),
                          "n_jobs": n_jobs, "options": options})  # fmt: skip
        return Shifted(y, params["offset"])

    def refit(self, params, model, X, y, n_jobs=1, **options):
        self.refits.append({"params": params, "model": model, "X": X, "y": np.array(y), "n_jobs": n_jobs, "options": options})
        return Shifted(y, params["offset"], rounds=np.int64(17))


def spec(recorder: Recorder, **changes) -> EstimatorSpec:
    from hyperopt import hp

    base = EstimatorSpec(
        name="recorded", description="records its inputs",
        spaces={"quick": lambda random_state: {"offset": hp.choice("offset", OFFSETS), "seed": random_state},
                "course": lambda random_state: {"offset": hp.choice("offset", [7.0, 8.0]), "depth": hp.choice("depth", [1, 2])}},
        fit=recorder.fit, max_evaluations=8,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def slice_of(ts):
    pickups = ts.train_rides["pickup_datetime"].to_numpy()
    return selection_mask(pickups)


def test_trials_fit_without_the_last_week_are_compared_on_it_and_the_best_is_refit_on_everything(small_training_set):
    ts, recorder = small_training_set, Recorder()
    seen: list[TrialResult] = []
    result = tune(spec(recorder), ts, max_evaluations=8, random_state=1, on_trial=seen.append)
    chosen = slice_of(ts)
    assert 0.05 < chosen.mean() < 0.5
    trials = recorder.fits[:-1]  # the last fit is the refit (no refit function: fit on the whole window)
    assert len(trials) == 8 and seen == result.trials
    for fit in trials:
        np.testing.assert_array_equal(fit["y"], ts.y_train[~chosen])
        assert fit["X"].shape == (int((~chosen).sum()), ts.X_train.shape[1]) and fit["X_es"] is None and fit["y_es"] is None
        assert fit["n_jobs"] == 1 and fit["options"] == {}
    # compared: each trial's loss is its RMSE on the last week of the window
    for trial, fit in zip(result.trials, trials):
        expected = regression_metrics(ts.y_train[chosen], np.full(chosen.sum(), ts.y_train[~chosen].mean() + fit["params"]["offset"]))
        assert trial.loss == pytest.approx(expected["rmse"]) and trial.rmse == trial.loss
        assert trial.params == fit["params"] and trial.total == 8
    assert [t.index for t in result.trials] == list(range(1, 9))
    assert [t.best_loss for t in result.trials] == list(np.minimum.accumulate([t.loss for t in result.trials]))
    assert [t.is_best for t in result.trials] == [t.loss == t.best_loss for t in result.trials]
    best = min(result.trials, key=lambda t: (t.loss, t.index))
    assert result.best_trial == best.index and result.best_params == best.params
    assert result.selection_rmse == best.loss == result.training["selection_rmse"]
    # refit: the kept parameters on every ride of the window, with no early-stopping set
    refit = recorder.fits[-1]
    assert refit["params"] == best.params and refit["X_es"] is None and refit["y_es"] is None
    np.testing.assert_array_equal(refit["y"], ts.y_train)
    assert refit["X"].shape == ts.X_train.shape
    # scored once, on the validation month
    value = ts.y_train.mean() + best.params["offset"]
    assert result.metrics == pytest.approx(regression_metrics(ts.y_val, np.full(len(ts.y_val), value)))
    assert result.baseline_rmse == baseline_rmse(ts.y_train, ts.y_val)
    assert result.estimator == "recorded" and result.fit_options == {} and 0 < result.train_seconds < 600
    assert all(0 <= t.seconds <= result.train_seconds for t in result.trials)
    refit_seconds = result.training["refit_seconds"]
    assert type(refit_seconds) is float and 0 <= refit_seconds <= result.train_seconds
    # the kept model travels in a predictor named after the estimator
    assert result.predictor.name == "recorded" and result.predictor.estimator is not None
    assert result.predictor.predict([{"PULocationID": 10, "DOLocationID": 11, "trip_distance": 1.0}]).tolist() == [pytest.approx(value)]
    assert result.beats_baseline == (result.metrics["rmse"] < result.baseline_rmse)


def test_the_facts_of_the_split(small_training_set):
    ts = small_training_set
    chosen = slice_of(ts)
    facts = tune(spec(Recorder()), ts, max_evaluations=2, random_state=1).training
    pickups = ts.train_rides["pickup_datetime"].to_numpy()
    assert (facts["train_rides"], facts["window_rides"], facts["fitted_rides"], facts["selection_rides"]) == (
        600, 600, int((~chosen).sum()), int(chosen.sum())
    )
    assert facts["selection_from"] == str(pickups[chosen].min().astype("datetime64[us]"))
    assert "search_rides" not in facts and "selection_scored_rides" not in facts and "early_stopped_rounds" not in facts
    assert facts["representation"] == "onehot" and facts["refit_seconds"] >= 0


def test_boosters_early_stop_on_the_last_week_and_refit_with_their_options(small_training_set):
    ts, recorder = small_training_set, Recorder()
    booster = spec(recorder, early_stopping=True, refit=recorder.refit, fit_options={"rounds": 5}, parallel=True)
    result = tune(booster, ts, max_evaluations=3, random_state=2, n_jobs=3, rounds=9)
    chosen = slice_of(ts)
    assert len(recorder.fits) == 3 and len(recorder.refits) == 1
    for fit in recorder.fits:
        np.testing.assert_array_equal(fit["y"], ts.y_train[~chosen])
        np.testing.assert_array_equal(fit["y_es"], ts.y_train[chosen])
        assert fit["X_es"].shape[0] == int(chosen.sum()) and fit["n_jobs"] == 3 and fit["options"] == {"rounds": 9}
    refit = recorder.refits[0]
    np.testing.assert_array_equal(refit["y"], ts.y_train)
    assert refit["X"].shape == ts.X_train.shape
    assert refit["params"] == result.best_params and refit["options"] == {"rounds": 9} and refit["n_jobs"] == 3
    best_fit = [f for f in recorder.fits if f["params"] == result.best_params][0]
    assert refit["model"].value == pytest.approx(best_fit["y"].mean() + result.best_params["offset"])
    assert result.training["early_stopped_rounds"] == 17 and type(result.training["early_stopped_rounds"]) is int
    assert result.fit_options == {"rounds": 9}


def test_poisoned_validation_durations_move_the_score_and_nothing_else(small_training_set):
    ts = small_training_set
    poisoned = dataclasses.replace(ts, y_val=ts.y_val * 10 + 100)
    clean, bad = (tune(spec(Recorder()), t, max_evaluations=6, random_state=3) for t in (ts, poisoned))
    assert [t.loss for t in clean.trials] == [t.loss for t in bad.trials] and clean.best_params == bad.best_params
    assert clean.selection_rmse == bad.selection_rmse
    assert bad.metrics["rmse"] > clean.metrics["rmse"] + 50


def test_search_caps_take_a_seeded_sample_and_name_it(small_training_set, monkeypatch):
    from taxi_assets.ml.estimators import training_rows

    ts, recorder = small_training_set, Recorder()
    monkeypatch.setattr(tuning, "MAX_SELECTION_ROWS", 20)
    capped = spec(recorder, refit=recorder.refit, max_search_rows=300, max_train_rows=500)
    result = tune(capped, ts, max_evaluations=2, random_state=4)
    facts = result.training
    assert (facts["window_rides"], facts["train_rides"], facts["search_rides"], facts["selection_scored_rides"]) == (600, 500, 300, 20)
    # the same seeded draws, by hand: the window's rides, the trials' rides, the rides compared on
    rows = training_rows(600, 500, 4)
    y_all, pickups = ts.y_train[rows], ts.train_rides["pickup_datetime"].to_numpy()[rows]
    search = training_rows(500, 300, 4)
    chosen = selection_mask(pickups[search])
    y_fit, y_slice = y_all[search][~chosen], y_all[search][chosen]
    compared = y_slice[training_rows(len(y_slice), 20, 4)]
    np.testing.assert_array_equal(recorder.fits[0]["y"], y_fit)
    assert recorder.fits[0]["X"].shape[0] == len(y_fit) and recorder.fits[0]["y_es"] is None
    np.testing.assert_array_equal(recorder.refits[0]["y"], y_all)
    assert recorder.refits[0]["X"].shape[0] == 500
    first = result.trials[0]
    assert first.loss == pytest.approx(regression_metrics(compared, np.full(20, y_fit.mean() + first.params["offset"]))["rmse"])
    assert (facts["fitted_rides"], facts["selection_rides"]) == (len(y_fit), len(y_slice))


def test_threads_go_to_parallel_estimators_only(small_training_set, monkeypatch):
    monkeypatch.setattr(tuning, "available_threads", lambda: 5)
    for parallel, n_jobs, expected in ((True, None, 5), (True, 2, 2), (False, 2, 1)):
        recorder = Recorder()
        tune(spec(recorder, parallel=parallel), small_training_set, max_evaluations=1, random_state=0, n_jobs=n_jobs)
        assert {f["n_jobs"] for f in recorder.fits} == {expected}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflowing RMSE
def test_no_evaluations_or_no_finite_trial_is_one_error(small_training_set):
    with pytest.raises(ValueError) as caught:
        tune(spec(Recorder()), small_training_set, max_evaluations=0, random_state=0)
    assert str(caught.value) == "recorded: max_evaluations must be at least 1, got 0"

    class Closing(tuning.LocalTraining):
        closed = 0

        def predict_selection(self, model):
            return np.full(len(self.selection_y), 1e300)  # an RMSE of inf

        def close(self):
            Closing.closed += 1

    with pytest.raises(RuntimeError) as caught:
        tune(spec(Recorder()), small_training_set, max_evaluations=2, random_state=0, backend=Closing)
    assert str(caught.value) == "recorded: no trial produced a finite selection RMSE; check the training set"
    assert Closing.closed == 1


def test_categorical_representations_tell_fit_and_refit_their_columns(small_training_set):
    columns = {"feature_names": ["PU", "DO", "PU_DO", "trip_distance"], "categorical_features": [0, 1, 2]}
    recorder = Recorder()
    tune(spec(recorder, representation="categorical"), small_training_set, max_evaluations=1, random_state=0)
    assert [f["options"] for f in recorder.fits] == [columns, columns]  # the trial, then the refit
    assert recorder.fits[0]["X"].shape[1] == 4
    recorder = Recorder()
    tune(spec(recorder, representation="categorical", refit=recorder.refit), small_training_set, max_evaluations=1, random_state=0)
    assert recorder.refits[0]["options"] == columns


def test_the_profile_overrides_and_extended_features_reach_the_search(small_training_set, capfd):
    recorder = Recorder()
    result = tune(spec(recorder), small_training_set, max_evaluations=3, random_state=0, profile="course", depth=2)
    assert {t.params["offset"] for t in result.trials} <= {7.0, 8.0} and {t.params["depth"] for t in result.trials} == {2}
    fixed = tune(spec(Recorder()), small_training_set, max_evaluations=3, random_state=0, offset=0.5)
    assert {t.params["offset"] for t in fixed.trials} == {0.5}
    extended = tune(spec(Recorder()), small_training_set, max_evaluations=1, random_state=0, extended_features=True)
    assert extended.training["extended_features"] is True and extended.training["features"] == small_training_set.num_features + 31
    printed = capfd.readouterr()
    assert "trial" not in printed.out + printed.err  # no progress bar in the step's log


def test_the_seed_decides_the_search(small_training_set):
    runs = [[t.params for t in tune(spec(Recorder()), small_training_set, max_evaluations=6, random_state=seed).trials]
            for seed in (5, 5, 6)]  # fmt: skip
    assert runs[0] == runs[1] and runs[0] != runs[2]
    assert {p["seed"] for p in runs[2]} == {6}  # the space is built with the seed (estimators take it as random_state)
