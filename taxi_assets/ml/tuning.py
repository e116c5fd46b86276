"""Hyperparameter search: hyperopt TPE minimizing validation RMSE, seeded and repeatable.

``tune(spec, training_set, max_evaluations, random_state)`` runs ``max_evaluations`` TPE
trials of ``spec`` (see :mod:`taxi_assets.ml.estimators`) and returns the best model as a
:class:`~taxi_assets.ml.predictor.TripDurationPredictor` with its validation metrics.

Per search, once: the entry's representation is fitted on the training rides
(:func:`taxi_assets.ml.representation.fit_representation`: the distance clip, the zone and pair
categories) and the training and validation inputs are built; an entry with
``max_train_rows`` trains on that many rides drawn with ``random_state``
(:func:`~taxi_assets.ml.estimators.training_rows`), and a refitted entry with
``max_search_rows`` runs its trials on such a sample; a booster's early-stopping slice (the
training window's last week, :func:`~taxi_assets.ml.dataset.early_stopping_mask`) is split
off its trials' rides. Each trial fits and is scored on the validation month (on a month
of more than 250,000 validation rides, on a seeded sample of 250,000 of them:
:data:`MAX_TRIAL_VALIDATION_ROWS`); the validation month never stops a fit, and the kept
model's metrics are always computed on every validation ride.

Repeatable: TPE draws from ``np.random.default_rng(random_state)`` (hyperopt 0.3 wants a
``Generator``), and the estimators get ``random_state`` in their parameters, so the same
config and data give the same parameters and the same RMSE. The course called ``fmin``
without ``rstate``: each run searched different points.

The final model is the best trial's fitted estimator; for the boosters (``spec.refit``) it is
that trial's parameters refitted on the whole training window, early-stopping week included,
for the rounds early stopping picked (scaled by the added rides), and the metrics are the
refitted model's. Each model is scored exactly as serving scores it
(``TripDurationPredictor.predict_features``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from taxi_assets.ml.dataset import TrainingSet, early_stopping_mask
from taxi_assets.ml.estimators import EstimatorSpec, available_threads, clean_params, training_rows
from taxi_assets.ml.metrics import baseline_rmse, regression_metrics
from taxi_assets.ml.predictor import TripDurationPredictor
from taxi_assets.ml.representation import FeatureStep, fit_representation


@dataclass(frozen=True)
class TrialResult:
    """One hyperopt evaluation, as handed to ``on_trial`` (``index`` counts from 1)."""

    index: int
    total: int
    params: dict[str, Any]
    loss: float  # validation RMSE (minutes)
    best_loss: float  # best RMSE so far, this trial included
    seconds: float

    @property
    def rmse(self) -> float:
        return self.loss

    @property
    def is_best(self) -> bool:
        return self.loss == self.best_loss


@dataclass
class TuningResult:
    estimator: str
    best_params: dict[str, Any]
    predictor: TripDurationPredictor
    metrics: dict[str, float]  # rmse, mse, mae, r2 on the validation set
    baseline_rmse: float
    trials: list[TrialResult] = field(default_factory=list)
    train_seconds: float = 0.0  # wall time of the whole search
    fit_options: dict[str, Any] = field(default_factory=dict)
    best_trial: int = 0  # index of the trial whose model (or parameters, when refitted) is kept
    # How the model was trained: representation, clip, categories, rides fitted / stopped on,
    # the cap, refit rounds (also logged to MLflow as params by whoever wants them).
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def beats_baseline(self) -> bool:
        return self.metrics["rmse"] < self.baseline_rmse


# Above this many validation rides (a yellow month has 1.6 million), the trials are compared
# on a seeded sample of them: scoring a 300-round booster on 1.6 M rides costs ~90 s a trial.
MAX_TRIAL_VALIDATION_ROWS = 250_000


def _subset(X, rows):
    return X if rows is None else X[rows]


def tune(
    spec: EstimatorSpec,
    training_set: TrainingSet,
    max_evaluations: int,
    random_state: int,
    on_trial: Callable[[TrialResult], None] | None = None,
    profile: str = "quick",
    n_jobs: int | None = None,
    extended_features: bool | None = None,
    **spec_overrides: Any,
) -> TuningResult:
    """Search ``spec``'s space with TPE, keep the best model, score it on the validation month.

    ``spec_overrides`` fix hyperparameters (``max_depth=10``) or set fit options
    (``early_stopping_rounds=3``); ``n_jobs`` defaults to :func:`available_threads` for
    estimators that can use threads; ``extended_features`` (default: the training set's own
    setting) adds the pickup hour and day of week.
    """
    from hyperopt import STATUS_OK, Trials, fmin, tpe

    if max_evaluations < 1:
        raise ValueError(f"{spec.name}: max_evaluations must be at least 1, got {max_evaluations}")
    space = spec.search_space(random_state, profile=profile, **spec_overrides)
    _, fit_options = spec.split_overrides(spec_overrides, space)
    threads = (n_jobs or available_threads()) if spec.parallel else 1
    ts = training_set
    started = time.perf_counter()

    step = fit_representation(spec.representation, ts, extended=extended_features)
    y_all = np.asarray(ts.y_train, dtype=np.float64)
    rows = training_rows(len(y_all), spec.max_train_rows, random_state)
    X_all, y_all = _subset(step.from_training_set(ts, "train"), rows), _subset(y_all, rows)
    X_val = step.from_training_set(ts, "val")
    # The trials are compared on at most MAX_TRIAL_VALIDATION_ROWS validation rides (a seeded
    # sample on big months); the kept model is scored on all of them.
    scored = training_rows(len(ts.y_val), MAX_TRIAL_VALIDATION_ROWS, random_state)
    X_trial_val, y_trial_val = _subset(X_val, scored), _subset(np.asarray(ts.y_val), scored)
    input_kwargs = _input_kwargs(step)
    training = {**step.describe(), "train_rides": int(len(y_all)), "window_rides": int(len(ts.y_train))}
    # The trials' rides: all of them, or a seeded sample of max_search_rows (refit on all).
    search = training_rows(len(y_all), spec.max_search_rows, random_state)
    X_search, y_search = _subset(X_all, search), _subset(y_all, search)
    if search is not None:
        training["search_rides"] = int(len(y_search))
    if scored is not None:
        training["trial_validation_rides"] = int(len(y_trial_val))
    if spec.early_stopping:
        pickups = _subset(_subset(ts.rides("train")["pickup_datetime"].to_numpy(), rows), search)
        stop = early_stopping_mask(pickups)
        X_fit, y_fit, X_es, y_es = X_search[~stop], y_search[~stop], X_search[stop], y_search[stop]
        training.update(fitted_rides=int((~stop).sum()), early_stopping_rides=int(stop.sum()),
                        early_stopping_from=str(pickups[stop].min()))  # fmt: skip
    else:
        X_fit, y_fit, X_es, y_es = X_search, y_search, None, None

    trials: list[TrialResult] = []
    best: dict[str, Any] = {"loss": np.inf, "model": None, "params": None, "index": 0}

    def objective(sampled: dict[str, Any]) -> dict[str, Any]:
        params = clean_params(sampled)
        t0 = time.perf_counter()
        model = spec.fit(params, X_fit, y_fit, X_es, y_es, n_jobs=threads, **fit_options, **input_kwargs)
        predictions = TripDurationPredictor(step, model, spec.name).predict_features(X_trial_val)
        loss = regression_metrics(y_trial_val, predictions)["rmse"]
        seconds = time.perf_counter() - t0
        index = len(trials) + 1
        if loss < best["loss"]:
            best.update(loss=loss, model=model, params=params, index=index)
        trial = TrialResult(index, max_evaluations, params, loss, float(best["loss"]), seconds)
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
        return {"loss": loss, "status": STATUS_OK}

    fmin(
        fn=objective,
        space=space,
        algo=tpe.suggest,
        max_evals=max_evaluations,
        trials=Trials(),
        rstate=np.random.default_rng(random_state),
        show_progressbar=False,
    )
    if best["model"] is None:  # every trial scored NaN/inf
        raise RuntimeError(f"{spec.name}: no trial produced a finite validation RMSE; check the training set")
    model = best["model"]
    if spec.refit is not None:
        t0 = time.perf_counter()
        model = spec.refit(best["params"], model, X_all, y_all, n_jobs=threads, **fit_options, **input_kwargs)
        training.update(refit_seconds=round(time.perf_counter() - t0, 3), refit_rides=int(len(y_all)),
                        best_trial_rmse=float(best["loss"]))  # fmt: skip
    predictor = TripDurationPredictor(step, model, spec.name)
    metrics = regression_metrics(ts.y_val, predictor.predict_features(X_val))
    return TuningResult(
        estimator=spec.name,
        best_params=best["params"],
        predictor=predictor,
        metrics=metrics,
        baseline_rmse=baseline_rmse(ts.y_train, ts.y_val),
        trials=trials,
        train_seconds=time.perf_counter() - started,
        fit_options=fit_options,
        best_trial=best["index"],
        training=training,
    )


def _input_kwargs(step: FeatureStep) -> dict[str, Any]:
    """What a categorical representation tells ``fit`` (column names and categorical columns)."""
    columns = getattr(step, "categorical_columns", [])
    if not columns:
        return {}
    return {"feature_names": step.feature_names, "categorical_features": list(columns)}
