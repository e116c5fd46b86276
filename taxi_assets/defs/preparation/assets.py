"""Preparation: cleaned rides per month and the time-split training set of each month."""

import time

import dagster as dg
import pandas as pd
from pydantic import Field

from taxi_assets import months as month_keys
from taxi_assets.defs.checks import combine, gate
from taxi_assets.defs.metadata import profile_metadata
from taxi_assets.defs.partitions import (
    DATA_TEAM,
    ML_TEAM,
    month_bounds,
    monthly_asset,
    months_of,
    training_window_mapping,
)
from taxi_assets.defs.preparation.checks import (
    check_distances,
    check_duplicates,
    check_duration_bounds,
    check_has_rides,
    check_training_set,
    cleaned_trips_check_specs,
    training_set_check_specs,
)
from taxi_assets.ml import vectorize
from taxi_assets.ml.cleaning import clean_trips
from taxi_assets.ml.dataset import build_training_set, pool_months
from taxi_assets.ml.features import FEATURE_COLUMNS
from taxi_assets.settings import SETTINGS


class CleaningConfig(dg.Config):
    """Which rides count as plausible trips (the course keeps 1 to 60 minutes)."""

    min_duration_minutes: float = Field(default=1.0, ge=0, le=1440, description="Shortest ride kept (minutes).")
    max_duration_minutes: float = Field(default=60.0, gt=0, le=1440, description="Longest ride kept (minutes).")
    max_trip_distance_miles: float | None = Field(
        default=None,
        gt=0,
        description="Drop rides longer than this many miles. Off by default: the course keeps them, and the models "
        "clip distances themselves.",
    )
    max_duplicate_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Fail the month (blocking check no_duplicate_rides) when more than this share of its raw rows "
        "repeats an earlier row in every column; real months hold none, a month appended to itself half.",
    )
    drop_voided_rides: bool = Field(
        default=False,
        description="Drop the reversal of each voided ride (a negative-fare copy of a ride with the same times, "
        "zones and distance; about 160-200 a month), so the trip is learned once. Off by default: the course "
        "keeps them, and its reference shapes stay exact.",
    )
    max_impossible_distance_share: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description="Fail the month (blocking check distances_plausible) when more than this share of kept rides "
        "has an impossible distance; real months hold about 0.07%.",
    )


def window_frames(cleaned_trips, month: str, asset: str) -> dict[str, pd.DataFrame]:
    """The cleaned months of M's window, oldest first, or one clear error naming what is absent.

    ``cleaned_trips`` is what the IO manager hands an input mapped with
    :func:`~taxi_assets.defs.partitions.training_window_mapping`: a dict for several months,
    the bare frame for one (then it is month ``month`` only when the window is one month).
    """
    wanted = month_keys.previous_months(month, SETTINGS.train_months) + [month]
    frames = cleaned_trips if isinstance(cleaned_trips, dict) else {month: cleaned_trips}
    absent = [m for m in wanted if m not in frames]
    if absent:
        raise dg.Failure(
            description=(
                f"{asset}[{month}] needs cleaned_trips for {', '.join(wanted)}, but {', '.join(absent)} "
                f"{'is' if len(absent) == 1 else 'are'} before the first partition ({SETTINGS.start_month}) or not "
                "in this run's input; pick a later month or fewer TAXI_TRAIN_MONTHS"
            ),
            allow_retries=False,
        )
    return {m: frames[m] for m in wanted}


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


