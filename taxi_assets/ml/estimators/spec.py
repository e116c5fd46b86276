"""What one tunable model is (:class:`EstimatorSpec`), the adapter for any sklearn regressor, and
how big a fit is: the rides it trains on (:func:`training_rows`) and its threads
(:func:`available_threads`). Plain Python; model libraries load on first fit."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def available_threads(cap: int | None = None) -> int:
    """CPUs this process may run on, at most ``cap`` when given: the affinity mask
    (``os.sched_getaffinity``), so a container pinned to fewer cores is not oversubscribed."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    if cap is not None:
        cpus = min(cpus, cap)
    return max(1, cpus)


def training_rows(total: int, cap: int | None, random_state: int):
    """Indexes of the training rides an estimator with ``max_train_rows=cap`` trains on:
    ``None`` (all of them) when ``total <= cap``, else ``cap`` of them drawn without
    replacement with ``random_state``, in their original order."""
    import numpy as np

    if cap is None or total <= cap:
        return None
    return np.sort(np.random.default_rng(random_state).choice(total, size=cap, replace=False))


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
    fields. ``max_train_rows`` caps the rides the estimator trains on (README, "Training-size
    caps"); ``library`` is the package that does the fitting (the asset's kind).
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
    # refit on every ride (or max_train_rows).
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
