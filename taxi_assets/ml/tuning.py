"""Hyperparameter search: hyperopt TPE minimizing validation RMSE, seeded and repeatable.

``tune(spec, training_set, max_evaluations, random_state)`` runs ``max_evaluations`` TPE
trials of ``spec`` (see :mod:`taxi_assets.ml.estimators`) and returns the best model as a
:class:`~taxi_assets.ml.predictor.TripDurationPredictor` with its validation metrics.

Repeatable: TPE draws from ``np.random.default_rng(random_state)`` (hyperopt 0.3 wants a
``Generator``), and the estimators get ``random_state`` in their parameters, so the same
config and data give the same parameters and the same RMSE. The course called ``fmin``
without ``rstate``: each run searched different points.

The final model is the best trial's fitted estimator. A "final fit with the best parameters"
on the same data and seed would reproduce it exactly, so it is kept instead of refitted
(which would cost one more fit: ~20 s for the slower models). Each trial is scored exactly as
serving scores it (``TripDurationPredictor.predict_features``, which honours XGBoost's
``best_iteration``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from taxi_assets.ml.dataset import TrainingSet
from taxi_assets.ml.estimators import EstimatorSpec, available_threads, clean_params
from taxi_assets.ml.metrics import baseline_rmse, regression_metrics
from taxi_assets.ml.predictor import TripDurationPredictor


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
    best_trial: int = 0  # index of the trial whose model is kept

    @property
    def beats_baseline(self) -> bool:
        return self.metrics["rmse"] < self.baseline_rmse


def tune(
    spec: EstimatorSpec,
    training_set: TrainingSet,
    max_evaluations: int,
    random_state: int,
    on_trial: Callable[[TrialResult], None] | None = None,
    profile: str = "quick",
    n_jobs: int | None = None,
    **spec_overrides: Any,
) -> TuningResult:
    """Search ``spec``'s space with TPE, keep the best model, score it on ``training_set.X_val``.

    ``spec_overrides`` fix hyperparameters (``max_depth=10``) or set fit options
    (``early_stopping_rounds=3``); ``n_jobs`` defaults to :func:`available_threads` for
    estimators that can use threads.
    """
    from hyperopt import STATUS_OK, Trials, fmin, tpe

    if max_evaluations < 1:
        raise ValueError(f"{spec.name}: max_evaluations must be at least 1, got {max_evaluations}")
    space = spec.search_space(random_state, profile=profile, **spec_overrides)
    _, fit_options = spec.split_overrides(spec_overrides, space)
    threads = (n_jobs or available_threads()) if spec.parallel else 1
    ts = training_set
    trials: list[TrialResult] = []
    best: dict[str, Any] = {"loss": np.inf, "model": None, "params": None, "index": 0}
    started = time.perf_counter()

    def objective(sampled: dict[str, Any]) -> dict[str, Any]:
        params = clean_params(sampled)
        t0 = time.perf_counter()
        model = spec.fit(params, ts.X_train, ts.y_train, ts.X_val, ts.y_val, n_jobs=threads, **fit_options)
        predictions = TripDurationPredictor(ts.vectorizer, model, spec.name).predict_features(ts.X_val)
        loss = regression_metrics(ts.y_val, predictions)["rmse"]
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
    predictor = TripDurationPredictor(ts.vectorizer, best["model"], spec.name)
    metrics = regression_metrics(ts.y_val, predictor.predict_features(ts.X_val))
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
    )
