"""The reference training set of the model tests: ``training_set[2024-02]`` built from the real
2024-01 and 2024-02 green files exactly as the asset builds it (train 54,378 x 5,094, validation
51,492 x 5,094; the course's feature set whatever ``TAXI_EXTENDED_FEATURES`` says). Built once
per test process (about 2 s) and shared read-only."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pandas as pd
import pytest

from taxi_assets.ml import dataset
from taxi_assets.ml.dataset import TrainingSet
from taxi_assets_tests.helpers import cleaned_month

REFERENCE_MONTHS = ("2024-01", "2024-02")
REFERENCE_BOUNDARY = pd.Timestamp("2024-02-01")


@dataclass(frozen=True)
class Reference:
    training_set: TrainingSet
    validation_rides: pd.DataFrame  # cleaned rides of X_val, same row order


@functools.lru_cache(maxsize=1)
def load_reference() -> Reference:
    cleaned = pd.concat([cleaned_month(month) for month in REFERENCE_MONTHS], ignore_index=True)
    ts = dataset.build_training_set(cleaned, REFERENCE_BOUNDARY, extended_features=False)  # the course's features
    _, validation = dataset.split_on_time(cleaned, REFERENCE_BOUNDARY)
    return Reference(ts, validation.reset_index(drop=True))


@pytest.fixture(scope="session")
def reference() -> Reference:
    return load_reference()


@pytest.fixture(scope="session")
def reference_training_set(reference) -> TrainingSet:
    return reference.training_set
