"""A registered champion for the serving tests and benchmarks: a real model in a real (temporary)
MLflow store.

:func:`build_champion` trains plain ``LinearRegression`` on a fixed 20,000-ride sample of the
real green 2024-01 month (cleaned and vectorized exactly as the pipeline does), logs it with
:func:`~taxi_assets.registry.pyfunc.log_predictor` into a fresh sqlite tracking store with its
own artifact folder, registers it as version 1 of the champion line
``taxi-trip-duration-green`` and points the ``champion`` alias at it, as the
``champion_model`` asset does. Serving code under test then loads
``models:/taxi-trip-duration-green@champion`` from that store, never the project's.

The tests get it as the session fixture ``champion`` (``taxi_assets_tests/conftest.py``):
training and logging cost a few seconds and the store is only read afterwards.
``benchmarks/serving_latency.py`` registers its own models with :func:`register_champion`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from support.data import cleaned_month
from taxi_assets.ml import vectorize
from taxi_assets.ml.features import FEATURE_COLUMNS, TARGET
from taxi_assets.ml.predictor import TripDurationPredictor
from taxi_assets.registry.names import CHAMPION_ALIAS, champion_model_name, champion_uri

SAMPLE_MONTH = "2024-01"
SAMPLE_ROWS = 20_000
SAMPLE_SEED = 7
EXPERIMENT = "taxi-trip-duration-serving-test"
# The ride of the course's online-inference example, plus a few ordinary ones.
EXAMPLE_RECORDS = [
    {"PULocationID": 236, "DOLocationID": 239, "trip_distance": 1.98},
    {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.2},
    {"PULocationID": 166, "DOLocationID": 166, "trip_distance": 0.0},
    {"PULocationID": 1, "DOLocationID": 265, "trip_distance": 12.5},
]


@dataclass(frozen=True)
class Champion:
    """Where the registered champion lives and the predictor it was built from."""

    root: Path
    tracking_uri: str
    artifact_location: str
    model_name: str
    model_uri: str  # models:/taxi-trip-duration-green@champion
    version: int
    predictor: TripDurationPredictor


def sample_rides(month: str = SAMPLE_MONTH, rows: int = SAMPLE_ROWS, seed: int = SAMPLE_SEED) -> pd.DataFrame:
    """``rows`` cleaned rides of the real ``month``, drawn with a fixed seed."""
    return cleaned_month(month).sample(n=rows, random_state=seed).reset_index(drop=True)


def train_predictor(rides: pd.DataFrame) -> TripDurationPredictor:
    """The course's plain ``LinearRegression`` on ``PU_DO`` + ``trip_distance``."""
    from sklearn.linear_model import LinearRegression

    X, dv = vectorize.fit_transform(rides[FEATURE_COLUMNS])
    estimator = LinearRegression().fit(X, rides[TARGET].to_numpy())
    return TripDurationPredictor(dv, estimator, "linear_regression")


def register_champion(predictor: TripDurationPredictor, root: Path, name: str) -> Champion:
    """Log ``predictor`` into the store under ``root`` (created if new), register it as a new
    version of ``name`` and point the ``champion`` alias at it, as ``champion_model`` does."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from taxi_assets.registry.pyfunc import log_predictor
    from taxi_assets.registry.tracking import TrackingStore, tracking_uri_set

    tracking_uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    artifact_location = (root / "mlflow" / "artifacts").as_uri()
    experiment_id = TrackingStore(tracking_uri, EXPERIMENT, artifact_location).experiment_id()
    with tracking_uri_set(tracking_uri), mlflow.start_run(experiment_id=experiment_id):
        info = log_predictor(predictor, "model", EXAMPLE_RECORDS, registered_model_name=name)
    version = int(info.registered_model_version)
    MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(name, CHAMPION_ALIAS, str(version))
    return Champion(
        root=root,
        tracking_uri=tracking_uri,
        artifact_location=artifact_location,
        model_name=name,
        model_uri=f"models:/{name}@{CHAMPION_ALIAS}",
        version=version,
        predictor=predictor,
    )


def build_champion(root: Path) -> Champion:
    """Train the test champion and register it in a new store under ``root``."""
    champion = register_champion(train_predictor(sample_rides()), root, champion_model_name("green"))
    assert champion.model_uri == champion_uri("green")
    return champion

