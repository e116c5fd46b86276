"""Data-quality checks on the preparation assets.

The checks are evaluated inside the asset that produces the data (declared with
``check_specs``), because the data is already in memory there and a separate partitioned
check would read the file again. Blocking checks stop downstream assets of the same run when
the data is unusable: a schema that does not match, an empty month, a file that belongs to
another month, durations outside the cleaning bounds, or an inconsistent training set.
"""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa

from taxi_assets.ml.dataset import TrainingSet
from taxi_assets.ml.schema import NORMALIZED_SCHEMAS

# Share of a month's rides that must be picked up inside that month. TLC files carry a few
# rides from neighbouring days (and clock errors from 2008/2009); a file where most rides are
# outside the month is the wrong file.
MIN_PICKUPS_IN_MONTH = 0.9

RAW = dg.AssetKey("raw_trips")
CLEANED = dg.AssetKey("cleaned_trips")
TRAINING_SET = dg.AssetKey("training_set")

raw_trips_check_specs = [
    dg.AssetCheckSpec("schema_matches", asset=RAW, blocking=True, description="Columns and types equal the normalized schema."),
    dg.AssetCheckSpec(
        "pickups_in_month",
        asset=RAW,
        blocking=True,
        description=f"At least {MIN_PICKUPS_IN_MONTH:.0%} of pickups fall inside the partition month.",
    ),
]
cleaned_trips_check_specs = [
    dg.AssetCheckSpec("has_rides", asset=CLEANED, blocking=True, description="Cleaning kept at least one ride."),
    dg.AssetCheckSpec(
        "duration_within_bounds", asset=CLEANED, blocking=True, description="Every duration lies within the cleaning bounds."
    ),
]
training_set_check_specs = [
    dg.AssetCheckSpec(
        "consistent_shapes",
        asset=TRAINING_SET,
        blocking=True,
        description="Rows of X equal rows of y; train and validation have the same feature count.",
    ),
]


def check_schema(table: pa.Table, taxi_type: str) -> dg.AssetCheckResult:
    expected = NORMALIZED_SCHEMAS[taxi_type]
    mismatched = [
        f"{f.name}: {table.schema.field(f.name).type if f.name in table.column_names else 'missing'} != {f.type}"
        for f in expected
        if f.name not in table.column_names or table.schema.field(f.name).type != f.type
    ]
    return dg.AssetCheckResult(
        check_name="schema_matches",
        asset_key=RAW,
        passed=not mismatched and table.column_names == expected.names,
        metadata={"mismatches": ", ".join(mismatched) or "none", "columns": len(table.column_names)},
    )


def check_has_rides(asset_key: dg.AssetKey, rows: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name="has_rides", asset_key=asset_key, passed=rows > 0, metadata={"rows": rows})


def check_pickups_in_month(pickups: pd.Series, month_start: pd.Timestamp, month_end: pd.Timestamp) -> dg.AssetCheckResult:
    inside = float(((pickups >= month_start) & (pickups < month_end)).mean()) if len(pickups) else 0.0
    return dg.AssetCheckResult(
        check_name="pickups_in_month",
        asset_key=RAW,
        passed=inside >= MIN_PICKUPS_IN_MONTH,
        metadata={"share_inside": round(inside, 6), "threshold": MIN_PICKUPS_IN_MONTH},
    )


def check_duration_bounds(durations: pd.Series, min_minutes: float, max_minutes: float) -> dg.AssetCheckResult:
    outside = int(((durations < min_minutes) | (durations > max_minutes) | durations.isna()).sum())
    return dg.AssetCheckResult(
        check_name="duration_within_bounds",
        asset_key=CLEANED,
        passed=outside == 0,
        metadata={"outside_bounds": outside, "min_minutes": min_minutes, "max_minutes": max_minutes},
    )


def check_training_set(ts: TrainingSet) -> dg.AssetCheckResult:
    problems = []
    if ts.X_train.shape[0] != len(ts.y_train):
        problems.append(f"X_train has {ts.X_train.shape[0]} rows but y_train {len(ts.y_train)}")
    if ts.X_val.shape[0] != len(ts.y_val):
        problems.append(f"X_val has {ts.X_val.shape[0]} rows but y_val {len(ts.y_val)}")
    if ts.X_train.shape[1] != ts.X_val.shape[1]:
        problems.append(f"train has {ts.X_train.shape[1]} features but validation {ts.X_val.shape[1]}")
    if ts.X_train.shape[1] != ts.num_features:
        problems.append(f"vectorizer has {ts.num_features} features but X_train {ts.X_train.shape[1]}")
    if not (np.isfinite(ts.y_train).all() and np.isfinite(ts.y_val).all()):
        problems.append("targets contain NaN or infinite values")
    return dg.AssetCheckResult(
        check_name="consistent_shapes",
        asset_key=TRAINING_SET,
        passed=not problems,
        metadata={"problems": "; ".join(problems) or "none"},
    )
