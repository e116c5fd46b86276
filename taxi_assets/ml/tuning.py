"""Hyperparameter search: seeded hyperopt TPE, compared inside the training window, scored once.

``tune(spec, ts, max_evaluations, random_state)`` fits the entry's representation on the
training rides and splits the window's last week off as the *selection slice*
(:func:`~taxi_assets.ml.dataset.selection_mask`). Each trial fits on the rest of the window and
is compared on that slice (the boosters also early-stop on it). The best trial's parameters are
refitted on the whole window (boosters: for the rounds early stopping chose, scaled) and that
model is scored once on the validation month. So the validation RMSE is an out-of-sample
figure: poisoning the validation month's durations moves that figure and nothing else.

One search loop for every backend: :class:`LocalTraining` fits on this process;
:mod:`taxi_assets.ml.distributed` supplies the same three steps (fit, score on the slice,
refit) across a Dask cluster. Repeatable: TPE draws from ``np.random.default_rng(random_state)``
and the estimators get ``random_state``, so the same config and data give the same model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from taxi_assets.ml.dataset import TrainingSet, selection_mask
from taxi_assets.ml.estimators import EstimatorSpec, available_threads, clean_params, training_rows
from taxi_assets.ml.metrics import baseline_rmse, regression_metrics
from taxi_assets.ml.predictor import TripDurationPredictor
from taxi_assets.ml.representation import FeatureStep, fit_representation

# Trials are compared on at most this many rides of the selection slice (a seeded sample on
# big windows: a yellow month's last week holds ~400,000 rides).
MAX_SELECTION_ROWS = 250_000


@dataclass(frozen=True)
class TrialResult:
    """One hyperopt evaluation, as handed to ``on_trial`` (``index`` counts from 1)."""

    index: int
    total: int
    params: dict[str, Any]
    loss: float  # RMSE on the selection slice (minutes)
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
    metrics: dict[str, float]  # rmse, mse, mae, r2 on the validation month, scored once
    baseline_rmse: float
    trials: list[TrialResult] = field(default_factory=list)
    train_seconds: float = 0.0  # wall time of the whole search and refit
    fit_options: dict[str, Any] = field(default_factory=dict)
    best_trial: int = 0  # index of the trial whose parameters are kept
    # How the model was trained: representation, clip, categories, rides fitted / selected on,
    # the caps, refit rounds (also logged to MLflow as params).
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def selection_rmse(self) -> float:
        """The best trial's RMSE on the selection slice (what the parameters were chosen on)."""
        return float(self.training["selection_rmse"])

    @property
    def beats_baseline(self) -> bool:
        return self.metrics["rmse"] < self.baseline_rmse


class Training(Protocol):
    """Where the trials run: fit on the window minus the selection slice, predict the slice,
    refit the chosen parameters on the whole window."""

    selection_y: np.ndarray
    facts: dict[str, Any]

    def fit(self, params: dict[str, Any]) -> Any: ...

    def predict_selection(self, model: Any) -> np.ndarray: ...

    def refit(self, params: dict[str, Any], model: Any) -> Any: ...


def _subset(X, rows):
    return X if rows is None else X[rows]


class LocalTraining:
    """The trials' data on this process: the window (a seeded sample of ``max_train_rows`` when
    capped), the trials' rides (a sample of ``max_search_rows`` when refitted), the slice."""

    def __init__(self, spec: EstimatorSpec, step: FeatureStep, ts: TrainingSet, random_state: int, threads: int,
                 fit_options: dict[str, Any]):  # fmt: skip
        self.spec, self.step, self.threads, self.fit_options = spec, step, threads, fit_options
        self.input_kwargs = input_kwargs(step)
        rows = training_rows(len(ts.y_train), spec.max_train_rows, random_state)
        self.X_all = _subset(step.from_training_set(ts, "train"), rows)
        self.y_all = _subset(np.asarray(ts.y_train, dtype=np.float64), rows)
        pickups = _subset(ts.rides("train")["pickup_datetime"].to_numpy(), rows)
        search = training_rows(len(self.y_all), spec.max_search_rows, random_state)
        X_search, y_search, pickups = _subset(self.X_all, search), _subset(self.y_all, search), _subset(pickups, search)
        chosen = selection_mask(pickups)
        self.X_fit, self.y_fit = X_search[~chosen], y_search[~chosen]
        self.X_slice, self.y_slice = X_search[chosen], y_search[chosen]
        scored = training_rows(len(self.y_slice), MAX_SELECTION_ROWS, random_state)
        self.selection_X, self.selection_y = _subset(self.X_slice, scored), _subset(self.y_slice, scored)
        self.facts = {
            "train_rides": int(len(self.y_all)),
            "window_rides": int(len(ts.y_train)),
            "fitted_rides": int(len(self.y_fit)),
            "selection_rides": int(len(self.y_slice)),
            "selection_from": str(np.asarray(pickups[chosen], dtype="datetime64[us]").min()),
        }
        if search is not None:
            self.facts["search_rides"] = int(len(y_search))
        if scored is not None:
            self.facts["selection_scored_rides"] = int(len(self.selection_y))

    def fit(self, params):
        X_es, y_es = (self.X_slice, self.y_slice) if self.spec.early_stopping else (None, None)
        return self.spec.fit(params, self.X_fit, self.y_fit, X_es, y_es, n_jobs=self.threads, **self.fit_options,
                             **self.input_kwargs)  # fmt: skip

    def predict_selection(self, model) -> np.ndarray:
        return TripDurationPredictor(self.step, model, self.spec.name).predict_features(self.selection_X)

    def refit(self, params, model):
        if self.spec.refit is not None:
            return self.spec.refit(params, model, self.X_all, self.y_all, n_jobs=self.threads, **self.fit_options,
                                   **self.input_kwargs)  # fmt: skip
        return self.spec.fit(params, self.X_all, self.y_all, None, None, n_jobs=self.threads, **self.input_kwargs)


