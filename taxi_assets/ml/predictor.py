"""A fitted model bundled with its vectorizer: raw ride records in, minutes out.

The course kept the ``DictVectorizer`` and the model as two separate artifacts that callers
had to wire together (and XGBoost predictions silently used every boosting round, ignoring the
round early stopping picked). :class:`TripDurationPredictor` is the one object every consumer
uses: the model asset's output, the MLflow pyfunc model and the tests. It validates requests
with :func:`taxi_assets.ml.features.records_to_features`, so a bad record is an
:class:`~taxi_assets.ml.features.InvalidRequestError` naming the field and row, never a
silent zero. It pickles with joblib (sklearn estimators and XGBoost boosters both pickle).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction import DictVectorizer

from taxi_assets.ml import vectorize
from taxi_assets.ml.features import records_to_features


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
        return vectorize.transform(records_to_features(records), self.vectorizer)

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
            import xgboost as xgb

            best = getattr(self.estimator, "best_iteration", None)
            kwargs = {"iteration_range": (0, int(best) + 1)} if best is not None else {}
            predictions = self.estimator.predict(xgb.DMatrix(X), **kwargs)
        else:
            predictions = self.estimator.predict(X)
        return np.asarray(predictions, dtype=np.float64).reshape(-1)
