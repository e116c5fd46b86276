"""The estimator registry: what each model asset tunes, on which representation, in which space.

Every entry of :data:`ESTIMATORS` becomes one Dagster asset (``taxi_assets.defs.models``),
one MLflow registered model, one leaderboard row and a servable champion candidate; adding a
model is one more entry here (``sklearn_estimator(...)`` for any sklearn regressor, or an
:class:`EstimatorSpec` with its own ``fit``). LightGBM, the eighth, is such an entry.

Representations
---------------
Each entry names the input it learns best from (:mod:`taxi_assets.ml.representation`),
fitted on the training rides and carried by the predictor:

* ``onehot`` (linear_regression, lasso, linear_svr): the course's ``DictVectorizer`` matrix,
  ``PU_DO`` one-hot plus ``trip_distance``;
* ``ordinal`` (extra_trees, random_forest, gradient_boosting): four dense columns, pickup and
  dropoff zone ids, the pair's rank and the distance. sklearn's trees have no categorical
  splits; on 5,094 sparse one-hot columns they need many splits per pair and their cost grows
  with the pairs, while zone ids and the pair rank (pickup-major order, so nearby ranks share
  the pickup zone) let one threshold group many pairs. On 2024-02: extra trees 5.12 vs 5.30
  on one-hot at a seventh of the time, random forest 5.11 vs 5.30 (one fit each, 20 trees);
* ``categorical`` (xgboost, lightgbm): the same columns with ``PU``, ``DO`` and ``PU_DO`` as
  compact category codes, split natively (XGBoost ``enable_categorical`` on ``hist``,
  LightGBM ``categorical_feature``): a partition of the 5,094 pairs is one split.

Every representation clips ``trip_distance`` at the training rides' 99.9th percentile (real
months hold distances up to 201,421 miles): the linear models' distance coefficient and the
forests' split thresholds are no longer decided by a handful of impossible rides.

Selection, early stopping and refit
-----------------------------------
No model sees the month it is scored on before it is scored: every trial fits on the training
rides minus the window's last week and is compared on that week (the selection slice,
:func:`taxi_assets.ml.dataset.selection_mask`); the boosters (``early_stopping=True``) also
stop on it. After the search the best parameters are refitted on the whole window (``refit``
for the boosters: the rounds early stopping picked, scaled by the rides added back, at most
x1.5; ``fit`` on every ride otherwise), and that model alone is scored on the validation month.

Training-size caps
------------------
Estimators whose cost grows faster than their inputs (a 3.4-million-ride yellow month trains
on ~1.6 million rides) train on at most ``max_train_rows`` rides, drawn without replacement
with the run's ``random_state`` (:func:`training_rows`); the clip, the categories and the
validation score always use every ride. None of the caps touches a green month (~55k rides)
or the twelve-month green window (742k rides) except where named:

================== ============ ===============================================================
estimator          cap (rides)  why
================== ============ ===============================================================
lasso              200,000      each fit costs ~50 s on 1.6 M rides (sparse centering and
                                coordinate descent set-up), whatever the iterations; 8 trials
linear_svr         200,000      liblinear's dual coordinate descent: passes x rides, 4 trials
                                (500,000 rides: 168 s on a yellow month)
extra_trees        300,000      fully grown trees: nodes (memory, pickle size) grow with rides
random_forest      300,000      same; bootstrap trees, 2 threads
gradient_boosting  200,000      single-threaded exact splits: sorts every node's rides
================== ============ ===============================================================

The boosters search on a sample instead (``max_search_rows``): their trials train on at most
250,000 rides (drawn with the seed; the twelve-month green window and yellow months are
sampled), and the refit trains the best parameters on every ride. Their cost is rides x
rounds, so the rounds are bounded too: ``num_boost_round`` caps them (XGBoost 1,000, LightGBM
500; green months stop after 100-250) and the refit adds at most half. (LightGBM with rates
down to 0.05, 2,000 rounds and 500,000-ride trials did not finish a yellow month in 30 minutes:
its trials ran to the cap.)

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
  early stopping picks the count (``Booster.best_iteration``); the course both sampled it and
  refit the final model with early stopping on the *training* set;
* overrides are applied: the course built ``max_depth=10`` into ``kwargs`` and then dropped it.
  Here an override of a hyperparameter fixes it in the space (``max_depth=10`` -> every trial
  uses depth 10); unknown names are an error, not silently ignored;
* ``LinearSVR`` gets ``random_state`` (liblinear shuffles; the course runs were not repeatable);
* the forests tune ``max_features`` (the share of the four columns each split considers).

Two profiles: ``quick`` (the default) caps the tree ensembles (trees, depth) so that all eight
models of one month train in about two minutes on two cores with the default
``max_evaluations``; ``course`` is the course's ranges.

Reproducing the course
----------------------
``profile="course"`` with ``max_evaluations=50, random_state=7`` for the sklearn models, and
for XGBoost ``max_evaluations=3, early_stopping_rounds=3, max_depth=10`` (num_boost_round
1000). The course's plain ``LinearRegression`` on the unclipped one-hot matrix scores 5.995
minutes on the 2024-02 training set (``OneHotFeatures(clip=None)``); with the clip it scores
5.756. The tuned models' exact scores differ from the course's because the course's TPE runs
were unseeded, its search spaces were buggy and its XGBoost stopped on the validation month.

Threads
-------
Tree ensembles and the boosters run on :func:`available_threads` threads: the CPUs this
process may run on (``os.sched_getaffinity``, so containers pinned to fewer cores are not
oversubscribed), capped by ``cap`` (the model assets pass ``TAXI_MAX_THREADS``: set it to 1
when several model steps run in parallel on the same machine).
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PROFILES = ("quick", "course")


def available_threads(cap: int | None = None) -> int:
    """CPUs usable by this process, at most ``cap`` when given."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
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
    {"max_depth", "max_iter", "min_samples_leaf", "min_samples_split", "n_estimators", "random_state", "seed",
     "num_leaves", "min_data_in_leaf", "min_data_per_group", "max_cat_threshold", "bagging_freq"}
)  # fmt: skip


