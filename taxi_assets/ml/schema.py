"""One documented schema per taxi type, and the code that forces every TLC month into it.

TLC files drift between months: ids arrive as int32 in one file and int64 in the next, rate
and payment codes as double or int64, ``ehail_fee`` as an all-null column of type ``null`` or
``double``, strings as ``string`` or ``large_string``, timestamps in ns or us. Concatenating
such months fails or silently upcasts, so ``raw_trips`` stores every month in
:data:`NORMALIZED_SCHEMAS` (green: ``ehail_fee`` and ``trip_type``; yellow: ``airport_fee``,
spelled ``Airport_fee`` in some months). The pickup and dropoff columns are renamed to
``pickup_datetime`` and ``dropoff_datetime`` (:data:`SOURCE_RENAMES`) so that green
(``lpep_``) and yellow (``tpep_``) months share the rest of the pipeline unchanged. A missing
required column (:data:`REQUIRED_COLUMNS`) rejects the month; a missing optional column is
filled with nulls and reported; unknown extra columns are dropped and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

TAXI_TYPES = ("green", "yellow")

REQUIRED_COLUMNS = ("pickup_datetime", "dropoff_datetime", "PULocationID", "DOLocationID", "trip_distance")

_COMMON_HEAD = [
    ("VendorID", pa.int32()),
    ("pickup_datetime", pa.timestamp("us")),
    ("dropoff_datetime", pa.timestamp("us")),
    ("store_and_fwd_flag", pa.string()),
    ("RatecodeID", pa.int64()),
    ("PULocationID", pa.int32()),
    ("DOLocationID", pa.int32()),
    ("passenger_count", pa.int64()),
    ("trip_distance", pa.float64()),
    ("fare_amount", pa.float64()),
    ("extra", pa.float64()),
    ("mta_tax", pa.float64()),
    ("tip_amount", pa.float64()),
    ("tolls_amount", pa.float64()),
]

NORMALIZED_SCHEMAS: dict[str, pa.Schema] = {
    "green": pa.schema(
        _COMMON_HEAD
        + [
            ("ehail_fee", pa.float64()),
            ("improvement_surcharge", pa.float64()),
            ("total_amount", pa.float64()),
            ("payment_type", pa.int64()),
            ("trip_type", pa.int64()),
            ("congestion_surcharge", pa.float64()),
        ]
    ),
    "yellow": pa.schema(
        _COMMON_HEAD
        + [
            ("improvement_surcharge", pa.float64()),
            ("total_amount", pa.float64()),
            ("payment_type", pa.int64()),
            ("congestion_surcharge", pa.float64()),
            ("airport_fee", pa.float64()),
        ]
    ),
}

# TLC column name -> normalized name, per taxi type.
SOURCE_RENAMES: dict[str, dict[str, str]] = {
    "green": {"lpep_pickup_datetime": "pickup_datetime", "lpep_dropoff_datetime": "dropoff_datetime"},
    "yellow": {
        "tpep_pickup_datetime": "pickup_datetime",
        "tpep_dropoff_datetime": "dropoff_datetime",
        "Airport_fee": "airport_fee",
    },
}


class SchemaError(ValueError):
    """A month cannot be brought into the normalized schema (missing or unconvertible column)."""


@dataclass
class NormalizationReport:
    """What normalization changed, for the asset's metadata."""

    filled_columns: list[str] = field(default_factory=list)
    dropped_columns: list[str] = field(default_factory=list)
    cast_columns: dict[str, str] = field(default_factory=dict)


def check_taxi_type(taxi_type: str) -> str:
    if taxi_type not in TAXI_TYPES:
        raise ValueError(f"unknown taxi type {taxi_type!r}: expected one of {', '.join(TAXI_TYPES)}")
    return taxi_type


def source_columns(taxi_type: str, columns: list[str] | tuple[str, ...]) -> list[str]:
    """The TLC file's names for normalized ``columns`` (to read only what is needed)."""
    back = {v: k for k, v in SOURCE_RENAMES[check_taxi_type(taxi_type)].items()}
    return [back.get(c, c) for c in columns]


def normalize_table(table: pa.Table, taxi_type: str, label: str) -> tuple[pa.Table, NormalizationReport]:
    """Return ``table`` in the normalized schema of ``taxi_type``.

    ``label`` (the file name or month) is named in every error so the user knows which
    month to look at.
    """
    target = NORMALIZED_SCHEMAS[check_taxi_type(taxi_type)]
    renames = SOURCE_RENAMES[taxi_type]
    table = table.rename_columns([renames.get(n, n) for n in table.column_names])
    report = NormalizationReport()
    missing_required = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing_required:
        expected = ", ".join(source_columns(taxi_type, missing_required))
        raise SchemaError(
            f"{label}: required column(s) missing: {expected}. "
            f"Is this a {taxi_type} taxi file? Columns found: {', '.join(table.column_names)}"
        )
    arrays = []
    for fld in target:
        if fld.name not in table.column_names:
            report.filled_columns.append(fld.name)
            arrays.append(pa.nulls(table.num_rows, type=fld.type))
            continue
        column = table.column(fld.name)
        if column.type != fld.type:
            report.cast_columns[fld.name] = f"{column.type} -> {fld.type}"
            try:
                column = _cast(column, fld.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(
                    f"{label}: column {fld.name!r} of type {column.type} cannot be converted to {fld.type}: {exc}"
                ) from exc
        arrays.append(column)
    report.dropped_columns = [c for c in table.column_names if c not in target.names]
    return pa.Table.from_arrays(arrays, schema=target), report


def _cast(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    """Cast safely; doubles holding whole numbers become ints, fractional ones are an error."""
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(column.type) and column.type.tz is not None:
        column = pc.local_timestamp(column)
    return column.cast(target, safe=True)
