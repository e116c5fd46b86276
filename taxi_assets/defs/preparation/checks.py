"""Blocking checks of ``cleaned_trips`` and ``training_set``, evaluated in the asset before the
month is written (see ``defs/checks.py``)."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd

from taxi_assets.ml.dataset import TrainingSet

CLEANED = dg.AssetKey("cleaned_trips")
TRAINING_SET = dg.AssetKey("training_set")

cleaned_trips_check_specs = [
    dg.AssetCheckSpec(
        "no_duplicate_rides",
        asset=CLEANED,
        blocking=True,
        description=(
            "The share of raw rows identical in every column to an earlier row stays below the threshold (run "
            "config max_duplicate_share): real months hold none, a month appended to itself half."
        ),
    ),
    dg.AssetCheckSpec("has_rides", asset=CLEANED, blocking=True, description="Cleaning kept at least one ride."),
    dg.AssetCheckSpec(
        "duration_within_bounds", asset=CLEANED, blocking=True, description="Every duration lies within the cleaning bounds."
    ),
    dg.AssetCheckSpec(
        "distances_plausible",
        asset=CLEANED,
        blocking=True,
        description=(
            "The share of kept rides with an impossible distance (see taxi_assets/ml/cleaning.py) stays below "
            "the threshold (run config max_impossible_distance_share)."
        ),
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


def check_has_rides(rows: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name="has_rides", asset_key=CLEANED, passed=rows > 0, metadata={"rows": rows})


def check_duplicates(duplicates: int, rows_in: int, max_share: float) -> dg.AssetCheckResult:
    """Fails when whole-row duplicates exceed ``max_share`` of the month's raw rows (they are
    dropped either way; this stops a month that was appended to itself or ingested twice)."""
    share = duplicates / rows_in if rows_in else 0.0
    return dg.AssetCheckResult(
        check_name="no_duplicate_rides",
        asset_key=CLEANED,
        passed=share <= max_share,
        metadata={"duplicate_share": round(share, 6), "threshold": max_share, "duplicate_rows": int(duplicates)},
    )


def check_duration_bounds(durations: pd.Series, min_minutes: float, max_minutes: float) -> dg.AssetCheckResult:
    outside = int(((durations < min_minutes) | (durations > max_minutes) | durations.isna()).sum())
    return dg.AssetCheckResult(
        check_name="duration_within_bounds",
        asset_key=CLEANED,
        passed=outside == 0,
        metadata={"outside_bounds": outside, "min_minutes": min_minutes, "max_minutes": max_minutes},
    )


def check_distances(flagged: dict[str, int], rows: int, max_share: float) -> dg.AssetCheckResult:
    """Fails when the kept rides' share of impossible distances exceeds ``max_share``."""
    total = sum(flagged.values())
    share = total / rows if rows else 0.0
    worst = max(flagged, key=flagged.get) if total else "none"
    return dg.AssetCheckResult(
        check_name="distances_plausible",
        asset_key=CLEANED,
        passed=share <= max_share,
        metadata={
            "impossible_share": round(share, 6),
            "threshold": max_share,
            "main_reason": worst,
            **{f"impossible_{reason}": int(n) for reason, n in flagged.items()},
        },
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