def search(
    space: dict[str, Any],
    training: Training,
    max_evaluations: int,
    random_state: int,
    on_trial: Callable[[TrialResult], None] | None = None,
) -> tuple[list[TrialResult], dict[str, Any]]:
    """The TPE loop: ``(trials, best)`` where ``best`` holds the kept trial's ``params``,
    ``model``, ``loss`` and ``index``. Each trial is scored by ``training.predict_selection``."""
    from hyperopt import STATUS_OK, Trials, fmin, tpe

    trials: list[TrialResult] = []
    best: dict[str, Any] = {"loss": np.inf, "model": None, "params": None, "index": 0}

    def objective(sampled: dict[str, Any]) -> dict[str, Any]:
        params = clean_params(sampled)
        t0 = time.perf_counter()
        model = training.fit(params)
        loss = regression_metrics(training.selection_y, training.predict_selection(model))["rmse"]
        index = len(trials) + 1
        if loss < best["loss"]:
            best.update(loss=loss, model=model, params=params, index=index)
        trial = TrialResult(index, max_evaluations, params, loss, float(best["loss"]), time.perf_counter() - t0)
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
        return {"loss": loss, "status": STATUS_OK}

    fmin(fn=objective, space=space, algo=tpe.suggest, max_evals=max_evaluations, trials=Trials(),
         rstate=np.random.default_rng(random_state), show_progressbar=False)  # fmt: skip
    return trials, best


def tune(
    spec: EstimatorSpec,
    training_set: TrainingSet,
    max_evaluations: int,
    random_state: int,
    on_trial: Callable[[TrialResult], None] | None = None,
    profile: str = "quick",
    n_jobs: int | None = None,
    extended_features: bool | None = None,
    backend: Callable[..., Training] | None = None,
    **spec_overrides: Any,
) -> TuningResult:
    """Search ``spec``'s space with TPE on the selection slice, refit the best parameters on the
    whole window, score that model once on the validation month.

    ``spec_overrides`` fix hyperparameters (``max_depth=10``) or set fit options
    (``early_stopping_rounds=3``); ``n_jobs`` defaults to :func:`available_threads` for
    estimators that can use threads; ``extended_features`` (default: the training set's own
    setting) adds the pickup hour and day of week; ``backend(spec, step, ts, random_state,
    threads, fit_options)`` builds where the trials run (default :class:`LocalTraining`).
    """
    if max_evaluations < 1:
        raise ValueError(f"{spec.name}: max_evaluations must be at least 1, got {max_evaluations}")
    space = spec.search_space(random_state, profile=profile, **spec_overrides)
    _, fit_options = spec.split_overrides(spec_overrides, space)
    threads = (n_jobs or available_threads()) if spec.parallel else 1
    ts = training_set
    started = time.perf_counter()
    step = fit_representation(spec.representation, ts, extended=extended_features)
    training = (backend or LocalTraining)(spec, step, ts, random_state, threads, fit_options)
    try:
        trials, best = search(space, training, max_evaluations, random_state, on_trial)
        if best["model"] is None:  # every trial scored NaN/inf
            raise RuntimeError(f"{spec.name}: no trial produced a finite selection RMSE; check the training set")
        t0 = time.perf_counter()
        model = training.refit(best["params"], best["model"])
    finally:
        if hasattr(training, "close"):  # a cluster backend releases what its workers hold
            training.close()
    facts = {**step.describe(), **training.facts, "selection_rmse": float(best["loss"]),
             "refit_seconds": round(time.perf_counter() - t0, 3)}  # fmt: skip
    for attribute in ("early_stopped_rounds",):  # the boosters' chosen round count
        rounds = _booster_attr(model, attribute)
        if rounds is not None:
            facts[attribute] = rounds
    predictor = TripDurationPredictor(step, model, spec.name)
    metrics = regression_metrics(ts.y_val, predictor.predict_training_set(ts, "val"))
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
        training=facts,
    )


def _booster_attr(model: Any, name: str) -> int | None:
    """An integer a refit booster carries (XGBoost: ``attr()``; LightGBM: an attribute)."""
    value = getattr(model, name, None)
    if value is None and hasattr(model, "attr"):
        value = model.attr(name)
    return int(value) if value is not None else None


def input_kwargs(step: FeatureStep) -> dict[str, Any]:
    """What a categorical representation tells ``fit`` (column names and categorical columns)."""
    columns = getattr(step, "categorical_columns", [])
    if not columns:
        return {}
    return {"feature_names": step.feature_names, "categorical_features": list(columns)}