@dataclass(frozen=True)
class EstimatorSpec:
    """One tunable model.

    ``spaces`` maps a profile (``quick``/``course``) to ``f(random_state) -> hyperopt space``
    (a dict of hyperopt expressions and constants). ``fit(params, X_train, y_train, X_es,
    y_es, n_jobs=..., **fit_options)`` returns the fitted estimator (anything
    :class:`~taxi_assets.ml.predictor.TripDurationPredictor` can call: sklearn, an XGBoost or
    a LightGBM ``Booster``); ``X_train`` is in the entry's ``representation``. Trials get
    the window without its last week as ``X_train``; with ``early_stopping`` ``X_es`` is that
    week (the selection slice), otherwise ``X_es``/``y_es`` are ``None``; after the search
    ``fit`` (or ``refit``) trains the chosen parameters on the whole window. ``categorical`` representations also get
    ``feature_names`` and ``categorical_features`` (column indexes) as keywords.
    ``refit(params, model, X, y, n_jobs=..., **fit_options)`` (optional) retrains the best
    trial on the whole window after the search. ``fit_options`` are the extra settings ``fit``
    accepts, with defaults; the model asset exposes them and ``config_overrides`` as run config
    fields. ``max_train_rows`` caps the rides the estimator trains on (see the module
    docstring); ``library`` is the package that does the fitting (the asset's kind).
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
    library: str = "sklearn"
    representation: str = "onehot"
    early_stopping: bool = False
    refit: Callable[..., Any] | None = None
    max_train_rows: int | None = None
    # With a refit: the trials train on at most this many rides (drawn with the seed), the
    # refit on every ride (or max_train_rows); see "Training-size caps".
    max_search_rows: int | None = None

    def __post_init__(self) -> None:
        from taxi_assets.ml.representation import REPRESENTATIONS

        if self.representation not in REPRESENTATIONS:
            raise ValueError(
                f"{self.name}: unknown representation {self.representation!r}: expected one of {', '.join(REPRESENTATIONS)}"
            )
        for cap in ("max_train_rows", "max_search_rows"):
            value = getattr(self, cap)
            if value is not None and value < 2:
                raise ValueError(f"{self.name}: {cap} must be at least 2, got {value}")
        if self.max_search_rows is not None and self.refit is None:
            raise ValueError(f"{self.name}: max_search_rows needs a refit (the kept model would miss the other rides)")

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


def training_rows(total: int, cap: int | None, random_state: int):
    """Indexes of the training rides an estimator with ``max_train_rows=cap`` trains on:
    ``None`` (all of them) when ``total <= cap``, else ``cap`` of them drawn without
    replacement with ``random_state``, in their original order."""
    import numpy as np

    if cap is None or total <= cap:
        return None
    return np.sort(np.random.default_rng(random_state).choice(total, size=cap, replace=False))


def sklearn_estimator(
    name: str,
    class_path: str,
    description: str,
    space: Callable[[int], dict[str, Any]],
    max_evaluations: int,
    parallel: bool = False,
    course_space: Callable[[int], dict[str, Any]] | None = None,
    representation: str = "onehot",
    max_train_rows: int | None = None,
) -> EstimatorSpec:
    """A registry entry for an sklearn regressor given by dotted path (imported on first fit)."""

    def fit(params, X_train, y_train, X_es=None, y_es=None, *, n_jobs: int = 1):
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        cls = _load_class(class_path)
        extra = {"n_jobs": n_jobs} if parallel else {}
        # max_iter is a tuned hyperparameter (lasso, linear_svr): a trial that stops there is
        # judged by its validation RMSE like any other, not by one warning per trial in the log.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return cls(**params, **extra).fit(X_train, y_train)

    fit.__qualname__ = f"fit_{name}"
    return EstimatorSpec(
        name=name,
        description=description,
        spaces={"quick": space, "course": course_space or space},
        fit=fit,
        max_evaluations=max_evaluations,
        parallel=parallel,
        library="sklearn",
        representation=representation,
        max_train_rows=max_train_rows,
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
    # With the distance clipped, C in e^-3 .. e^1 converges within max_iter in about a
    # second (unclipped, C above ~1 diverged and every trial ran to max_iter).
    return {
        "epsilon": hp.uniform("epsilon", 0.0, 1.0),
        "C": hp.loguniform("C", -3, 1),
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


def _forest_space(max_depth: int, n_estimators: int, split_step: int = 1, min_depth: int = 5, max_leaf: int = 10):
    """A tree-ensemble space: depth ``min_depth``..``max_depth`` by 5, leaves 1-``max_leaf``,
    splits 2-20 by ``split_step``, 10..``n_estimators`` trees by 10 (the course's ranges,
    capped) and ``max_features`` 0.5-1 (two to four of the four ordinal columns a split)."""

    def space(random_state: int) -> dict[str, Any]:
        hp, _ = _hp()
        return {
            "max_depth": _int("max_depth", min_depth, max_depth, 5),
            "max_features": hp.uniform("max_features", 0.5, 1.0),
            "min_samples_leaf": _int("min_samples_leaf", 1, max_leaf),
            "min_samples_split": _int("min_samples_split", 2, 20, split_step),
            "n_estimators": _int("n_estimators", 10, n_estimators, 10),
            "random_state": random_state,
        }

    return space


_extra_trees_space = _forest_space(max_depth=40, n_estimators=40, split_step=2, min_depth=15)
_extra_trees_course_space = _forest_space(max_depth=45, n_estimators=60, split_step=2)
_random_forest_space = _forest_space(max_depth=30, n_estimators=30, min_depth=10)
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


# --- boosters: early stopping on the training window's last week, then a refit -------------


# The refit's rounds grow with the rides added back, at most by this factor.
MAX_REFIT_ROUNDS_SCALE = 1.5


def refit_rounds(best_rounds: int, fitted_rows: int, all_rows: int) -> int:
    """Rounds of the refit on the whole window: the early-stopped count scaled by the rides
    added back, at most :data:`MAX_REFIT_ROUNDS_SCALE` times and at least the count itself."""
    if fitted_rows <= 0:
        return best_rounds
    scale = min(max(all_rows / fitted_rows, 1.0), MAX_REFIT_ROUNDS_SCALE)
    return int(round(best_rounds * scale))


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


def _xgb_matrix(X, y, n_jobs: int, feature_names, categorical_features):
    import xgboost as xgb

    if categorical_features:
        types = ["c" if i in set(categorical_features) else "q" for i in range(X.shape[1])]
        return xgb.DMatrix(X, label=y, nthread=n_jobs, feature_names=list(feature_names), feature_types=types,
                           enable_categorical=True)  # fmt: skip
    return xgb.DMatrix(X, label=y, nthread=n_jobs)


def _xgb_params(params, n_jobs: int) -> dict[str, Any]:
    return {"tree_method": "hist", **params, "nthread": n_jobs, "verbosity": 0}


def _fit_xgboost(
    params,
    X_train,
    y_train,
    X_es,
    y_es,
    *,
    n_jobs: int = 1,
    early_stopping_rounds: int = 10,
    num_boost_round: int = 1000,
    feature_names=None,
    categorical_features=None,
):
    """``xgb.train`` (``hist``; native categorical splits on the categorical columns) with early
    stopping on the early-stopping slice; the booster keeps ``best_iteration``."""
    import xgboost as xgb

    if early_stopping_rounds < 1 or num_boost_round < 1:
        raise ValueError(
            f"xgboost: early_stopping_rounds ({early_stopping_rounds}) and num_boost_round "
            f"({num_boost_round}) must be at least 1"
        )
    train = _xgb_matrix(X_train, y_train, n_jobs, feature_names, categorical_features)
    stop = _xgb_matrix(X_es, y_es, n_jobs, feature_names, categorical_features)
    booster = xgb.train(
        _xgb_params(params, n_jobs),
        train,
        num_boost_round=int(num_boost_round),
        evals=[(stop, "early_stopping")],
        early_stopping_rounds=int(early_stopping_rounds),
        verbose_eval=False,
    )
    booster.set_attr(fitted_rows=str(X_train.shape[0]))
    return booster


def _refit_xgboost(params, model, X, y, *, n_jobs: int = 1, feature_names=None, categorical_features=None, **_options):
    """The best trial's parameters on the whole window, for :func:`refit_rounds` rounds."""
    import xgboost as xgb

    rounds = refit_rounds(int(model.best_iteration) + 1, int(model.attr("fitted_rows") or 0), X.shape[0])
    booster = xgb.train(_xgb_params(params, n_jobs), _xgb_matrix(X, y, n_jobs, feature_names, categorical_features),
                        num_boost_round=rounds)  # fmt: skip
    booster.set_attr(early_stopped_rounds=str(int(model.best_iteration) + 1))
    return booster


