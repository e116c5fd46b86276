"""The models the pipeline tunes, one job per module: ``spec`` (what a tunable model is, the sklearn
adapter, the rides and threads of a fit), ``spaces`` (the hyperopt search spaces), ``boosters``
(XGBoost and LightGBM fit and refit) and ``registry`` (:data:`ESTIMATORS`: add a model there).
The names below are the package's interface; import them from ``taxi_assets.ml.estimators``."""

from taxi_assets.ml.estimators.boosters import MAX_REFIT_ROUNDS_SCALE, refit_rounds
from taxi_assets.ml.estimators.registry import ESTIMATORS, get_estimator
from taxi_assets.ml.estimators.spaces import clean_params
from taxi_assets.ml.estimators.spec import EstimatorSpec, available_threads, sklearn_estimator, training_rows

__all__ = [
    "ESTIMATORS",
    "MAX_REFIT_ROUNDS_SCALE",
    "EstimatorSpec",
    "available_threads",
    "clean_params",
    "get_estimator",
    "refit_rounds",
    "sklearn_estimator",
    "training_rows",
]
