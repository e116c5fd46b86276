"""Regression metrics of a trip-duration model, in minutes.

sklearn.metrics is imported on first use: it costs about 1.7 s, and the Dagster code location
imports this module at load time. RMSE is the course's score (hyperopt minimizes it, ``beats_baseline`` compares it), computed
with sklearn's ``root_mean_squared_error``: sklearn 1.6+ removed ``mean_squared_error(...,
squared=False)``, which the course code still calls. The baseline predicts the training mean
for every validation ride; a model that does not beat it has learned nothing usable.
"""

from __future__ import annotations

import numpy as np


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    """``rmse``, ``mse``, ``mae`` and ``r2`` of ``y_pred`` against ``y_true`` as plain floats."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"cannot score predictions: {y_pred.shape[0]} predictions for {y_true.shape[0]} targets")
    if y_true.size == 0:
        raise ValueError("cannot score predictions: there are no validation targets")
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score, root_mean_squared_error

    return {
        "rmse": float(root_mean_squared_error(y_true, y_pred)),
        "mse": float(mean_squared_error(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
    }


def baseline_rmse(y_train, y_val) -> float:
    """RMSE on ``y_val`` of always predicting the mean of ``y_train``."""
    y_train = np.asarray(y_train, dtype=np.float64)
    y_val = np.asarray(y_val, dtype=np.float64)
    if y_train.size == 0:
        raise ValueError("cannot compute the baseline: there are no training targets")
    from sklearn.metrics import root_mean_squared_error

    return float(root_mean_squared_error(y_val, np.full(y_val.shape, y_train.mean())))
