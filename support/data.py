"""The shared TLC months, and a green month cleaned by the pipeline's own functions."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from taxi_assets.ml import cleaning, schema

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The shared TLC folder, resolved as ``taxi_assets_tests/conftest.py``'s ``SHARED_DATA`` is:
    ``TAXI_DATA_SOURCE`` (which that conftest sets to that folder) or ``../shared/data/nyc-tlc``
    from the repo root."""
    return Path(os.environ.get("TAXI_DATA_SOURCE", REPO_ROOT.parent / "shared" / "data" / "nyc-tlc")).resolve()


@functools.cache
def _cleaned_month_cached(month: str) -> pd.DataFrame:
    path = data_dir() / f"green_tripdata_{month}.parquet"
    table = pq.read_table(path, columns=schema.source_columns("green", cleaning.CLEAN_INPUT_COLUMNS))
    normalized, _ = schema.normalize_table(table, "green", path.name)
    cleaned, _ = cleaning.clean_trips(normalized.to_pandas())
    return cleaned


def cleaned_month(month: str) -> pd.DataFrame:
    """Green ``month`` cleaned exactly as the ``cleaned_trips`` asset cleans it
    (``cleaning.CLEANED_COLUMNS``; ``PU_DO`` is a categorical of ``"PU_DO"`` strings).

    Read and cleaned once per process; each call returns a deep copy, so a caller that edits
    its frame cannot change what the next one sees.
    """
    return _cleaned_month_cached(month).copy(deep=True)
