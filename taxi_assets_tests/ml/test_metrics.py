"""``taxi_assets/ml/metrics.py`` on hand examples: the regression metrics, the training-mean
baseline, and the error for predictions and targets of different lengths."""

from __future__ import annotations

import math

import pytest

from taxi_assets.ml.metrics import baseline_rmse, regression_metrics


def test_regression_metrics_on_a_hand_example():
    metrics = regression_metrics([1, 2, 3, 4], [1, 2, 3, 8])
    assert metrics == {"rmse": 2.0, "mse": 4.0, "mae": 1.0, "r2": pytest.approx(1 - 16 / 5)}
    assert all(type(v) is float for v in metrics.values())
    assert regression_metrics([2.0, 4.0], [2.0, 4.0]) == {"rmse": 0.0, "mse": 0.0, "mae": 0.0, "r2": 1.0}


def test_baseline_predicts_the_training_mean():
    # mean of training = 2; validation errors 0 and 2 -> rmse sqrt(2)
    assert baseline_rmse([1.0, 3.0], [2.0, 4.0]) == pytest.approx(math.sqrt(2))


def test_metrics_reject_mismatched_lengths():
    with pytest.raises(ValueError, match=r"^cannot score predictions: 3 predictions for 2 targets$"):
        regression_metrics([1, 2], [1, 2, 3])