@dg.asset(
    **monthly_asset("preparation", DATA_TEAM, {"pandas", "parquet"}),
    # Every raw column: a whole-row duplicate is identical in all of them.
    ins={"raw_trips": dg.AssetIn()},
    check_specs=cleaned_trips_check_specs,
    description=(
        "Rides of one month with a plausible duration (1 to 60 minutes by default) and real TLC zone "
        "ids (whole numbers 1..265), each ride once, the PU_DO pickup/dropoff pair feature, trip distance "
        "and pickup time. Rows dropped (whole-row duplicates among them), voided rides and impossible "
        "distances kept are counted by reason."
    ),
)
def cleaned_trips(context: dg.AssetExecutionContext, config: CleaningConfig, raw_trips):
    lo, hi = config.min_duration_minutes, config.max_duration_minutes
    months = months_of(context)
    if lo > hi:
        raise dg.Failure(
            description=(
                f"cleaned_trips[{', '.join(months)}]: invalid config min_duration_minutes={lo}, "
                f"max_duration_minutes={hi}: need min <= max"
            ),
            allow_retries=False,
        )
    raw_by_month = raw_trips if isinstance(raw_trips, dict) else {months[0]: raw_trips}
    outputs, reports, checks = {}, {}, {}
    for month in months:
        cleaned, report = clean_trips(
            raw_by_month[month], lo, hi, max_distance_miles=config.max_trip_distance_miles,
            drop_voided=config.drop_voided_rides,
        )  # fmt: skip
        context.log.info(
            f"cleaned_trips[{month}]: kept {report.rows_out:,} of {report.rows_in:,} rides; dropped {report.dropped}; "
            f"voided rides {report.voided_pairs:,} ({report.voided_kept:,} reversals kept); "
            f"impossible distances kept {report.flagged}"
        )
        outputs[month], reports[month] = cleaned, report
        checks[month] = [
            check_duplicates(report.dropped["duplicate_rows"], report.rows_in, config.max_duplicate_share),
            check_has_rides(len(cleaned)),
            check_duration_bounds(cleaned["duration"], lo, hi),
            check_distances(report.flagged, len(cleaned), config.max_impossible_distance_share),
        ]
    yield from gate("cleaned_trips", checks)
    for month, cleaned in outputs.items():
        report = reports[month]
        context.add_asset_metadata(
            {
                "rows_in": report.rows_in,
                "rows_out": report.rows_out,
                **{f"dropped_{reason}": n for reason, n in report.dropped.items()},
                "duplicate_share": round(report.duplicate_share, 6),
                "voided_pairs": report.voided_pairs,
                "voided_reversals_kept": report.voided_kept,
                **{f"impossible_distance_{reason}": n for reason, n in report.flagged.items()},
                "distinct_pu_do": int(cleaned["PU_DO"].nunique()),
                **_summary(cleaned["duration"], "duration"),
                **_summary(cleaned["trip_distance"], "distance"),
                **profile_metadata(
                    cleaned, "cleaned_trips", month, "pickup_datetime", {"trip_distance": "miles", "duration": "minutes"}
                ),
            },
            partition_key=month,
        )
    yield dg.Output(outputs)
    yield from combine(checks).values()


@dg.asset(
    **monthly_asset("preparation", ML_TEAM, {"scipy"}),
    ins={"cleaned_trips": dg.AssetIn(partition_mapping=training_window_mapping())},
    check_specs=training_set_check_specs,
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=SETTINGS.training_set_freshness),
    description=(
        f"Training and validation data for month M: the cleaned rides of the {SETTINGS.train_months} "
        "month(s) before M and of M, pooled and split on pickup time at the first instant of M "
        "(as the course's Mage pipeline does): the course's one-hot PU_DO + trip_distance matrices "
        "(vectorizer fitted on the training rows) and the rides themselves, from which every "
        "estimator builds the representation it learns best from. One compressed .npz."
    ),
)
def training_set(context: dg.AssetExecutionContext, cleaned_trips):
    by_month = cleaned_trips if isinstance(cleaned_trips, dict) else None
    outputs, checks = {}, {}
    for month in months_of(context):
        window = month_keys.previous_months(month, SETTINGS.train_months) + [month]
        if by_month is None:
            frames = window_frames(cleaned_trips, month, "training_set")
        else:
            frames = window_frames({m: by_month[m] for m in window if m in by_month}, month, "training_set")
        started = time.perf_counter()
        pooled = pool_months(list(frames.values()))
        start, _ = month_bounds(month)
        ts = build_training_set(
            pooled, start, info={"months": window, "taxi_type": SETTINGS.taxi_type}, extended_features=SETTINGS.extended_features
        )
        # The course's "full" matrix: every pair of the window one-hot (105,870 x 7,027 for 2024-02).
        window_features = len(vectorize.fit(pooled[FEATURE_COLUMNS]).feature_names_)
        context.log.info(
            f"training_set[{month}]: train {ts.X_train.shape}, validation {ts.X_val.shape} "
            f"in {time.perf_counter() - started:.2f}s"
        )
        outputs[month] = ts
        checks[month] = [check_training_set(ts)]
        context.add_asset_metadata(
            {
                "train_rows": ts.X_train.shape[0],
                "validation_rows": ts.X_val.shape[0],
                "num_features": ts.num_features,
                "window_rows": len(pooled),
                "window_features": window_features,
                "train_months": ", ".join(window[:-1]),
                "split_at": f"{month}-01T00:00:00",
                "y_train_mean": round(float(ts.y_train.mean()), 4),
                "y_val_mean": round(float(ts.y_val.mean()), 4),
                "dagster/row_count": ts.X_train.shape[0] + ts.X_val.shape[0],
            },
            partition_key=month,
        )
    yield from gate("training_set", checks)
    yield dg.Output(outputs)
    yield from combine(checks).values()
