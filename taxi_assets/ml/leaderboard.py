"""The month's models side by side, in plain pandas: metrics, training facts, top features.

Every figure comes from the models and the training set themselves: each stored predictor
scores the validation rides again (so the table is the truth even if metadata was lost), the
tuning facts travel with each :class:`~taxi_assets.ml.trained.TrainedModel`.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from taxi_assets.ml.metrics import baseline_rmse, regression_metrics

LEADERBOARD_COLUMNS = [
    "model", "rmse", "mse", "mae", "r2", "baseline_rmse", "beats_baseline", "train_seconds", "trials",
    "best_params", "mlflow_run_id", "model_uri",
]  # fmt: skip
# Rows of the validation set explained (the boosters' SHAP contributions are dense: rows x features).
EXPLAIN_ROWS = 2000


def validation_predictions(model, ts) -> np.ndarray:
    """Minutes ``model`` (a TrainedModel or predictor) predicts for the validation rides of
    ``ts``, built in the model's own representation (one-hot matrix or compact columns)."""
    predictor = getattr(model, "predictor", model)
    return predictor.predict_training_set(ts, "val")


def leaderboard_frame(models: dict, predictions: dict[str, np.ndarray], ts) -> pd.DataFrame:
    """Every model's validation metrics and training facts, best RMSE first."""
    baseline = baseline_rmse(ts.y_train, ts.y_val)
    rows = []
    for name, predicted in predictions.items():
        metrics = regression_metrics(ts.y_val, predicted)
        trained = models[name]
        rows.append(
            {
                "model": name,
                **{k: float(metrics[k]) for k in ("rmse", "mse", "mae", "r2")},
                "baseline_rmse": float(baseline),
                "beats_baseline": bool(metrics["rmse"] < baseline),
                "train_seconds": float(getattr(trained, "train_seconds", np.nan)),
                "trials": int(getattr(trained, "trials", 0) or 0),
                "best_params": json.dumps(getattr(trained, "best_params", {}), sort_keys=True),
                "mlflow_run_id": str(getattr(trained, "mlflow_run_id", "")),
                "model_uri": str(getattr(trained, "model_uri", "")),
            }
        )
    return pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS).sort_values("rmse", kind="stable").reset_index(drop=True)


def top_features_frame(models: dict, ts, top_n: int = 5) -> pd.DataFrame:
    """The ``top_n`` features of every model: SHAP for the boosters (XGBoost, LightGBM; by
    column: ``PU``, ``DO``, ``PU_DO``, ``trip_distance``), coefficients for linear models (one-hot
    names like ``PU_DO=236_239``), impurity importances for tree ensembles
    (``model, rank, feature, importance, value, method``)."""
    from taxi_assets.ml.explain import top_features

    parts = []
    for name, model in models.items():
        predictor = getattr(model, "predictor", model)
        sample = predictor.feature_step.from_training_set(ts, "val")[:EXPLAIN_ROWS]
        top = top_features(predictor, predictor.feature_names, X=sample, top_n=top_n)
        top.insert(0, "rank", np.arange(1, len(top) + 1))
        top.insert(0, "model", name)
        parts.append(top)
    columns = ["model", "rank", "feature", "importance", "value", "method"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
