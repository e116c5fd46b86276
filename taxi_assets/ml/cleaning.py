"""Trip cleaning and the ``PU_DO`` feature, vectorized end to end.

The course pipeline computes durations with ``Series.apply(lambda td: td.total_seconds()/60)``
and builds ``PU_DO`` by concatenating two string columns. Both are per-row Python work; here
the duration is one integer subtraction on the timestamp buffers and ``PU_DO`` is built as a
categorical whose strings are formatted once per distinct pair (a few thousand), not once per
ride (millions for a yellow month).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# What a ride is (a voided ride and its reversal share these) and the money columns that tell a
# reversal from its ride. Cleaning needs these; whole-row duplicates are judged on every column
# it is given (``cleaned_trips`` passes every raw column).
RIDE_KEY_COLUMNS = ["pickup_datetime", "dropoff_datetime", "PULocationID", "DOLocationID", "trip_distance"]
MONEY_COLUMNS = ["fare_amount", "total_amount"]
CLEAN_INPUT_COLUMNS = RIDE_KEY_COLUMNS + MONEY_COLUMNS
CLEANED_COLUMNS = ["pickup_datetime", "PULocationID", "DOLocationID", "PU_DO", "trip_distance", "duration"]

# NYC TLC taxi zones are numbered 1..265 (264 and 265 are "unknown"/"outside NYC").
MIN_LOCATION_ID = 1
MAX_LOCATION_ID = 265

# A ride of at most an hour cannot cover more than this (NYC's fastest roads allow 65 mph).
# Serving refuses longer distances too (``ml/features.py``): the models only know rides of at
# most 60 minutes, and over 100 miles in 60 minutes is over 100 mph.
IMPOSSIBLE_SPEED_MPH = 100.0
IMPOSSIBLE_DISTANCE_MILES = 100.0


@dataclass
class CleaningReport:
    rows_in: int
    rows_out: int
    dropped: dict[str, int] = field(default_factory=dict)
    # Voided rides: reversals found in the month (each cancels a ride with the same key), and
    # how many of them are among the kept rides (0 when they are dropped).
    voided_pairs: int = 0
    voided_kept: int = 0
    # Kept rides whose distance is impossible for their duration, by reason (the course keeps
    # them; the models clip distances themselves, and a month with too many fails a check).
    flagged: dict[str, int] = field(default_factory=dict)

    @property
    def flagged_share(self) -> float:
        return sum(self.flagged.values()) / self.rows_out if self.rows_out else 0.0

    @property
    def duplicate_share(self) -> float:
        """Whole-row duplicates (copies beyond the first) per row of the raw month."""
        return self.dropped.get("duplicate_rows", 0) / self.rows_in if self.rows_in else 0.0


def duplicate_rows(raw: pd.DataFrame) -> np.ndarray:
    """Mask of rows identical in every column to an earlier row (the first copy is not marked;
    missing values count as equal). Real months hold none; a month appended to itself is half."""
    return raw.duplicated(keep="first").to_numpy()


def voided_reversals(raw: pd.DataFrame) -> np.ndarray:
    """Mask of reversal rows: a negative ``fare_amount`` or ``total_amount`` on a row whose
    pickup and dropoff times, zones and distance (``RIDE_KEY_COLUMNS``) equal those of a ride
    that is not negative, the ride it voids. Green months 2023-02..2024-02 hold 159-205 such pairs
    (payment type 3, no charge, or 4, dispute, for almost all); kept, the trip is learned twice."""
    # A missing amount is not negative (nullable columns compare to <NA>, not False).
    negative = ((raw["fare_amount"] < 0) | (raw["total_amount"] < 0)).to_numpy(dtype=bool, na_value=False)
    if not negative.any():
        return negative
    keys = raw[RIDE_KEY_COLUMNS]
    rides = pd.MultiIndex.from_frame(keys.loc[~negative])
    return negative & pd.MultiIndex.from_frame(keys).isin(rides)


def valid_zone_ids(ids) -> np.ndarray:
    """Which values are TLC zone ids: whole numbers in 1..265 (missing values are not)."""
    values = pd.to_numeric(pd.Series(np.asarray(ids).ravel()), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values == np.round(values)) & (values >= MIN_LOCATION_ID) & (values <= MAX_LOCATION_ID)


def impossible_distances(distance: np.ndarray, minutes: np.ndarray) -> dict[str, np.ndarray]:
    """Masks of rides whose distance cannot be real, by exclusive reason: ``negative``,
    ``over_100_miles``, ``implied_speed_over_100_mph`` (real months: 0.05-0.10% of rides)."""
    distance = np.asarray(distance, dtype=np.float64)
    hours = np.asarray(minutes, dtype=np.float64) / 60.0
    negative = distance < 0
    far = ~negative & (distance > IMPOSSIBLE_DISTANCE_MILES)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        fast = ~negative & ~far & (hours > 0) & (distance / hours > IMPOSSIBLE_SPEED_MPH)
    return {"negative": negative, "over_100_miles": far, "implied_speed_over_100_mph": fast}


def duration_minutes(pickup: pd.Series, dropoff: pd.Series) -> np.ndarray:
    """Minutes between pickup and dropoff as float64, computed on the int64 buffers."""
    pick = pickup.to_numpy(dtype="datetime64[us]").astype(np.int64)
    drop = dropoff.to_numpy(dtype="datetime64[us]").astype(np.int64)
    minutes = (drop - pick) / 60_000_000.0
    missing = pickup.isna().to_numpy() | dropoff.isna().to_numpy()
    if missing.any():
        minutes[missing] = np.nan
    return minutes


def _zone_ids(name: str, values) -> np.ndarray:
    """``values`` as int64 zone ids, or a ValueError naming the first value that is not one: a
    negative id would pack into another pair's name (7, -5 -> "6_999995"), 3.5 into zone 3 and
    NaN into a huge negative number."""
    ids = np.asarray(values)
    if ids.dtype.kind in "iu":
        bad = (ids < MIN_LOCATION_ID) | (ids > MAX_LOCATION_ID)
    else:
        as_float = np.asarray(ids, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(as_float) | (as_float != np.round(as_float))
            bad |= (as_float < MIN_LOCATION_ID) | (as_float > MAX_LOCATION_ID)
        ids = np.where(bad, 0, as_float)
    if bad.any():
        first = np.asarray(values).ravel()[np.flatnonzero(np.ravel(bad))[0]]
        shown = int(first) if isinstance(first, (int, np.integer)) else float(first)
        if isinstance(shown, float) and shown.is_integer():
            shown = int(shown)
        raise ValueError(f"{name} {shown} is not a TLC zone id ({MIN_LOCATION_ID}..{MAX_LOCATION_ID})")
    return ids.astype(np.int64, copy=False)


def pu_do_codes(pickup_ids: pd.Series | np.ndarray, dropoff_ids: pd.Series | np.ndarray) -> tuple[list[str], np.ndarray]:
    """``(labels, codes)`` of the ``"{PULocationID}_{DOLocationID}"`` pairs: each distinct pair
    is formatted once, ``codes`` (int32) index ``labels`` per ride."""
    pu = _zone_ids("PULocationID", pickup_ids)
    do = _zone_ids("DOLocationID", dropoff_ids)
    # Zone ids are 1..265: pack the pair into one int64 key.
    keys = pu * 1_000_000 + do
    uniques, codes = np.unique(keys, return_inverse=True)
    labels = [f"{k // 1_000_000}_{k % 1_000_000}" for k in uniques.tolist()]
    return labels, codes.astype(np.int32).reshape(-1)


def pu_do(pickup_ids: pd.Series | np.ndarray, dropoff_ids: pd.Series | np.ndarray) -> pd.Categorical:
    """``"{PULocationID}_{DOLocationID}"`` as a categorical (see :func:`pu_do_codes`)."""
    labels, codes = pu_do_codes(pickup_ids, dropoff_ids)
    return pd.Categorical.from_codes(codes, categories=pd.Index(labels, dtype=object))


def clean_trips(
    raw: pd.DataFrame,
    min_minutes: float = 1.0,
    max_minutes: float = 60.0,
    max_distance_miles: float | None = None,
    drop_voided: bool = False,
) -> tuple[pd.DataFrame, CleaningReport]:
    """Keep rides with ``min_minutes <= duration <= max_minutes``, real zone ids and complete
    key fields, once each (and, when ``max_distance_miles`` is given, at most that distance;
    when ``drop_voided``, without the reversals of voided rides).

    Returns the cleaned frame (``CLEANED_COLUMNS``, original row order, fresh index) and the
    rows dropped for each reason. Reasons are exclusive and counted in this order:
    ``duplicate_rows`` (identical in every column of ``raw`` to an earlier row,
    :func:`duplicate_rows`), ``missing_values`` (null pickup/dropoff/distance),
    ``invalid_zone_id`` (a zone id that is missing or not a whole number in 1..265: no real
    month has one, but one would otherwise become a wrong feature), ``duration_below_min``,
    ``duration_above_max``, ``voided_reversal`` (with ``drop_voided``), then
    ``distance_above_max``. Voided pairs are counted either way (``report.voided_pairs``,
    :func:`voided_reversals`); kept rides with an impossible distance in ``report.flagged``
    (:func:`impossible_distances`).
    """
    if min_minutes > max_minutes:
        raise ValueError(f"min_minutes ({min_minutes}) must not exceed max_minutes ({max_minutes})")
    missing = [c for c in CLEAN_INPUT_COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"cannot clean trips: column(s) missing: {', '.join(missing)}")
    minutes = duration_minutes(raw["pickup_datetime"], raw["dropoff_datetime"])
    duplicate = duplicate_rows(raw)
    incomplete = ~duplicate & raw[["pickup_datetime", "dropoff_datetime", "trip_distance"]].isna().any(axis=1).to_numpy()
    bad_zone = ~duplicate & ~incomplete & ~(valid_zone_ids(raw["PULocationID"]) & valid_zone_ids(raw["DOLocationID"]))
    usable = ~(duplicate | incomplete | bad_zone)
    below = usable & (minutes < min_minutes)
    above = usable & (minutes > max_minutes)
    keep = usable & ~below & ~above
    reversal = voided_reversals(raw) & ~duplicate
    voided = keep & reversal if drop_voided else np.zeros(len(raw), dtype=bool)
    keep &= ~voided
    distance = raw["trip_distance"].to_numpy(dtype=np.float64, na_value=np.nan)
    too_far = np.zeros(len(raw), dtype=bool)
    if max_distance_miles is not None:
        too_far = keep & (distance > max_distance_miles)
        keep &= ~too_far
    flagged = {reason: int((mask & keep).sum()) for reason, mask in impossible_distances(distance, minutes).items()}
    report = CleaningReport(
        rows_in=len(raw),
        rows_out=int(keep.sum()),
        dropped={
            "duplicate_rows": int(duplicate.sum()),
            "missing_values": int(incomplete.sum()),
            "invalid_zone_id": int(bad_zone.sum()),
            "duration_below_min": int(below.sum()),
            "duration_above_max": int(above.sum()),
            **({"voided_reversal": int(voided.sum())} if drop_voided else {}),
            **({"distance_above_max": int(too_far.sum())} if max_distance_miles is not None else {}),
        },
        voided_pairs=int(reversal.sum()),
        voided_kept=int((reversal & keep).sum()),
        flagged=flagged,
    )
    kept = raw.loc[keep]
    cleaned = pd.DataFrame(
        {
            "pickup_datetime": kept["pickup_datetime"].to_numpy(dtype="datetime64[us]"),
            "PULocationID": kept["PULocationID"].to_numpy(dtype=np.int32),
            "DOLocationID": kept["DOLocationID"].to_numpy(dtype=np.int32),
            "PU_DO": pu_do(kept["PULocationID"], kept["DOLocationID"]),
            "trip_distance": kept["trip_distance"].to_numpy(dtype=np.float64),
            "duration": minutes[keep],
        }
    )
    return cleaned, report
