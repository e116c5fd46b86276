"""A fitted model bundled with its vectorizer: raw ride records in, minutes out.

The course kept the ``DictVectorizer`` and the model as two separate artifacts that callers
had to wire together (and XGBoost predictions silently used every boosting round, ignoring the
round early stopping picked). :class:`TripDurationPredictor` is the one object every consumer
uses: the model asset's output, the MLflow pyfunc model and the tests. It validates requests
with :func:`taxi_assets.ml.features.records_to_features`, so a bad record is an
:class:`~taxi_assets.ml.features.InvalidRequestError` naming the field and row, never a
silent zero. It pickles with joblib (sklearn estimators and XGBoost boosters both pickle).

Online requests are one or a few records, so the per-call overhead is what counts there:
the request's fields go from validation straight into the sparse matrix (no feature frame,
each distinct pickup/dropoff pair formatted once), XGBoost predicts in place (no ``DMatrix``),
and tree ensembles trained with several threads predict small inputs on one thread (joblib's
threads cost about 10 ms a call on two cores, more than the trees take for one record).
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


# Below this many rows a tree ensemble predicts on one thread: on two cores joblib's threads
# cost about 10 ms a call, more than they save (random forest of 20 trees, one thread vs two:
# 1 record 2.8 vs 13 ms, 1,000 rows 8.6 vs 14.0 ms, 4,000 rows 18.7 vs 21.5 ms).
SMALL_INPUT_ROWS = 10_000


def _is_booster(estimator: Any) -> bool:
    cls = type(estimator)
    return cls.__name__ == "Booster" and cls.__module__.startswith("xgboost")


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
        if _is_booster(self.estimator):
            best = getattr(self.estimator, "best_iteration", None)
            kwargs = {"iteration_range": (0, int(best) + 1)} if best is not None else {}
            predictions = self.estimator.inplace_predict(X, **kwargs)
        else:
            predictions = self._estimator_for(X.shape[0]).predict(X)
        return np.asarray(predictions, dtype=np.float64).reshape(-1)

    def _estimator_for(self, rows: int) -> Any:
        """The estimator, or for fewer than ``SMALL_INPUT_ROWS`` rows a single-threaded view of a
        multi-threaded one (a shallow copy sharing the fitted trees; made once, never pickled).
        The fitted estimator itself is never modified: a scoring server predicts from several
        threads at once."""
        jobs = getattr(self.estimator, "n_jobs", None)
        if rows >= SMALL_INPUT_ROWS or jobs in (None, 1):
            return self.estimator
        single = self.__dict__.get("_single_threaded")
        if single is None:
            single = copy.copy(self.estimator)
            single.n_jobs = 1
            self._single_threaded = single
        return single

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_single_threaded", None)
        return state
