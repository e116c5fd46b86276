"""``taxi_assets/ml/schema.py``: months whose column types drifted across TLC releases normalize to
one schema and concatenate; a missing required column or a fractional code is one error naming
the file; yellow columns are renamed, and a yellow file read as green says so."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_assets.ml import schema


def drifted_month(shared_data) -> pa.Table:
    """A real month with the dtype drift seen across TLC releases."""
    t = pq.read_table(shared_data / "green_tripdata_2024-01.parquet")
    cols = {}
    for name in t.column_names:
        col = t.column(name)
        if name in ("PULocationID", "DOLocationID", "VendorID"):
            col = col.cast(pa.int64())
        elif name in ("RatecodeID", "payment_type", "trip_type", "passenger_count"):
            col = col.cast(pa.float64())
        elif name == "ehail_fee":
            col = pa.nulls(len(t), pa.null())
        elif name == "store_and_fwd_flag":
            col = col.cast(pa.string())
        elif name.endswith("datetime"):
            col = col.cast(pa.timestamp("ns"))
        cols[name] = col
    return pa.table(cols)


def test_normalize_makes_drifted_months_concatenate(shared_data):
    good = pq.read_table(shared_data / "green_tripdata_2024-02.parquet")
    a, report_a = schema.normalize_table(drifted_month(shared_data), "green", "drifted")
    b, report_b = schema.normalize_table(good, "green", "feb")
    assert a.schema == b.schema == schema.NORMALIZED_SCHEMAS["green"]
    assert report_a.cast_columns["PULocationID"] == "int64 -> int32"
    assert report_a.cast_columns["ehail_fee"] == "null -> double"
    assert report_a.cast_columns["pickup_datetime"] == "timestamp[ns] -> timestamp[us]"
    assert report_b.cast_columns["store_and_fwd_flag"] == "large_string -> string"
    both = pa.concat_tables([a, b])
    assert both.num_rows == 56_551 + 53_577
    jan = pq.read_table(shared_data / "green_tripdata_2024-01.parquet")
    assert a.column("PULocationID").to_pylist() == jan.column("PULocationID").to_pylist()
    assert a.column("pickup_datetime").to_pylist() == jan.column("lpep_pickup_datetime").to_pylist()


def test_normalize_rejects_missing_required_column_naming_the_file(shared_data):
    t = pq.read_table(shared_data / "green_tripdata_2024-01.parquet").drop_columns(["DOLocationID"])
    with pytest.raises(schema.SchemaError, match=r"green_tripdata_2024-01.parquet: required column\(s\) missing: DOLocationID"):
        schema.normalize_table(t, "green", "green_tripdata_2024-01.parquet")


def test_normalize_rejects_fractional_codes():
    t = pa.table(
        {
            "lpep_pickup_datetime": pa.array([pd.Timestamp("2024-01-01")], pa.timestamp("us")),
            "lpep_dropoff_datetime": pa.array([pd.Timestamp("2024-01-01 00:10")], pa.timestamp("us")),
            "PULocationID": [1],
            "DOLocationID": [2],
            "trip_distance": [1.0],
            "payment_type": [1.5],
        }
    )
    with pytest.raises(schema.SchemaError, match=r"m.parquet: column 'payment_type' of type double cannot be converted to int64"):
        schema.normalize_table(t, "green", "m.parquet")
    ok, report = schema.normalize_table(t.set_column(5, "payment_type", pa.array([2.0])), "green", "m.parquet")
    assert ok.column("payment_type").to_pylist() == [2]
    assert "ehail_fee" in report.filled_columns and ok.column("ehail_fee").null_count == 1


def test_yellow_columns_are_renamed():
    t = pa.table(
        {
            "tpep_pickup_datetime": pa.array([pd.Timestamp("2024-01-01")], pa.timestamp("us")),
            "tpep_dropoff_datetime": pa.array([pd.Timestamp("2024-01-01 00:10")], pa.timestamp("us")),
            "PULocationID": [1],
            "DOLocationID": [2],
            "trip_distance": [1.0],
            "Airport_fee": [1.75],
        }
    )
    out, _ = schema.normalize_table(t, "yellow", "y.parquet")
    assert out.schema == schema.NORMALIZED_SCHEMAS["yellow"]
    assert out.column("airport_fee").to_pylist() == [1.75]
    with pytest.raises(schema.SchemaError, match="Is this a green taxi file"):
        schema.normalize_table(t, "green", "y.parquet")
