"""The estimator registry: what each model asset tunes, in which space, on how many threads.

Every entry of :data:`ESTIMATORS` becomes one Dagster asset (``taxi_assets.assets.models``);
adding an eighth model is one more entry here (``sklearn_estimator(...)`` for any sklearn
regressor, or an :class:`EstimatorSpec` with its own ``fit``).

Search spaces
-------------
The spaces start from the MLOps course (Mage ``mlops/utils/hyperparameters/shared.py``) with
its bugs fixed:

* integer hyperparameters are ``scope.int(hp.quniform(...))`` everywhere, and the tuner reads
  the winner back with ``hyperopt.space_eval``: the course cast only some keys back to ``int``
  (``min_samples_split`` and ``n_estimators`` stayed floats) and lost the constants
  (``random_state``) that ``fmin`` does not return;
* ``hp.choice`` values come back as the values (``fit_intercept=False``), not indexes;
* XGBoost's ``num_boost_round`` is not a hyperparameter: it is the cap on boosting rounds and
  early stopping on the validation set picks the count (``Booster.best_iteration``); the
  course both sampled it and refit the final model with early stopping on the *training* set;
* overrides are applied: the course built ``max_depth=10`` into ``kwargs`` and then dropped it.
  Here an override of a hyperparameter fixes it in the space (``max_depth=10`` -> every trial
  uses depth 10); unknown names are an error, not silently ignored;
* ``LinearSVR`` gets ``random_state`` (liblinear shuffles; the course runs were not repeatable).

Two profiles: ``quick`` (the default) caps the tree ensembles (trees, depth) so that all seven
models of one month (about 54k training rides x 5k features) train in about three minutes on
two cores with the default ``max_evaluations``; ``course`` is the course's ranges.

Reproducing the course
----------------------
``profile="course"`` with ``max_evaluations=50, random_state=7`` for the sklearn models, and
for XGBoost ``max_evaluations=3, early_stopping_rounds=3, max_depth=10`` (num_boost_round
1000). Plain ``LinearRegression`` (``fit_intercept=True``) scores the course's validation
RMSE of 5.995 minutes on the 2024-02 training set; the tuned models' exact scores differ from
the course's because the course's TPE runs were unseeded and its search spaces were buggy.

Threads
-------
Tree ensembles and XGBoost run on :func:`available_threads` threads: the CPUs this process may
run on (``os.sched_getaffinity``, so containers pinned to fewer cores are not oversubscribed),
capped by the environment variable ``TAXI_MAX_THREADS`` (set it to 1 when several model steps
run in parallel on the same machine).
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PROFILES = ("quick", "course")


def available_threads() -> int:
    """CPUs usable by this process, capped by ``TAXI_MAX_THREADS`` when it is set."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    from taxi_assets.io.env import env_number

    cap = env_number("TAXI_MAX_THREADS", None, int, minimum=1, unit=" of threads")
    if cap is not None:
        cpus = min(cpus, cap)
    return max(1, cpus)


