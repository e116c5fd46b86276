"""The reference training set of the model tests: ``training_set[2024-02]`` built from the real
2024-01 and 2024-02 green files exactly as the asset builds it (train 54,378 x 5,094, validation
51,492 x 5,094). Built once per test process (about 2 s) and shared read-only."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from taxi_assets.ml import cleaning, dataset, schema
from taxi_assets.ml.dataset import TrainingSet

REFERENCE_MONTHS = ("2024-01", "2024-02")
REFERENCE_BOUNDARY = pd.Timestamp("2024-02-01")


def data_dir() -> Path:
    """The shared TLC folder (``../shared/data/nyc-tlc`` from the repo, or ``TAXI_DATA_SOURCE``)."""
    override = os.environ.get("TAXI_DATA_SOURCE", "")
    if override and "://" not in override:
        return Path(override)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nyc-tlc"


@dataclass(frozen=True)
class Reference:
    training_set: TrainingSet
    validation_rides: pd.DataFrame  # cleaned rides of X_val, same row order


@functools.lru_cache(maxsize=1)
def load_reference() -> Reference:
    frames = []
    for month in REFERENCE_MONTHS:
        path = data_dir() / f"green_tripdata_{month}.parquet"
        table = pq.read_table(path, columns=schema.source_columns("green", cleaning.CLEAN_INPUT_COLUMNS))
        frames.append(cleaning.clean_trips(schema.normalize_table(table, "green", str(path))[0].to_pandas())[0])
    cleaned = pd.concat(frames, ignore_index=True)
    ts = dataset.build_training_set(cleaned, REFERENCE_BOUNDARY)
    _, validation = dataset.split_on_time(cleaned, REFERENCE_BOUNDARY)
    return Reference(ts, validation.reset_index(drop=True))


@pytest.fixture(scope="session")
def reference() -> Reference:
    return load_reference()


@pytest.fixture(scope="session")
def reference_training_set(reference) -> TrainingSet:
    return reference.training_set
