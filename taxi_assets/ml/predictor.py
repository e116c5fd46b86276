"""A fitted model bundled with its fitted feature step: raw ride records in, minutes out.

The course kept the ``DictVectorizer`` and the model as two artifacts that callers had to wire
together (and XGBoost predictions silently used every boosting round, ignoring the one early
stopping picked). :class:`TripDurationPredictor` is the one object every consumer uses: the
model asset's output, the MLflow pyfunc model and the tests. It holds the model's own
representation (:mod:`taxi_assets.ml.representation`, distance clip included), so every
estimator takes the same raw request records, unseen zones and pairs included; it validates
them with :func:`taxi_assets.ml.features.validate_request`, so a bad record is an
:class:`~taxi_assets.ml.features.InvalidRequestError` naming the field and row, never a silent
zero. It pickles with joblib and imports neither Dagster nor anything that does. Online
requests are one or a few records, so it keeps the per-call overhead small (the class says how;
figures: ``benchmarks/serving_latency.py``).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction import DictVectorizer

from taxi_assets.ml.features import request_frame, validate_request
from taxi_assets.ml.representation import PICKUP_FIELD, FeatureStep, OneHotFeatures, request_pickups

# Below this many rows, models trained on several threads predict on one. Random forest of
# 20 trees, one thread vs two on two cores: 1 record 2.8 vs 13 ms, 1,000 rows 8.6 vs 14.0 ms,
# 4,000 rows 18.7 vs 21.5 ms; joblib's threads only pay off on large batches.
SMALL_INPUT_ROWS = 10_000


def _is_booster(estimator: Any) -> bool:
    cls = type(estimator)
    return cls.__name__ == "Booster" and cls.__module__.startswith("xgboost")


def _is_lightgbm(estimator: Any) -> bool:
    cls = type(estimator)
    return cls.__name__ == "Booster" and cls.__module__.startswith("lightgbm")


def _is_forest(estimator: Any) -> bool:
    """A fitted sklearn random forest or extra-trees regressor (the mean of its trees)."""
    if not type(estimator).__module__.startswith("sklearn.ensemble"):
        return False
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

    return isinstance(estimator, (RandomForestRegressor, ExtraTreesRegressor)) and hasattr(estimator, "estimators_")


def _threads(estimator: Any) -> int:
    """The threads a fitted sklearn estimator was given (``n_jobs``; -1: every usable CPU)."""
    n_jobs = getattr(estimator, "n_jobs", None) or 1
    if n_jobs < 0:
        from taxi_assets.ml.estimators import available_threads

        return available_threads()
    return int(n_jobs)


def _is_int32_csr(X: Any) -> bool:
    return sp.issparse(X) and X.format == "csr" and X.indices.dtype == np.int32 and X.indptr.dtype == np.int32


def _forest_ready(X: Any) -> bool:
    """An input the trees can take without sklearn's validation: int32 CSR or a dense
    float32 array without NaN (the compact columns)."""
    if sp.issparse(X):
        return _is_int32_csr(X)
    return isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype == np.float32 and not np.isnan(X).any()


def _forest_mean(forest: Any, X: sp.csr_matrix | np.ndarray, n_jobs: int = 1) -> np.ndarray:
    """``forest.predict(X)`` for a CSR matrix with int32 indices or a dense float32 array, as
    sklearn computes it on one thread (the trees' predictions summed in order, then divided by
    their count) without dispatching one job per tree. ``check_input=False`` skips each tree's
    validation of a matrix already in the form it requires (float32, CSR with int32 indices or
    C-contiguous) and of the feature count checked above.

    With ``n_jobs > 1`` blocks of rows go to threads (the trees predict without the GIL), each
    block summing the trees in the same order: unlike sklearn's threaded ``predict``, which adds
    the trees in whatever order its threads finish, the minutes are the same bit for bit on
    every run (and equal to the one-thread result)."""
    X32 = X.astype(np.float32) if sp.issparse(X) else np.ascontiguousarray(X, dtype=np.float32)

    def block(rows: slice) -> np.ndarray:
        part = X32[rows]
        total = np.zeros(part.shape[0], dtype=np.float64)
        for tree in forest.estimators_:
            total += tree.predict(part, check_input=False)
        total /= len(forest.estimators_)
        return total

    n = X32.shape[0]
    if n_jobs <= 1 or n < SMALL_INPUT_ROWS:
        return block(slice(0, n))
    from concurrent.futures import ThreadPoolExecutor

    step = -(-n // (4 * n_jobs))
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        return np.concatenate(list(pool.map(block, [slice(i, i + step) for i in range(0, n, step)])))


class TripDurationPredictor:
    """Predict trip durations (minutes) from ``{PULocationID, DOLocationID, trip_distance}``
    (and ``pickup_datetime`` for models trained with extended features).

    ``features`` is the fitted :class:`~taxi_assets.ml.representation.FeatureStep`; a bare
    fitted ``DictVectorizer`` is accepted too (the course's one-hot matrix, unclipped).

    Per-call overhead, which is what counts for one or a few records:

    - the request's fields go from validation straight into the model's input (no feature
      frame; one-hot: each distinct pickup/dropoff pair formatted once; compact: a binary
      search per zone and pair);
    - XGBoost predicts in place (no ``DMatrix``);
    - below :data:`SMALL_INPUT_ROWS` rows, models trained on several threads predict on one
      (starting threads costs more than the work): a shallow copy with ``n_jobs=1`` (sklearn)
      or a booster copy with ``nthread=1`` (XGBoost), made once per process and never pickled,
      or ``num_threads=1`` per call (LightGBM); the fitted estimator is never modified, since
      a scoring server predicts from several threads at once;
    - random forests and extra trees average their trees' predictions directly
      (:func:`_forest_mean`: sklearn's one-thread order, so the minutes are identical) instead
      of sklearn's per-tree job dispatch, which costs five times the trees; large inputs split
      their rows over the forest's threads, each block summing the trees in that same order,
      so a forest's minutes never depend on thread timing.
    """

    def __init__(self, features: FeatureStep | DictVectorizer, estimator: Any, name: str):
        if not isinstance(features, FeatureStep):
            features = OneHotFeatures(features, clip=None)
        self.feature_step = features
        self.estimator = estimator
        self.name = name

    def __repr__(self) -> str:
        return (
            f"TripDurationPredictor(name={self.name!r}, estimator={type(self.estimator).__name__}, "
            f"representation={self.feature_step.kind!r}, features={self.num_features})"
        )

    @property
    def vectorizer(self) -> DictVectorizer | None:
        """The one-hot vectorizer of a one-hot model (``None`` for compact representations)."""
        return getattr(self.feature_step, "vectorizer", None)

    @property
    def num_features(self) -> int:
        return self.feature_step.num_features

    @property
    def feature_names(self) -> list[str]:
        return self.feature_step.feature_names

    @property
    def request_fields(self) -> list[str]:
        """The fields each request record needs."""
        return self.feature_step.request_fields

    def features(
        self, records: pd.DataFrame | list[dict] | dict, max_distance_miles: float | None = None
    ) -> sp.csr_matrix | np.ndarray:
        """Validate raw records (distances up to ``max_distance_miles`` when given) and return
        the model's input for them."""
        frame = request_frame(records)
        values = validate_request(frame, max_distance_miles)
        if self.feature_step.extended:
            values[PICKUP_FIELD] = request_pickups(frame)
        return self.feature_step.from_request(values)

    def predict(self, records: pd.DataFrame | list[dict] | dict, max_distance_miles: float | None = None) -> np.ndarray:
        """Minutes for each record, as float64 (raises ``InvalidRequestError`` on bad records;
        the logged pyfunc model passes the serving bound ``max_distance_miles``)."""
        return self.predict_features(self.features(records, max_distance_miles))

    def predict_training_set(self, ts, part: str = "val") -> np.ndarray:
        """Minutes for the training set's ``"val"`` (or ``"train"``) rides, row-aligned with
        ``ts.y_val`` (``ts.y_train``), from the set's stored matrices and rides."""
        return self.predict_features(self.feature_step.from_training_set(ts, part))

    def predict_features(self, X: sp.spmatrix | np.ndarray) -> np.ndarray:
        """Minutes for each row of an input already in this model's representation (one-hot:
        ``TrainingSet.X_val``, say). The fitted distance clip is applied again (it is
        idempotent), so the training set's unclipped matrices may be passed as they are."""
        if X.shape[1] != self.num_features:
            raise ValueError(
                f"{self.name}: matrix has {X.shape[1]} features but the model was trained on {self.num_features}"
            )
        X = self.feature_step.transform(X)
        small = X.shape[0] < SMALL_INPUT_ROWS
        estimator = self._single_threaded() if small else self.estimator
        if _is_booster(estimator):
            best = getattr(estimator, "best_iteration", None)
            kwargs = {"iteration_range": (0, int(best) + 1)} if best is not None else {}
            predictions = estimator.inplace_predict(X, **kwargs)
        elif _is_lightgbm(estimator):
            kwargs = {"num_threads": 1} if small else {}
            predictions = estimator.predict(X, **kwargs)
        elif _is_forest(estimator) and _forest_ready(X):
            predictions = _forest_mean(estimator, X, n_jobs=1 if small else _threads(estimator))
        else:
            predictions = estimator.predict(X)
        return np.asarray(predictions, dtype=np.float64).reshape(-1)

    def _single_threaded(self) -> Any:
        """The estimator, or a single-threaded copy of a multi-threaded one (made once)."""
        single = self.__dict__.get("_single_threaded_view")
        if single is not None:
            return single
        estimator = self.estimator
        if _is_booster(estimator):
            single = copy.copy(estimator)  # xgboost copies the model (and best_iteration)
            single.set_param({"nthread": 1})
        elif _is_lightgbm(estimator):
            single = estimator  # LightGBM takes num_threads per predict call
        elif getattr(estimator, "n_jobs", None) not in (None, 1):
            single = copy.copy(estimator)  # shallow: shares the fitted trees
            single.n_jobs = 1
        else:
            single = estimator
        self._single_threaded_view = single
        return single

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_single_threaded_view", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Predictors pickled before feature steps existed hold the bare vectorizer.
        if "feature_step" not in state and "vectorizer" in state:
            state["feature_step"] = OneHotFeatures(state.pop("vectorizer"), clip=None)
        self.__dict__.update(state)