def _lightgbm_space(random_state: int) -> dict[str, Any]:
    hp, _ = _hp()
    return {
        # 0.08 .. 0.3: on 2024-02 the best trials stop after ~150-250 rounds; lower rates only
        # multiply the rounds (and the cost on a yellow month) for the same RMSE (4.833 vs 4.835)
        "learning_rate": hp.loguniform("learning_rate", math.log(0.08), math.log(0.3)),
        "num_leaves": _int("num_leaves", 16, 128, 8),
        "min_data_in_leaf": _int("min_data_in_leaf", 5, 100, 5),
        "feature_fraction": hp.uniform("feature_fraction", 0.75, 1.0),  # 3 or 4 of the 4 columns
        "bagging_fraction": hp.uniform("bagging_fraction", 0.6, 1.0),
        "bagging_freq": 1,
        "lambda_l2": hp.loguniform("lambda_l2", -5, 3),
        # categorical splits: smoothing of the per-category means, the rides a category needs
        # to get its own bin, and how many categories one split may send left
        "cat_smooth": hp.loguniform("cat_smooth", 0, math.log(50)),
        "cat_l2": hp.loguniform("cat_l2", 0, math.log(50)),
        "min_data_per_group": _int("min_data_per_group", 10, 200, 10),
        "max_cat_threshold": _int("max_cat_threshold", 16, 128, 16),
        "seed": random_state,
    }