def clean_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Plain Python values (``int``/``float``/``bool``/``str``) for logging, JSON and constructors.

    Hyperopt hands out numpy scalars and floats for integer draws; keys are sorted so the same
    parameters always print (and hash) the same way.
    """
    import numpy as np

    out: dict[str, Any] = {}
    for key in sorted(params):
        value = params[key]
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not isinstance(value, bool) and value.is_integer() and key in _INT_PARAMS:
            value = int(value)
        out[key] = value
    return out


# Names that are integers in every estimator that has them (a guard if a space forgets scope.int).
_INT_PARAMS = frozenset(
    {"max_depth", "max_iter", "min_samples_leaf", "min_samples_split", "n_estimators", "random_state", "seed"}
)


@dataclass(frozen=True)
class EstimatorSpec:
    """One tunable model.

    ``spaces`` maps a profile (``quick``/``course``) to ``f(random_state) -> hyperopt space``
    (a dict of hyperopt expressions and constants). ``fit(params, X_train, y_train, X_val,
    y_val, n_jobs=..., **fit_options)`` returns the fitted estimator (anything
    :class:`~taxi_assets.ml.predictor.TripDurationPredictor` can call: sklearn or an XGBoost
    ``Booster``). ``fit_options`` are the extra settings ``fit`` accepts, with defaults; the
    model asset exposes them and ``config_overrides`` as run config fields.
    """

    name: str
    description: str
    spaces: Mapping[str, Callable[[int], dict[str, Any]]]
    fit: Callable[..., Any]
    max_evaluations: int
    parallel: bool = False
    fit_options: Mapping[str, Any] = field(default_factory=dict)
    # Hyperparameters the asset's run config may fix (name -> type), e.g. XGBoost's max_depth.
    config_overrides: Mapping[str, type] = field(default_factory=dict)

    def search_space(self, random_state: int, profile: str = "quick", **overrides: Any) -> dict[str, Any]:
        """The hyperopt space of ``profile``; each override fixes that hyperparameter's value.

        Overrides that name a fit option (``early_stopping_rounds``) are ignored here (see
        :meth:`split_overrides`); any other unknown name is an error.
        """
        if profile not in self.spaces:
            raise ValueError(f"{self.name}: unknown search space profile {profile!r}: expected one of {', '.join(self.spaces)}")
        space = dict(self.spaces[profile](random_state))
        fixed, _ = self.split_overrides(overrides, space)
        space.update(fixed)
        return space

    def split_overrides(
        self, overrides: Mapping[str, Any], space: Mapping[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(hyperparameters to fix, fit options)`` from user overrides; ``None`` means "not set"."""
        if space is None:
            space = self.spaces["quick"](0)
        fixed: dict[str, Any] = {}
        options = dict(self.fit_options)
        for key, value in overrides.items():
            if value is None:
                continue
            if key in self.fit_options:
                options[key] = value
            elif key in space:
                fixed[key] = value
            else:
                known = sorted(set(space) | set(self.fit_options))
                raise ValueError(f"{self.name}: unknown setting {key!r}: expected one of {', '.join(known)}")
        return fixed, options


# --- sklearn --------------------------------------------------------------------------------


