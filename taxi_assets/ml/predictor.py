"""A fitted model bundled with its vectorizer: raw ride records in, minutes out.

The course kept the ``DictVectorizer`` and the model as two separate artifacts that callers
had to wire together (and XGBoost predictions silently used every boosting round, ignoring the
round early stopping picked). :class:`TripDurationPredictor` is the one object every consumer
uses: the model asset's output, the MLflow pyfunc model and the tests. It validates requests
with :func:`taxi_assets.ml.features.validate_request`, so a bad record is an
:class:`~taxi_assets.ml.features.InvalidRequestError` naming the field and row, never a
silent zero. It pickles with joblib (sklearn estimators and XGBoost boosters both pickle).

Online requests are one or a few records, so the per-call overhead is what counts there:

- the request's fields go from validation straight into the sparse matrix (no feature frame,
  each distinct pickup/dropoff pair formatted once);
- XGBoost predicts in place (no ``DMatrix``);
- below ``SMALL_INPUT_ROWS`` rows, models trained on several threads predict on one: a
  shallow copy with ``n_jobs=1`` (sklearn) or a booster copy with ``nthread=1`` (XGBoost),
  made once per process, never pickled; the fitted estimator is never modified, since a
  scoring server predicts from several threads at once. Starting threads for one record costs
  more than the work (joblib: about 10 ms a call on two cores; XGBoost's OpenMP threads
  double the CPU a one-record prediction burns);
- and random forests / extra trees average their trees' predictions directly (the mean of
  ``tree.predict`` over ``estimators_``, in the order sklearn sums them, so the minutes are
  identical), skipping sklearn's per-tree job dispatch, which costs five times the trees.

Figures: ``benchmarks/serving_latency.py``.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction import DictVectorizer

from taxi_assets.ml import vectorize
from taxi_assets.ml.cleaning import pu_do_codes
from taxi_assets.ml.features import validate_request


# Below this many rows, models trained on several threads predict on one. Random forest of
# 20 trees, one thread vs two on two cores: 1 record 2.8 vs 13 ms, 1,000 rows 8.6 vs 14.0 ms,
# 4,000 rows 18.7 vs 21.5 ms; joblib's threads only pay off on large batches.
SMALL_INPUT_ROWS = 10_000


def _is_booster(estimator: Any) -> bool:
    cls = type(estimator)
    return cls.__name__ == "Booster" and cls.__module__.startswith("xgboost")


def _is_forest(estimator: Any) -> bool:
    """A fitted sklearn random forest or extra-trees regressor (the mean of its trees)."""
    if not type(estimator).__module__.startswith("sklearn.ensemble"):
        return False
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

    return isinstance(estimator, (RandomForestRegressor, ExtraTreesRegressor)) and hasattr(estimator, "estimators_")


def _is_int32_csr(X: Any) -> bool:
    return sp.issparse(X) and X.format == "csr" and X.indices.dtype == np.int32 and X.indptr.dtype == np.int32


def _forest_mean(forest: Any, X: sp.csr_matrix) -> np.ndarray:
    """``forest.predict(X)`` for a CSR matrix with int32 indices, as sklearn computes it (the
    trees' predictions summed in order, then divided by their count) without dispatching one
    job per tree. ``check_input=False`` skips each tree's validation of a matrix already in the
    form it requires (float32 CSR, int32 indices) and of the feature count checked above."""
    X32 = X.astype(np.float32)
    total = np.zeros(X.shape[0], dtype=np.float64)
    for tree in forest.estimators_:
        total += tree.predict(X32, check_input=False)
    total /= len(forest.estimators_)
    return total


class TripDurationPredictor:
    """Predict trip durations (minutes) from ``{PULocationID, DOLocationID, trip_distance}``."""

    def __init__(self, vectorizer: DictVectorizer, estimator: Any, name: str):
        self.vectorizer = vectorizer
        self.estimator = estimator
        self.name = name

    def __repr__(self) -> str:
        return f"TripDurationPredictor(name={self.name!r}, estimator={type(self.estimator).__name__}, features={self.num_features})"

    @property
    def num_features(self) -> int:
        return len(self.vectorizer.feature_names_)

    def features(self, records: pd.DataFrame | list[dict] | dict) -> sp.csr_matrix:
        """Validate raw records and return their model matrix."""
        request = validate_request(records)
        labels, codes = pu_do_codes(request["PULocationID"], request["DOLocationID"])
        return vectorize.transform_columns(
            self.vectorizer,
            len(codes),
            {"PU_DO": (labels, codes)},
            {"trip_distance": request["trip_distance"]},
        )

    def predict(self, records: pd.DataFrame | list[dict] | dict) -> np.ndarray:
        """Minutes for each record, as float64 (raises ``InvalidRequestError`` on bad records)."""
        return self.predict_features(self.features(records))

    def predict_features(self, X: sp.spmatrix | np.ndarray) -> np.ndarray:
        """Minutes for each row of an already vectorized matrix (``TrainingSet.X_val``, say)."""
        if X.shape[1] != self.num_features:
            raise ValueError(
                f"{self.name}: matrix has {X.shape[1]} features but the model was trained on {self.num_features}"
            )
        small = X.shape[0] < SMALL_INPUT_ROWS
        estimator = self._single_threaded() if small else self.estimator
        if _is_booster(estimator):
            best = getattr(estimator, "best_iteration", None)
            kwargs = {"iteration_range": (0, int(best) + 1)} if best is not None else {}
            predictions = estimator.inplace_predict(X, **kwargs)
        elif small and _is_forest(estimator) and _is_int32_csr(X):
            predictions = _forest_mean(estimator, X)
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