def _lgb_params(params, n_jobs: int) -> dict[str, Any]:
    return {"objective": "regression", **params, "num_threads": n_jobs, "verbose": -1, "deterministic": True,
            "force_col_wise": True}  # fmt: skip


def _lgb_dataset(X, y, feature_names, categorical_features, reference=None):
    import lightgbm as lgb

    names = list(feature_names) if feature_names is not None else "auto"
    cats = list(categorical_features) if categorical_features else "auto"
    return lgb.Dataset(X, label=y, feature_name=names, categorical_feature=cats, reference=reference, free_raw_data=True)


def _fit_lightgbm(
    params,
    X_train,
    y_train,
    X_es,
    y_es,
    *,
    n_jobs: int = 1,
    early_stopping_rounds: int = 20,
    num_boost_round: int = 500,
    feature_names=None,
    categorical_features=None,
):
    """``lightgbm.train`` with native categorical splits, early stopping on the early-stopping
    slice; the booster keeps ``best_iteration``."""
    import lightgbm as lgb

    if early_stopping_rounds < 1 or num_boost_round < 1:
        raise ValueError(
            f"lightgbm: early_stopping_rounds ({early_stopping_rounds}) and num_boost_round "
            f"({num_boost_round}) must be at least 1"
        )
    train = _lgb_dataset(X_train, y_train, feature_names, categorical_features)
    stop = _lgb_dataset(X_es, y_es, feature_names, categorical_features, reference=train)
    booster = lgb.train(
        _lgb_params(params, n_jobs),
        train,
        num_boost_round=int(num_boost_round),
        valid_sets=[stop],
        valid_names=["early_stopping"],
        callbacks=[lgb.early_stopping(int(early_stopping_rounds), verbose=False)],
    )
    booster.fitted_rows = X_train.shape[0]
    return booster