def _load_class(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def sklearn_estimator(
    name: str,
    class_path: str,
    description: str,
    space: Callable[[int], dict[str, Any]],
    max_evaluations: int,
    parallel: bool = False,
    course_space: Callable[[int], dict[str, Any]] | None = None,
) -> EstimatorSpec:
    """A registry entry for an sklearn regressor given by dotted path (imported on first fit)."""

    def fit(params, X_train, y_train, X_val=None, y_val=None, *, n_jobs: int = 1):
        cls = _load_class(class_path)
        extra = {"n_jobs": n_jobs} if parallel else {}
        return cls(**params, **extra).fit(X_train, y_train)

    fit.__qualname__ = f"fit_{name}"
    return EstimatorSpec(
        name=name,
        description=description,
        spaces={"quick": space, "course": course_space or space},
        fit=fit,
        max_evaluations=max_evaluations,
        parallel=parallel,
    )


def _hp():
    from hyperopt import hp
    from hyperopt.pyll import scope

    return hp, scope


def _int(label: str, low: int, high: int, step: int = 1):
    hp, scope = _hp()
    return scope.int(hp.quniform(label, low, high, step))


def _linear_regression_space(random_state: int) -> dict[str, Any]:
    hp, _ = _hp()
    return {"fit_intercept": hp.choice("fit_intercept", [True, False])}


def _lasso_space(random_state: int) -> dict[str, Any]:
    hp, _ = _hp()
    # Log-uniform: the course's uniform(1e-4, 1) spends ~all draws on alpha > 0.1, which on
    # one-hot features zeroes nearly every coefficient (RMSE within 0.01 of the baseline).
    return {
        "alpha": hp.loguniform("alpha", math.log(0.0001), 0.0),
        "max_iter": _int("max_iter", 1000, 5000, 100),
    }


def _lasso_course_space(random_state: int) -> dict[str, Any]:
    hp, _ = _hp()
    return {
        "alpha": hp.uniform("alpha", 0.0001, 1.0),
        "max_iter": _int("max_iter", 1000, 5000, 100),
    }


def _linear_svr_space(random_state: int) -> dict[str, Any]:
    hp, _ = _hp()
    # trip_distance is unscaled: C above ~1 diverges (RMSE in the hundreds) and C below ~0.01
    # underfits, both after hitting max_iter (5-13 s a trial). e^-3 .. 1 converges in seconds.
    return {
        "epsilon": hp.uniform("epsilon", 0.0, 1.0),
        "C": hp.loguniform("C", -3, 0),
        "max_iter": _int("max_iter", 1000, 3000, 100),
        "random_state": random_state,
    }


def _linear_svr_course_space(random_state: int) -> dict[str, Any]:
    hp, _ = _hp()
    return {
        "epsilon": hp.uniform("epsilon", 0.0, 1.0),
        "C": hp.loguniform("C", -7, 3),  # e^-7 .. e^3
        "max_iter": _int("max_iter", 1000, 5000, 100),
        "random_state": random_state,
    }


def _forest_space(max_depth: int, n_estimators: int, split_step: int = 1):
    """A tree-ensemble space: depth 5..``max_depth`` by 5, leaves 1-10, splits 2-20 by
    ``split_step``, 10..``n_estimators`` trees by 10 (the course's ranges, capped)."""

    def space(random_state: int) -> dict[str, Any]:
        return {
            "max_depth": _int("max_depth", 5, max_depth, 5),
            "min_samples_leaf": _int("min_samples_leaf", 1, 10),
            "min_samples_split": _int("min_samples_split", 2, 20, split_step),
            "n_estimators": _int("n_estimators", 10, n_estimators, 10),
            "random_state": random_state,
        }

    return space


_extra_trees_space = _forest_space(max_depth=30, n_estimators=40, split_step=2)
_random_forest_space = _forest_space(max_depth=25, n_estimators=30)
_random_forest_course_space = _forest_space(max_depth=45, n_estimators=60)


def _gradient_boosting_space(random_state: int) -> dict[str, Any]:
    hp, _ = _hp()
    return {
        "learning_rate": hp.loguniform("learning_rate", -3, 0),  # 0.05 .. 1 (few trees need a larger rate)
        "max_depth": _int("max_depth", 3, 10),
        "min_samples_leaf": _int("min_samples_leaf", 1, 10),
        "min_samples_split": _int("min_samples_split", 2, 20),
        "n_estimators": _int("n_estimators", 10, 50, 10),
        "random_state": random_state,
    }


def _gradient_boosting_course_space(random_state: int) -> dict[str, Any]:
    hp, _ = _hp()
    return {
        "learning_rate": hp.loguniform("learning_rate", -5, 0),  # e^-5 .. 1
        "max_depth": _int("max_depth", 5, 40),
        "min_samples_leaf": _int("min_samples_leaf", 1, 10),
        "min_samples_split": _int("min_samples_split", 2, 20),
        "n_estimators": _int("n_estimators", 10, 50, 10),
        "random_state": random_state,
    }


# --- XGBoost --------------------------------------------------------------------------------


def _xgboost_space(random_state: int, max_depth_high: int = 12, learning_rate_low: float = -2.3) -> dict[str, Any]:
    hp, _ = _hp()
    return {
        "colsample_bytree": hp.uniform("colsample_bytree", 0.5, 1.0),
        "gamma": hp.uniform("gamma", 0.1, 1.0),  # minimum loss reduction to split
        # quick: 0.1 .. 1 (fewer rounds before early stopping); course: e^-3 .. 1
        "learning_rate": hp.loguniform("learning_rate", learning_rate_low, 0),
        "max_depth": _int("max_depth", 4, max_depth_high),
        "min_child_weight": hp.loguniform("min_child_weight", -1, 3),
        "objective": "reg:squarederror",
        "reg_alpha": hp.loguniform("reg_alpha", -5, -1),  # L1
        "reg_lambda": hp.loguniform("reg_lambda", -6, -1),  # L2
        "subsample": hp.uniform("subsample", 0.1, 1.0),
        "seed": random_state,
    }


def _xgboost_course_space(random_state: int) -> dict[str, Any]:
    return _xgboost_space(random_state, max_depth_high=100, learning_rate_low=-3)


def _fit_xgboost(
    params,
    X_train,
    y_train,
    X_val,
    y_val,
    *,
    n_jobs: int = 1,
    early_stopping_rounds: int = 10,
    num_boost_round: int = 1000,
):
    """``xgb.train`` with early stopping on the validation set; the booster keeps ``best_iteration``."""
    import xgboost as xgb

    if early_stopping_rounds < 1 or num_boost_round < 1:
        raise ValueError(
            f"xgboost: early_stopping_rounds ({early_stopping_rounds}) and num_boost_round "
            f"({num_boost_round}) must be at least 1"
        )
    train = xgb.DMatrix(X_train, label=y_train, nthread=n_jobs)
    valid = xgb.DMatrix(X_val, label=y_val, nthread=n_jobs)
    return xgb.train(
        {**params, "nthread": n_jobs, "verbosity": 0},
        train,
        num_boost_round=int(num_boost_round),
        evals=[(valid, "validation")],
        early_stopping_rounds=int(early_stopping_rounds),
        verbose_eval=False,
    )


ESTIMATORS: dict[str, EstimatorSpec] = {
    spec.name: spec
    for spec in [
        sklearn_estimator(
            "linear_regression",
            "sklearn.linear_model.LinearRegression",
            "Ordinary least squares on one-hot PU_DO + trip_distance (the course baseline model, "
            "validation RMSE about 5.995 min on 2024-02). Tunes fit_intercept.",
            _linear_regression_space,
            max_evaluations=2,
        ),
        sklearn_estimator(
            "lasso",
            "sklearn.linear_model.Lasso",
            "L1-regularized linear regression. Tunes alpha (log-uniform 1e-4..1) and max_iter.",
            _lasso_space,
            max_evaluations=8,
            course_space=_lasso_course_space,
        ),
        sklearn_estimator(
            "linear_svr",
            "sklearn.svm.LinearSVR",
            "Linear support vector regression (epsilon-insensitive loss). Tunes epsilon, C "
            "(quick: e^-3..1) and max_iter.",
            _linear_svr_space,
            max_evaluations=4,
            course_space=_linear_svr_course_space,
        ),
        sklearn_estimator(
            "extra_trees",
            "sklearn.ensemble.ExtraTreesRegressor",
            "Extremely randomized trees. Tunes depth (5-30), leaf/split sizes and tree count (10-40).",
            _extra_trees_space,
            max_evaluations=3,
            parallel=True,
        ),
        sklearn_estimator(
            "gradient_boosting",
            "sklearn.ensemble.GradientBoostingRegressor",
            "sklearn gradient boosting (single-threaded). Tunes learning rate, depth, leaf/split sizes "
            "and tree count (quick space: depth 3-10, 10-50 trees; course: depth 5-40).",
            _gradient_boosting_space,
            max_evaluations=3,
            course_space=_gradient_boosting_course_space,
        ),
        sklearn_estimator(
            "random_forest",
            "sklearn.ensemble.RandomForestRegressor",
            "Random forest. Tunes depth, leaf/split sizes and tree count (quick space: depth 5-25, "
            "10-30 trees; course: depth 5-45, 10-60 trees).",
            _random_forest_space,
            max_evaluations=3,
            parallel=True,
            course_space=_random_forest_course_space,
        ),
        EstimatorSpec(
            name="xgboost",
            description="XGBoost (native xgb.train on DMatrix) with early stopping on the validation "
            "set; num_boost_round is the cap on rounds, early stopping picks the count. Tunes "
            "learning rate, depth, regularization and sampling.",
            spaces={"quick": _xgboost_space, "course": _xgboost_course_space},
            fit=_fit_xgboost,
            max_evaluations=3,
            parallel=True,
            fit_options={"early_stopping_rounds": 10, "num_boost_round": 1000},
            config_overrides={"max_depth": int},
        ),
    ]
}


def get_estimator(name: str) -> EstimatorSpec:
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise KeyError(f"unknown estimator {name!r}: expected one of {', '.join(ESTIMATORS)}") from None
