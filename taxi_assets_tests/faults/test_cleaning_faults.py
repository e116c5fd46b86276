"""Impossible rides in the plain core: zone ids that are not TLC zones never become features,
impossible distances are counted by reason, and a ride counts once: whole-row duplicates are
dropped and counted, voided rides counted and, on request, their reversals dropped
(``taxi_assets/ml/cleaning.py``).

Real rides from the shared green months with faults injected into them, and the real months
themselves (their reference shapes stay exact: no real month holds an invalid zone id). The
per-month figures are printed by ``benchmarks/cleaning_reasons.py``.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from support.data import data_dir
from taxi_assets.ml import cleaning, schema
from taxi_assets.ml.cleaning import clean_trips, impossible_distances, pu_do_codes, valid_zone_ids

BAD_ZONE_IDS = [0, -5, 300, None, 3.5]
REFERENCE_ROWS = {"2024-01": 54_373, "2024-02": 51_497}
VOIDED = {"2024-01": (181, 73), "2024-02": (172, 74)}  # (pairs in the month, reversals among kept rides)
NO_DROP = {"duplicate_rows": 0, "missing_values": 0, "invalid_zone_id": 0, "duration_below_min": 0, "duration_above_max": 0}


@functools.cache
def _raw_month(month: str) -> pd.DataFrame:
    """Green ``month`` read and normalized exactly as ``raw_trips`` does, before cleaning."""
    path = data_dir() / f"green_tripdata_{month}.parquet"
    table = pq.read_table(path, columns=schema.source_columns("green", cleaning.CLEAN_INPUT_COLUMNS))
    normalized, _ = schema.normalize_table(table, "green", path.name)
    return normalized.to_pandas()


def raw_month(month: str) -> pd.DataFrame:
    return _raw_month(month).copy(deep=True)


@functools.cache
def _full_raw_month(month: str) -> pd.DataFrame:
    """Green ``month`` with every raw column, as ``cleaned_trips`` reads ``raw_trips``."""
    path = data_dir() / f"green_tripdata_{month}.parquet"
    normalized, _ = schema.normalize_table(pq.read_table(path), "green", path.name)
    return normalized.to_pandas()


def full_raw_month(month: str) -> pd.DataFrame:
    return _full_raw_month(month).copy(deep=True)


def good_rides(n: int = 600, month: str = "2024-01", seed: int = 3) -> pd.DataFrame:
    """``n`` real rides the course's cleaning keeps as they are: complete, 1-60 minutes, real
    zones and distances at most 100 miles, drawn with a fixed seed."""
    raw = raw_month(month)
    minutes = cleaning.duration_minutes(raw["pickup_datetime"], raw["dropoff_datetime"])
    keep = (
        raw[cleaning.CLEAN_INPUT_COLUMNS].notna().all(axis=1).to_numpy()
        & (minutes >= 1) & (minutes <= 60)
        & valid_zone_ids(raw["PULocationID"]) & valid_zone_ids(raw["DOLocationID"])
        & (raw["trip_distance"].to_numpy() <= 100)
    )  # fmt: skip
    flags = impossible_distances(raw["trip_distance"].to_numpy(), minutes)
    keep &= ~np.logical_or.reduce(list(flags.values()))
    return raw.loc[keep].sample(n=n, random_state=seed).reset_index(drop=True)


def assert_features_are_real_zones(cleaned: pd.DataFrame) -> None:
    for label in cleaned["PU_DO"].cat.categories:
        match = re.fullmatch(r"(\d+)_(\d+)", label)
        assert match, label
        assert all(1 <= int(zone) <= 265 for zone in match.groups()), label
    for column in ("PULocationID", "DOLocationID"):
        assert cleaned[column].between(1, 265).all()


# --- zone ids --------------------------------------------------------------------------------------


@pytest.mark.fast
def test_valid_zone_ids_are_whole_numbers_1_to_265():
    values = pd.Series([1, 265, 264, 236.0, 0, -5, 266, 300, None, 3.5, np.nan, "7", "abc"], dtype=object)
    assert valid_zone_ids(values).tolist() == [
        True, True, True, True, False, False, False, False, False, False, False, True, False,
    ]  # fmt: skip


@pytest.mark.parametrize("dtype", ["float64", "object"])
def test_bad_zone_ids_among_real_rides_are_dropped_and_counted(dtype):
    rides = good_rides(600)
    for column in ("PULocationID", "DOLocationID"):
        rides[column] = rides[column].astype(dtype)
    # each bad value as pickup in 20 rides and as dropoff in 20 others: 200 of the 600 rides
    bad_rows = []
    for i, value in enumerate(BAD_ZONE_IDS):
        for j, column in enumerate(("PULocationID", "DOLocationID")):
            rows = list(range(40 * i + 20 * j, 40 * i + 20 * j + 20))
            rides.loc[rows, column] = np.nan if value is None and dtype == "float64" else value
            bad_rows += rows
    assert len(set(bad_rows)) == 200

    cleaned, report = clean_trips(rides)

    assert report.rows_in == 600 and report.rows_out == 400
    assert report.dropped == dict(NO_DROP, invalid_zone_id=200)
    assert report.flagged == {"negative": 0, "over_100_miles": 0, "implied_speed_over_100_mph": 0}
    assert_features_are_real_zones(cleaned)
    # exactly the 400 untouched rides survive, in their order
    untouched = rides.drop(index=bad_rows).reset_index(drop=True)
    assert cleaned["pickup_datetime"].tolist() == untouched["pickup_datetime"].tolist()
    assert cleaned["PULocationID"].tolist() == untouched["PULocationID"].astype(int).tolist()
    expected, _ = clean_trips(good_rides(600).drop(index=bad_rows).reset_index(drop=True))
    pd.testing.assert_frame_equal(cleaned, expected)


@pytest.mark.fast
@pytest.mark.parametrize(
    "pickup, dropoff, message",
    [
        (7, -5, "DOLocationID -5 is not a TLC zone id (1..265)"),
        (0, 7, "PULocationID 0 is not a TLC zone id (1..265)"),
        (300, 7, "PULocationID 300 is not a TLC zone id (1..265)"),
        (266, 7, "PULocationID 266 is not a TLC zone id (1..265)"),
        pytest.param(3.5, 7, "PULocationID 3.5 is not a TLC zone id (1..265)"),
        pytest.param(np.nan, 7, "PULocationID nan is not a TLC zone id (1..265)"),
    ],
)  # fmt: skip
def test_no_feature_name_is_ever_built_from_a_bad_zone_id(pickup, dropoff, message):
    """Today's bug: pickup 7 / dropoff -5 became the feature ``6_999995``."""
    with pytest.raises(ValueError) as caught:
        pu_do_codes(np.array([236, pickup]), np.array([239, dropoff]))
    assert str(caught.value) == message