def _refit_lightgbm(params, model, X, y, *, n_jobs: int = 1, feature_names=None, categorical_features=None, **_options):
    import lightgbm as lgb

    best = int(model.best_iteration) or int(model.current_iteration())
    rounds = refit_rounds(best, int(getattr(model, "fitted_rows", 0)), X.shape[0])
    booster = lgb.train(_lgb_params(params, n_jobs), _lgb_dataset(X, y, feature_names, categorical_features),
                        num_boost_round=rounds)  # fmt: skip
    booster.early_stopped_rounds = best
    return booster


ESTIMATORS: dict[str, EstimatorSpec] = {
    spec.name: spec
    for spec in [
        sklearn_estimator(
            "linear_regression",
            "sklearn.linear_model.LinearRegression",
            "Ordinary least squares on one-hot PU_DO + trip_distance (clipped at the training p99.9); the "
            "course baseline model. Tunes fit_intercept.",
            _linear_regression_space,
            max_evaluations=2,
        ),
        sklearn_estimator(
            "lasso",
            "sklearn.linear_model.Lasso",
            "L1-regularized linear regression on one-hot PU_DO + clipped trip_distance. Tunes alpha "
            "(log-uniform 1e-4..1) and max_iter. Trains on at most 200,000 rides.",
            _lasso_space,
            max_evaluations=8,
            course_space=_lasso_course_space,
            max_train_rows=200_000,
        ),
        sklearn_estimator(
            "linear_svr",
            "sklearn.svm.LinearSVR",
            "Linear support vector regression (epsilon-insensitive loss) on one-hot PU_DO + clipped "
            "trip_distance. Tunes epsilon, C (quick: e^-3..e) and max_iter. Trains on at most 200,000 rides.",
            _linear_svr_space,
            max_evaluations=4,
            course_space=_linear_svr_course_space,
            max_train_rows=200_000,
        ),
        sklearn_estimator(
            "extra_trees",
            "sklearn.ensemble.ExtraTreesRegressor",
            "Extremely randomized trees on zone ids, pair rank and clipped distance. Tunes depth (15-40), "
            "max_features, leaf/split sizes and tree count (10-40). Trains on at most 300,000 rides.",
            _extra_trees_space,
            max_evaluations=3,
            parallel=True,
            course_space=_extra_trees_course_space,
            representation="ordinal",
            max_train_rows=300_000,
        ),
        sklearn_estimator(
            "gradient_boosting",
            "sklearn.ensemble.GradientBoostingRegressor",
            "sklearn gradient boosting (single-threaded) on zone ids, pair rank and clipped distance. "
            "Tunes learning rate, depth, leaf/split sizes and tree count (quick space: depth 3-10, "
            "10-50 trees; course: depth 5-40). Trains on at most 200,000 rides.",
            _gradient_boosting_space,
            max_evaluations=3,
            course_space=_gradient_boosting_course_space,
            representation="ordinal",
            max_train_rows=200_000,
        ),
        sklearn_estimator(
            "random_forest",
            "sklearn.ensemble.RandomForestRegressor",
            "Random forest on zone ids, pair rank and clipped distance. Tunes depth, max_features, "
            "leaf/split sizes and tree count (quick space: depth 10-30, 10-30 trees; course: depth "
            "5-45, 10-60 trees). Trains on at most 300,000 rides.",
            _random_forest_space,
            max_evaluations=3,
            parallel=True,
            course_space=_random_forest_course_space,
            representation="ordinal",
            max_train_rows=300_000,
        ),
        EstimatorSpec(
            name="xgboost",
            description="XGBoost (xgb.train, hist) with native categorical splits on PU, DO and the PU_DO "
            "pair plus clipped distance; early stopping on the training window's last week (num_boost_round "
            "caps the rounds), then a refit on the whole window. Tunes learning rate, depth, regularization "
            "and sampling.",
            spaces={"quick": _xgboost_space, "course": _xgboost_course_space},
            fit=_fit_xgboost,
            max_evaluations=3,
            parallel=True,
            fit_options={"early_stopping_rounds": 10, "num_boost_round": 1000},
            config_overrides={"max_depth": int},
            library="xgboost",
            representation="categorical",
            early_stopping=True,
            refit=_refit_xgboost,
            max_search_rows=250_000,
        ),
        EstimatorSpec(
            name="lightgbm",
            description="LightGBM with native categorical splits on PU, DO and the PU_DO pair plus clipped "
            "distance; early stopping on the training window's last week (num_boost_round caps the "
            "rounds), then a refit on the whole window. Tunes learning rate, leaves, leaf size, sampling, "
            "L2 and the categorical smoothing.",
            spaces={"quick": _lightgbm_space, "course": _lightgbm_space},
            fit=_fit_lightgbm,
            max_evaluations=8,
            parallel=True,
            fit_options={"early_stopping_rounds": 20, "num_boost_round": 500},
            config_overrides={"num_leaves": int},
            library="lightgbm",
            representation="categorical",
            early_stopping=True,
            refit=_refit_lightgbm,
            max_search_rows=250_000,
        ),
    ]
}


def get_estimator(name: str) -> EstimatorSpec:
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise KeyError(f"unknown estimator {name!r}: expected one of {', '.join(ESTIMATORS)}") from None
