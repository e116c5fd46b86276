"""Model features and the validation of prediction requests.

The model sees two features, as in the course: the pickup/dropoff pair ``PU_DO`` (one-hot) and
``trip_distance``. Predictions are requested with raw records ``{PULocationID, DOLocationID,
trip_distance}``; :func:`validate_request` checks them and rejects a bad request with one
:class:`InvalidRequestError` naming the field and record (or saying what arrived), never a
silent zero and never quoting a nested value. A record is one object of plain values:
booleans are not numbers (``true`` is neither zone 1 nor a mile); a nested object or list in
any field, and every other shape (a list of lists or of strings, a string, a number, a 2-d
array, columns of nested lists), is refused. Text spelling a number counts as that number
(``"236"``, ``"1.98"``: the CLI passes its flags as text, JSON written from CSV often quotes
numbers) and is judged like it (``"236.5"`` is no zone id). Requests, unlike a month's batch,
are held to the rides the models know: at most ``IMPOSSIBLE_DISTANCE_MILES`` (100) miles, since
every model learned rides of at most 60 minutes (``ml/cleaning.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from taxi_assets.ml.cleaning import IMPOSSIBLE_SPEED_MPH, MAX_LOCATION_ID, MIN_LOCATION_ID

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


_NESTED = (dict, list, tuple, set, frozenset, np.ndarray, pd.Series, pd.DataFrame)
_PLURALS = {"object": "objects", "list": "lists", "string": "strings", "number": "numbers",
            "boolean": "booleans", "None": "None values"}  # fmt: skip


def _unwrap(value):
    """A 0-d array's item (MLflow wraps a record's nested object in one), else ``value``."""
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def _kind(value) -> str:
    """What ``value`` is, in JSON's words (a Python caller's ``None`` stays ``None``)."""
    value = _unwrap(value)
    if value is None:
        return "None"
    if isinstance(value, (bool, np.bool_)):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, _NESTED):
        return "list"
    if isinstance(value, (str, bytes)):
        return "string"
    if isinstance(value, (int, float, np.number)):
        return "number"
    return type(value).__name__


def _describe(records) -> str:
    """What a request that is not ride records is, without quoting it."""
    if isinstance(records, np.ndarray) and records.ndim == 0:  # how MLflow hands over a lone JSON value
        return _describe(records.item())
    if isinstance(records, np.ndarray):
        return f"an array of shape {'x'.join(str(n) for n in records.shape)}"
    if isinstance(records, (list, tuple)):
        kinds = [_PLURALS.get(k, k) for k in dict.fromkeys(_kind(r) for r in records)]
        return "a list of " + (kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1])
    kind = _kind(records)
    return kind if kind == "None" else f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def _show(value) -> str:
    """A bad value for a message: short, and never a nested structure."""
    value = _unwrap(value)
    if isinstance(value, _NESTED):
        return f"a nested {_kind(value)}"
    if isinstance(value, (bool, np.bool_)):
        return repr(bool(value))
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _shape_error(records) -> InvalidRequestError:
    return InvalidRequestError(
        f"expected ride records {{{', '.join(REQUEST_FIELDS)}}} (a list of objects, one object, or "
        f"columns of values), got {_describe(records)}"
    )


def request_frame(records: pd.DataFrame | list[dict] | dict) -> pd.DataFrame:
    """The request as a frame: a frame as is, a list of records, one record (a dict of
    scalars) or columns (a dict of equally long lists/arrays, which is how MLflow's scoring
    server hands over the ``inputs`` and ``instances`` layouts). Any other shape, and columns
    of nested lists (arrays of more than one dimension), raise :class:`InvalidRequestError`."""
    if isinstance(records, pd.DataFrame):
        return records
    try:
        if isinstance(records, dict):
            if any(isinstance(v, (list, tuple, np.ndarray, pd.Series)) for v in records.values()):
                for name, value in records.items():
                    if isinstance(value, np.ndarray) and value.ndim > 1:  # per-ride lists, flattened by numpy
                        raise InvalidRequestError(
                            f"field {name!r} holds nested lists (an array of shape "
                            f"{'x'.join(str(n) for n in value.shape)}): give one plain value per ride"
                        )
                columns = {k: np.ravel(v) if isinstance(v, np.ndarray) else v for k, v in records.items()}
                return pd.DataFrame(columns)
            return pd.DataFrame([records])
        if isinstance(records, (list, tuple)) and all(isinstance(r, dict) for r in records):
            return pd.DataFrame(list(records))
    except ValueError as exc:  # columns of different lengths
        if isinstance(exc, InvalidRequestError):
            raise
        raise InvalidRequestError(f"the request's fields have different numbers of values ({exc})") from None
    raise _shape_error(records)


def _check_plain_values(frame: pd.DataFrame) -> None:
    """Refuse nested values in any field and booleans in the request fields (first one named)."""
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column.dtype):
            if name in REQUEST_FIELDS and column.notna().any():
                row = int(np.flatnonzero(column.notna().to_numpy())[0])
                raise _boolean_error(name, column.iloc[row], row)
            continue
        if column.dtype != object:
            continue
        for row, value in enumerate(column.to_numpy()):
            value = _unwrap(value)
            if isinstance(value, _NESTED):
                raise InvalidRequestError(
                    f"field {name!r} holds {_show(value)} in record {row}: each field of a ride is one plain value"
                )
            if name in REQUEST_FIELDS and isinstance(value, (bool, np.bool_)):
                raise _boolean_error(name, value, row)


def _boolean_error(name: str, value, row: int) -> InvalidRequestError:
    return InvalidRequestError(f"field {name!r} must be a number, not a boolean: got {_show(value)} in record {row}")


def validate_request(
    records: pd.DataFrame | list[dict] | dict, max_distance_miles: float | None = None
) -> dict[str, np.ndarray]:
    """Validate raw ride records; return their fields as arrays (zone ids int64, distance float64).

    Column-wise NumPy, no per-record Python: the same checks cost the same few microseconds for
    the scoring server's one-record requests as per ride in a batch. The first bad value is
    reported with its field and record number. Text spelling a number counts as that number
    (see the module docstring). ``max_distance_miles`` (the serving paths pass
    ``IMPOSSIBLE_DISTANCE_MILES``) refuses longer distances; batch scoring of cleaned rides
    passes none, as the course keeps such rides.
    """
    frame = request_frame(records)
    if len(frame) == 0:
        raise InvalidRequestError("no records to score: send at least one {PULocationID, DOLocationID, trip_distance}")
    if not any(isinstance(c, str) for c in frame.columns):  # MLflow's frame of a list of lists
        raise InvalidRequestError(
            f"expected ride records {{{', '.join(REQUEST_FIELDS)}}} (objects with named fields), got values "
            "without field names (a list of lists or of plain values)"
        )
    missing = [f for f in REQUEST_FIELDS if f not in frame.columns]
    if missing:
        raise InvalidRequestError(
            f"missing field(s) {', '.join(missing)}: each record needs {', '.join(REQUEST_FIELDS)}"
        )
    _check_plain_values(frame)
    values = {}
    for name in REQUEST_FIELDS:
        numeric = _as_float(frame[name])
        bad = ~np.isfinite(numeric)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InvalidRequestError(
                f"field {name!r} must be a finite number, got {_show(frame[name].iloc[row : row + 1].tolist()[0])} in record {row}"
            )
        values[name] = numeric
    for name in ("PULocationID", "DOLocationID"):
        ids = values[name]
        bad = (ids != np.round(ids)) | (ids < MIN_LOCATION_ID) | (ids > MAX_LOCATION_ID)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InvalidRequestError(
                f"field {name!r} must be a TLC zone id between {MIN_LOCATION_ID} and {MAX_LOCATION_ID}, "
                f"got {_show(frame[name].iloc[row : row + 1].tolist()[0])} in record {row}"
            )
        values[name] = ids.astype(np.int64)
    distance = values["trip_distance"]
    if (distance < 0).any():
        row = int(np.flatnonzero(distance < 0)[0])
        raise InvalidRequestError(f"field 'trip_distance' must not be negative, got {distance[row]} in record {row}")
    if max_distance_miles is not None and (distance > max_distance_miles).any():
        row = int(np.flatnonzero(distance > max_distance_miles)[0])
        raise InvalidRequestError(
            f"field 'trip_distance' must be at most {max_distance_miles:g} miles (the models know rides of at most "
            f"60 minutes; farther would be over {IMPOSSIBLE_SPEED_MPH:g} mph), got "
            f"{_show(frame['trip_distance'].iloc[row : row + 1].tolist()[0])} in record {row}"
        )
    return values