# --- impossible distances --------------------------------------------------------------------------


def test_two_percent_of_rides_at_a_billion_miles_are_counted():
    raw = raw_month("2024-01")
    baseline_clean, baseline = clean_trips(raw)
    assert baseline.rows_out == REFERENCE_ROWS["2024-01"]
    # 2% of the month's rides, chosen among kept rides with an ordinary distance
    minutes = cleaning.duration_minutes(raw["pickup_datetime"], raw["dropoff_datetime"])
    flags = np.logical_or.reduce(list(impossible_distances(raw["trip_distance"].to_numpy(), minutes).values()))
    ordinary = np.flatnonzero(
        raw[cleaning.CLEAN_INPUT_COLUMNS].notna().all(axis=1).to_numpy()
        & (minutes >= 1) & (minutes <= 60) & ~flags
    )  # fmt: skip
    hit = np.random.default_rng(5).choice(ordinary, size=round(0.02 * len(raw)), replace=False)
    raw.loc[hit, "trip_distance"] = 1e9

    cleaned, report = clean_trips(raw)

    # the course's cleaning keeps them (same shape), and counts every one
    assert report.rows_out == REFERENCE_ROWS["2024-01"]
    assert report.dropped == baseline.dropped
    assert report.flagged["over_100_miles"] == baseline.flagged["over_100_miles"] + len(hit)
    assert report.flagged["implied_speed_over_100_mph"] == baseline.flagged["implied_speed_over_100_mph"]
    assert report.flagged["negative"] == baseline.flagged["negative"] == 0
    assert report.flagged_share > 0.02 > 10 * baseline.flagged_share  # real months: ~0.07%
    assert (cleaned["trip_distance"] == 1e9).sum() == len(hit)
    # the run-config bound drops them instead, counted as such
    bounded, bounded_report = clean_trips(raw, max_distance_miles=100)
    far = baseline.flagged["over_100_miles"] + len(hit)
    assert bounded_report.dropped["distance_above_max"] == far
    assert bounded_report.rows_out == REFERENCE_ROWS["2024-01"] - far
    assert bounded["trip_distance"].max() <= 100
    assert bounded_report.flagged["over_100_miles"] == 0


# --- real months -----------------------------------------------------------------------------------


@pytest.mark.parametrize("month", sorted(REFERENCE_ROWS))
def test_real_months_keep_their_reference_shapes(month):
    cleaned, report = clean_trips(raw_month(month))
    assert len(cleaned) == report.rows_out == REFERENCE_ROWS[month]
    assert list(cleaned.columns) == cleaning.CLEANED_COLUMNS
    assert report.dropped["invalid_zone_id"] == 0  # no real month holds one
    assert report.rows_in == report.rows_out + sum(report.dropped.values())
    assert_features_are_real_zones(cleaned)
    # impossible distances are few and counted: 25-42 rides over 100 miles a month
    assert 20 <= report.flagged["over_100_miles"] <= 50
    assert report.flagged_share < 0.002


