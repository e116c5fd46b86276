"""Preparation: cleaned rides per month and the time-split, vectorized training set."""


import time

import dagster as dg
import pandas as pd

from taxi_assets.assets.profiles import profile_metadata
from taxi_assets.checks.data_checks import (
    CLEANED,
    check_duration_bounds,
    check_has_rides,
    check_training_set,
    cleaned_trips_check_specs,
    training_set_check_specs,
)
from taxi_assets.ml import vectorize
from taxi_assets.ml.cleaning import CLEAN_INPUT_COLUMNS, clean_trips
from taxi_assets.ml.dataset import TrainingSet, build_training_set, pool_months
from taxi_assets.ml.features import FEATURE_COLUMNS
from taxi_assets.partitions import ONE_MONTH_PER_RUN, monthly_partitions, previous_months, training_window_mapping
from taxi_assets.settings import SETTINGS


class CleaningConfig(dg.Config):
    """Which rides count as plausible trips (the course keeps 1 to 60 minutes)."""

    min_duration_minutes: float = 1.0
    max_duration_minutes: float = 60.0


def _summary(values: pd.Series, prefix: str) -> dict[str, float]:
    if values.empty:
        return {}
    q = values.quantile([0.5, 0.95])
    return {
        f"{prefix}_mean": round(float(values.mean()), 4),
        f"{prefix}_p50": round(float(q.loc[0.5]), 4),
        f"{prefix}_p95": round(float(q.loc[0.95]), 4),
        f"{prefix}_max": round(float(values.max()), 4),
    }


def window_frames(cleaned_trips, month: str, asset: str) -> dict[str, pd.DataFrame]:
    """The cleaned months of M's window, oldest first, or one clear error naming what is absent.

    ``cleaned_trips`` is what the IO manager hands an input mapped with
    :func:`~taxi_assets.partitions.training_window_mapping`: a dict for several months, the
    bare frame for one.
    """
    frames = cleaned_trips if isinstance(cleaned_trips, dict) else {month: cleaned_trips}
    wanted = previous_months(month, SETTINGS.train_months) + [month]
    absent = [m for m in wanted if m not in frames]
    if absent:
        raise dg.Failure(
            description=(
                f"{asset}[{month}] needs cleaned_trips for {', '.join(wanted)}, but "
                f"{', '.join(absent)} is before the first partition ({SETTINGS.start_month}); "
                "pick a later month or fewer TAXI_TRAIN_MONTHS"
            ),
            allow_retries=False,
        )
    return {m: frames[m] for m in wanted}


@dg.asset(
    partitions_def=monthly_partitions,
    backfill_policy=ONE_MONTH_PER_RUN,
    group_name="preparation",
    kinds={"pandas", "parquet"},
    ins={"raw_trips": dg.AssetIn(metadata={"columns": CLEAN_INPUT_COLUMNS})},
    check_specs=cleaned_trips_check_specs,
    description=(
        "Rides of one month with a plausible duration (minutes, kept between the configured "
        "bounds, 1 to 60 by default), the PU_DO pickup/dropoff pair feature, trip distance "
        "and pickup time. Reads only the five columns it needs from raw_trips."
    ),
)
def cleaned_trips(context: dg.AssetExecutionContext, config: CleaningConfig, raw_trips: pd.DataFrame):
    lo, hi = config.min_duration_minutes, config.max_duration_minutes
    if not 0 <= lo <= hi:
        raise dg.Failure(
            description=(
                f"cleaned_trips[{context.partition_key}]: invalid config min_duration_minutes={lo}, "
                f"max_duration_minutes={hi}: need 0 <= min <= max"
            ),
            allow_retries=False,
        )
    cleaned, report = clean_trips(raw_trips, lo, hi)
    context.log.info(f"kept {report.rows_out:,} of {report.rows_in:,} rides; dropped {report.dropped}")
    yield dg.Output(
        cleaned,
        metadata={
            "rows_in": report.rows_in,
            "rows_out": report.rows_out,
            **{f"dropped_{reason}": n for reason, n in report.dropped.items()},
            "distinct_pu_do": int(cleaned["PU_DO"].nunique()),
            **_summary(cleaned["duration"], "duration"),
            **_summary(cleaned["trip_distance"], "distance"),
            **profile_metadata(
                cleaned,
                "cleaned_trips",
                context.partition_key,
                "pickup_datetime",
                {"trip_distance": "miles", "duration": "minutes"},
            ),
        },
    )
    yield check_has_rides(CLEANED, len(cleaned))
    yield check_duration_bounds(cleaned["duration"], lo, hi)


@dg.asset(
    partitions_def=monthly_partitions,
    backfill_policy=ONE_MONTH_PER_RUN,
    group_name="preparation",
    kinds={"scipy"},
    ins={
        "cleaned_trips": dg.AssetIn(partition_mapping=training_window_mapping())
    },
    check_specs=training_set_check_specs,
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=SETTINGS.training_set_freshness),
    description=(
        f"Training and validation matrices for month M: the cleaned rides of the {SETTINGS.train_months} "
        "month(s) before M and of M, pooled and split on pickup time at the first instant of M "
        "(as the course's Mage pipeline does), one-hot PU_DO plus trip_distance, with the "
        "vectorizer fitted on the training rows. Stored as one compressed .npz."
    ),
)
def training_set(context: dg.AssetExecutionContext, cleaned_trips) -> dg.Output[TrainingSet]:
    month = context.partition_key
    frames = window_frames(cleaned_trips, month, "training_set")
    wanted = list(frames)
    started = time.perf_counter()
    pooled = pool_months(list(frames.values()))
    ts = build_training_set(pooled, pd.Timestamp(f"{month}-01"), info={"months": wanted, "taxi_type": SETTINGS.taxi_type})
    window_features = len(vectorize.fit(pooled[FEATURE_COLUMNS]).feature_names_)
    context.log.info(
        f"training_set[{month}]: train {ts.X_train.shape}, validation {ts.X_val.shape} "
        f"in {time.perf_counter() - started:.2f}s"
    )
    output = dg.Output(
        ts,
        metadata={
            "train_rows": ts.X_train.shape[0],
            "validation_rows": ts.X_val.shape[0],
            "num_features": ts.num_features,
            "window_rows": len(pooled),
            "window_features": window_features,
            "train_months": ", ".join(wanted[:-1]),
            "split_at": f"{month}-01T00:00:00",
            "y_train_mean": round(float(ts.y_train.mean()), 4),
            "y_val_mean": round(float(ts.y_val.mean()), 4),
        },
    )
    yield output
    yield check_training_set(ts)
