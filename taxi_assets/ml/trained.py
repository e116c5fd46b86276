"""What a model asset stores for a month: the fitted predictor and the facts of its training.

The leaderboard and the champion read everything they need from their inputs (this record),
not from the event log: the MLflow run and model URI, the tuned parameters, the seconds and
trials travel with the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TrainedModel:
    predictor: Any  # taxi_assets.ml.predictor.TripDurationPredictor
    estimator: str
    month: str
    metrics: dict[str, float] = field(default_factory=dict)  # validation rmse, mse, mae, r2
    baseline_rmse: float = float("nan")
    best_params: dict[str, Any] = field(default_factory=dict)
    train_seconds: float = float("nan")
    trials: int = 0
    mlflow_run_id: str = ""
    model_uri: str = ""
    registered_model_name: str = ""
    registered_model_version: int = -1
    # The months whose rides it was fitted on (before ``month``, its validation month) and the
    # RMSE its hyperparameters were chosen on (the training window's last week).
    trained_months: list[str] = field(default_factory=list)
    selection_rmse: float = float("nan")

    @property
    def name(self) -> str:
        return self.estimator

    @property
    def beats_baseline(self) -> bool:
        return bool(self.metrics.get("rmse", np.inf) < self.baseline_rmse)

    def predict(self, records) -> np.ndarray:
        """Minutes for raw ride records (see :class:`~taxi_assets.ml.predictor.TripDurationPredictor`)."""
        return self.predictor.predict(records)