def test_every_shared_month_is_accounted_for():
    """Every row of every real month is kept or dropped for one reason; none has a bad zone."""
    months = sorted(p.name[len("green_tripdata_") : -len(".parquet")] for p in data_dir().glob("green_tripdata_*.parquet"))
    assert len(months) >= 2
    for month in months:
        _, report = clean_trips(raw_month(month))
        assert report.rows_in == report.rows_out + sum(report.dropped.values()), month
        assert report.dropped["invalid_zone_id"] == 0, month
        assert report.flagged_share < 0.002, (month, report.flagged)


# --- duplicates and voided rides -------------------------------------------------------------------


@pytest.mark.parametrize("month", sorted(REFERENCE_ROWS))
def test_a_month_appended_to_itself_counts_once(month):
    """Before: every ride of a doubled file was kept twice (108,746 of 113,102 for 2024-01)."""
    raw = full_raw_month(month)
    expected, reference = clean_trips(raw)
    assert reference.dropped["duplicate_rows"] == 0 and reference.duplicate_share == 0  # real months hold none

    cleaned, report = clean_trips(pd.concat([raw, raw], ignore_index=True))

    assert report.rows_in == 2 * len(raw)
    assert report.dropped["duplicate_rows"] == len(raw) and report.duplicate_share == 0.5
    assert report.rows_out == REFERENCE_ROWS[month]
    assert {k: v for k, v in report.dropped.items() if k != "duplicate_rows"} == {
        k: v for k, v in reference.dropped.items() if k != "duplicate_rows"
    }
    assert report.rows_in == report.rows_out + sum(report.dropped.values())
    pd.testing.assert_frame_equal(cleaned, expected)  # the first copy of each ride, in order


def test_rides_differing_in_one_column_are_not_duplicates():
    raw = full_raw_month("2024-02")
    copies = raw.iloc[:100].copy()
    copies["tip_amount"] = copies["tip_amount"] + 0.01
    _, report = clean_trips(pd.concat([raw, copies, raw.iloc[100:110]], ignore_index=True))
    assert report.dropped["duplicate_rows"] == 10


@pytest.mark.parametrize("month", sorted(VOIDED))
def test_voided_rides_are_counted_and_dropped_on_request(month):
    raw = full_raw_month(month)
    pairs, kept_reversals = VOIDED[month]
    reversals = cleaning.voided_reversals(raw)
    assert reversals.sum() == pairs
    voided = raw.loc[reversals]
    assert ((voided["fare_amount"] < 0) | (voided["total_amount"] < 0)).all()
    assert voided["payment_type"].isin([3, 4]).mean() > 0.95

    cleaned, report = clean_trips(raw)  # the default keeps them: the course's shapes
    assert (report.voided_pairs, report.voided_kept) == (pairs, kept_reversals)
    assert report.rows_out == REFERENCE_ROWS[month] and "voided_reversal" not in report.dropped

    dropped, dropped_report = clean_trips(raw, drop_voided=True)
    assert dropped_report.dropped["voided_reversal"] == kept_reversals
    assert dropped_report.rows_out == REFERENCE_ROWS[month] - kept_reversals
    assert (dropped_report.voided_pairs, dropped_report.voided_kept) == (pairs, 0)
    assert dropped_report.rows_in == dropped_report.rows_out + sum(dropped_report.dropped.values())
    # every voided trip is still there once: its ride is kept, only the reversal went
    key = cleaning.RIDE_KEY_COLUMNS
    assert not dropped.duplicated(subset=["pickup_datetime", "PULocationID", "DOLocationID", "trip_distance", "duration"]).any()
    assert cleaned.duplicated(subset=["pickup_datetime", "PULocationID", "DOLocationID", "trip_distance", "duration"]).sum() >= kept_reversals
    assert len(voided.merge(raw.loc[~reversals, key], on=key)) == pairs


@pytest.mark.fast
def test_a_negative_fare_without_its_ride_is_not_a_voided_pair():
    ride = {"pickup_datetime": pd.Timestamp("2024-01-03 10:00"), "dropoff_datetime": pd.Timestamp("2024-01-03 10:12"),
            "PULocationID": 236, "DOLocationID": 239, "trip_distance": 1.98, "fare_amount": 12.1, "total_amount": 15.0}
    reversal = dict(ride, fare_amount=-12.1, total_amount=-15.0)
    elsewhere = dict(reversal, DOLocationID=238)
    frame = pd.DataFrame([ride, reversal, elsewhere])
    assert cleaning.voided_reversals(frame).tolist() == [False, True, False]
    cleaned, report = clean_trips(frame, drop_voided=True)
    assert report.voided_pairs == 1 and report.dropped["voided_reversal"] == 1 and report.rows_out == 2
