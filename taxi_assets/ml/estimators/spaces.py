"""The hyperopt search spaces, two profiles per model: ``quick`` (the default: all eight models
of a month train in about two minutes on two cores) and ``course`` (the MLOps course's ranges,
with its bugs fixed: README, "The estimator registry"). Each space is ``f(random_state) ->
dict`` of hyperopt expressions and constants; :func:`clean_params` turns a point back into plain
values. hyperopt is imported when a space is built, not with this module."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


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


def _hp():
    from hyperopt import hp
    from hyperopt.pyll import scope

    return hp, scope


def _int(label: str, low: int, high: int, step: int = 1):
    hp, scope = _hp()
    return scope.int(hp.quniform(label, low, high, step))


def linear_regression_space(random_state: int) -> dict[str, Any]:
    hp, _ = _hp()
    return {"fit_intercept": hp.choice("fit_intercept", [True, False])}


def lasso_space(random_state: int) -> dict[str, Any]:
    hp, _ = _hp()
    # Log-uniform: the course's uniform(1e-4, 1) spends ~all draws on alpha > 0.1, which on
    # one-hot features zeroes nearly every coefficient (RMSE within 0.01 of the baseline).
    return {
        "alpha": hp.loguniform("alpha", math.log(0.0001), 0.0),
        "max_iter": _int("max_iter", 1000, 5000, 100),
    }


def lasso_course_space(random_state: int) -> dict[str, Any]:
    hp, _ = _hp()
    return {
        "alpha": hp.uniform("alpha", 0.0001, 1.0),
        "max_iter": _int("max_iter", 1000, 5000, 100),
    }


def linear_svr_space(random_state: int) -> dict[str, Any]:
    hp, _ = _hp()
    # With the distance clipped, C in e^-3 .. e^1 converges within max_iter in about a
    # second (unclipped, C above ~1 diverged and every trial ran to max_iter).
    return {
        "epsilon": hp.uniform("epsilon", 0.0, 1.0),
        "C": hp.loguniform("C", -3, 1),
        "max_iter": _int("max_iter", 1000, 3000, 100),
        "random_state": random_state,
    }


def linear_svr_course_space(random_state: int) -> dict[str, Any]:
    hp, _ = _hp()
    return {
        "epsilon": hp.uniform("epsilon", 0.0, 1.0),
        "C": hp.loguniform("C", -7, 3),  # e^-7 .. e^3
        "max_iter": _int("max_iter", 1000, 5000, 100),
        "random_state": random_state,
    }


def forest_space(max_depth: int, n_estimators: int, split_step: int = 1, min_depth: int = 5, max_leaf: int = 10):
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


extra_trees_space = forest_space(max_depth=40, n_estimators=40, split_step=2, min_depth=15)
extra_trees_course_space = forest_space(max_depth=45, n_estimators=60, split_step=2)
random_forest_space = forest_space(max_depth=30, n_estimators=30, min_depth=10)
random_forest_course_space = forest_space(max_depth=45, n_estimators=60)


def gradient_boosting_space(random_state: int) -> dict[str, Any]:
    hp, _ = _hp()
    return {
        "learning_rate": hp.loguniform("learning_rate", -3, 0),  # 0.05 .. 1 (few trees need a larger rate)
        "max_depth": _int("max_depth", 3, 10),
        "min_samples_leaf": _int("min_samples_leaf", 1, 10),
        "min_samples_split": _int("min_samples_split", 2, 20),
        "n_estimators": _int("n_estimators", 10, 50, 10),
        "random_state": random_state,
    }


def gradient_boosting_course_space(random_state: int) -> dict[str, Any]:
    hp, _ = _hp()
    return {
        "learning_rate": hp.loguniform("learning_rate", -5, 0),  # e^-5 .. 1
        "max_depth": _int("max_depth", 5, 40),
        "min_samples_leaf": _int("min_samples_leaf", 1, 10),
        "min_samples_split": _int("min_samples_split", 2, 20),
        "n_estimators": _int("n_estimators", 10, 50, 10),
        "random_state": random_state,
    }


def xgboost_space(random_state: int, max_depth_high: int = 12, learning_rate_low: float = -2.3) -> dict[str, Any]:
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


def xgboost_course_space(random_state: int) -> dict[str, Any]:
    return xgboost_space(random_state, max_depth_high=100, learning_rate_low=-3)


def lightgbm_space(random_state: int) -> dict[str, Any]:
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

