"""Model features and the validation of prediction requests.

The model sees two features, as in the course: the pickup/dropoff pair ``PU_DO`` (one-hot)
and ``trip_distance``. Predictions are requested with raw records
``{PULocationID, DOLocationID, trip_distance}``; :func:`validate_request` checks them and
rejects bad requests with a message naming the field and the row, never a silent zero (the
predictor turns the validated fields into the model matrix).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from taxi_assets.ml.cleaning import MAX_LOCATION_ID, MIN_LOCATION_ID

CATEGORICAL_FEATURES = ["PU_DO"]
NUMERICAL_FEATURES = ["trip_distance"]
FEATURE_COLUMNS = CATEGORICAL_FEATURES + NUMERICAL_FEATURES
TARGET = "duration"
REQUEST_FIELDS = ["PULocationID", "DOLocationID", "trip_distance"]


class InvalidRequestError(ValueError):
    """A prediction request that cannot be scored."""


def _as_float(column: pd.Series) -> np.ndarray:
    """The column as float64 with NaN for anything non-numeric, skipping pandas' slow paths
    for columns that already are numbers (the one-record requests of the scoring server)."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biuf":
        return column.to_numpy(dtype=np.float64)
    if pd.api.types.is_numeric_dtype(column.dtype):  # nullable Int64/Float64: <NA> -> NaN
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def request_frame(records: pd.DataFrame | list[dict] | dict) -> pd.DataFrame:
    """The request as a frame: a frame as is, a list of records, one record (a dict of
    scalars) or columns (a dict of equally long lists/arrays, which is how MLflow's scoring
    server hands over the ``inputs`` and ``instances`` layouts)."""
    if isinstance(records, pd.DataFrame):
        return records
    try:
        if isinstance(records, dict):
            if any(isinstance(v, (list, tuple, np.ndarray, pd.Series)) for v in records.values()):
                columns = {k: np.ravel(v) if isinstance(v, np.ndarray) else v for k, v in records.items()}
                return pd.DataFrame(columns)
            return pd.DataFrame([records])
        if isinstance(records, (list, tuple)) and all(isinstance(r, dict) for r in records):
            return pd.DataFrame(list(records))
    except ValueError as exc:  # columns of different lengths
        raise InvalidRequestError(f"the request's fields have different numbers of values ({exc})") from None
    raise InvalidRequestError(
        f"expected ride records {{{', '.join(REQUEST_FIELDS)}}} (a list of objects, one object, or "
        f"columns of values), got {type(records).__name__}"
    )


def validate_request(records: pd.DataFrame | list[dict] | dict) -> dict[str, np.ndarray]:
    """Validate raw ride records; return their fields as arrays (zone ids int64, distance float64).

    Column-wise NumPy, no per-record Python: the same checks cost the same few microseconds for
    the scoring server's one-record requests as per ride in a batch. The first bad value is
    reported with its field and record number.
    """
    frame = request_frame(records)
    if len(frame) == 0:
        raise InvalidRequestError("no records to score: send at least one {PULocationID, DOLocationID, trip_distance}")
    missing = [f for f in REQUEST_FIELDS if f not in frame.columns]
    if missing:
        raise InvalidRequestError(
            f"missing field(s) {', '.join(missing)}: each record needs {', '.join(REQUEST_FIELDS)}"
        )
    values = {}
    for name in REQUEST_FIELDS:
        numeric = _as_float(frame[name])
        bad = ~np.isfinite(numeric)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InvalidRequestError(
                f"field {name!r} must be a finite number, got {frame[name].iloc[row : row + 1].tolist()[0]!r} in record {row}"
            )
        values[name] = numeric
    for name in ("PULocationID", "DOLocationID"):
        ids = values[name]
        bad = (ids != np.round(ids)) | (ids < MIN_LOCATION_ID) | (ids > MAX_LOCATION_ID)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InvalidRequestError(
                f"field {name!r} must be a TLC zone id between {MIN_LOCATION_ID} and {MAX_LOCATION_ID}, "
                f"got {frame[name].iloc[row : row + 1].tolist()[0]!r} in record {row}"
            )
        values[name] = ids.astype(np.int64)
    distance = values["trip_distance"]
    if (distance < 0).any():
        row = int(np.flatnonzero(distance < 0)[0])
        raise InvalidRequestError(f"field 'trip_distance' must not be negative, got {distance[row]} in record {row}")
    return values

