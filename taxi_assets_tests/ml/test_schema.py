"""The pure ML core (no Dagster): schema, cleaning, features, vectorizer, training set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.feature_extraction import DictVectorizer

from support.data import cleaned_month
from taxi_assets.ml import cleaning, dataset, schema, vectorize
from taxi_assets.ml.features import InvalidRequestError, validate_request


@pytest.fixture(scope="module")
def reference_window() -> pd.DataFrame:
    return pd.concat([cleaned_month("2024-01"), cleaned_month("2024-02")], ignore_index=True)


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


@pytest.mark.fast
def test_clean_trips_counts_each_drop_reason():
    t0 = pd.Timestamp("2024-01-05 10:00")
    raw = pd.DataFrame(
        {
            "pickup_datetime": [t0, t0, t0, t0, t0, None],
            "dropoff_datetime": [t0 + pd.Timedelta(minutes=m) for m in (0.5, 1, 30, 60, 61)] + [t0],
            "PULocationID": np.array([1, 7, 7, 12, 3, 4], dtype=np.int32),
            "DOLocationID": np.array([2, 8, 8, 130, 4, 5], dtype=np.int32),
            "trip_distance": [0.1, 0.5, 9.0, 20.0, 30.0, 1.0],
            "fare_amount": [3.0, 5.0, 30.0, 60.0, 80.0, 7.0],
            "total_amount": [4.0, 6.0, 35.0, 70.0, 90.0, 8.0],
        }
    )
    cleaned, report = cleaning.clean_trips(raw)
    assert report.rows_in == 6 and report.rows_out == 3
    assert report.dropped == {
        "duplicate_rows": 0, "missing_values": 1, "duration_below_min": 1, "duration_above_max": 1, "invalid_zone_id": 0,
    }  # fmt: skip
    assert (report.voided_pairs, report.voided_kept) == (0, 0)
    assert cleaned["duration"].tolist() == [1.0, 30.0, 60.0]
    assert cleaned["PU_DO"].astype(str).tolist() == ["7_8", "7_8", "12_130"]
    assert list(cleaned.columns) == cleaning.CLEANED_COLUMNS
    with pytest.raises(ValueError, match="must not exceed"):
        cleaning.clean_trips(raw, 10, 5)


def test_clean_matches_the_course_on_real_data(shared_data):
    raw = pd.read_parquet(shared_data / "green_tripdata_2024-01.parquet")
    duration = (raw.lpep_dropoff_datetime - raw.lpep_pickup_datetime).apply(lambda td: td.total_seconds() / 60)
    expected = raw[(duration >= 1) & (duration <= 60)]
    ours = cleaned_month("2024-01")
    assert len(ours) == len(expected) == 54_373
    np.testing.assert_allclose(ours["duration"].to_numpy(), duration[expected.index].to_numpy())
    expected_pu_do = (expected.PULocationID.astype(str) + "_" + expected.DOLocationID.astype(str)).tolist()
    assert ours["PU_DO"].astype(str).tolist() == expected_pu_do


def test_vectorizer_equals_dictvectorizer_on_real_data(reference_window):
    frame = reference_window[["PU_DO", "trip_distance"]]
    ref = DictVectorizer()
    expected = ref.fit_transform(frame.astype({"PU_DO": str}).to_dict(orient="records"))
    ours, dv = vectorize.fit_transform(frame)
    assert ours.shape == expected.shape == (105_870, 7_027)
    assert dv.feature_names_ == list(ref.feature_names_)
    assert (ours != expected).nnz == 0
    assert ours.nnz == expected.nnz
    assert ours.indices.dtype == np.int32
    # Still a usable DictVectorizer for list-of-dicts callers.
    rec = [{"PU_DO": "74_75", "trip_distance": 2.5}, {"PU_DO": "never_seen", "trip_distance": 0.0}]
    assert (dv.transform(rec) != ref.transform(rec)).nnz == 0
    assert (vectorize.transform(pd.DataFrame(rec), dv) != ref.transform(rec)).nnz == 0


def test_training_set_reproduces_the_reference_split(reference_window, tmp_path):
    ts = dataset.build_training_set(reference_window, pd.Timestamp("2024-02-01"))
    assert ts.X_train.shape == (54_378, 5_094)
    assert ts.X_val.shape == (51_492, 5_094)
    assert len(ts.y_train) == 54_378 and len(ts.y_val) == 51_492
    path = tmp_path / "ts.npz"
    dataset.save_training_set(ts, path)
    back = dataset.load_training_set(path)
    assert (back.X_train != ts.X_train).nnz == 0 and (back.X_val != ts.X_val).nnz == 0
    np.testing.assert_array_equal(back.y_val, ts.y_val)
    assert back.feature_names == ts.feature_names
    assert back.info["boundary"] == "2024-02-01 00:00:00"
    with pytest.raises(ValueError, match="no validation rides picked up on or after 2024-03-01"):
        dataset.build_training_set(reference_window, pd.Timestamp("2024-03-01"))


@pytest.mark.fast
def test_validate_request_checks_every_field():
    got = validate_request([{"PULocationID": 236, "DOLocationID": 239, "trip_distance": 1.98}])
    pairs = cleaning.pu_do(got["PULocationID"], got["DOLocationID"])
    assert pairs.astype(str).tolist() == ["236_239"] and got["trip_distance"].tolist() == [1.98]
    cases = [
        ([{"PULocationID": 1, "trip_distance": 1}], r"missing field\(s\) DOLocationID"),
        ([{"PULocationID": 1, "DOLocationID": 2, "trip_distance": -1}], "must not be negative, got -1.0 in record 0"),
        ([{"PULocationID": "abc", "DOLocationID": 2, "trip_distance": 1}], "'PULocationID' must be a finite number, got 'abc'"),
        ([{"PULocationID": 1, "DOLocationID": 999, "trip_distance": 1}], "TLC zone id between 1 and 265, got 999"),
        ([], "no records to score"),
    ]
    for records, message in cases:
        with pytest.raises(InvalidRequestError, match=message):
            validate_request(records)


@pytest.mark.fast
def test_requests_come_as_records_one_record_or_columns():
    ride = {"PULocationID": 236, "DOLocationID": 239, "trip_distance": 1.98}
    two = [ride, {"PULocationID": 74.0, "DOLocationID": 75, "trip_distance": 3}]
    columns = {"PULocationID": np.array([236, 74]), "DOLocationID": [239, 75], "trip_distance": (1.98, 3)}
    for request in (two, columns, pd.DataFrame(two)):
        got = validate_request(request)
        assert got["PULocationID"].tolist() == [236, 74] and got["PULocationID"].dtype == np.int64
        assert got["DOLocationID"].tolist() == [239, 75] and got["trip_distance"].tolist() == [1.98, 3.0]
    assert validate_request(ride)["trip_distance"].tolist() == [1.98]
    with pytest.raises(InvalidRequestError, match=r"^the request's fields have different numbers of values \("):
        validate_request(dict(columns, trip_distance=[1.0]))
    for request, kind in (("236,239,1.98", "a string"), (np.zeros((1, 3)), "an array of shape 1x3"), ([236, 239], "a list of numbers")):
        with pytest.raises(InvalidRequestError) as caught:
            validate_request(request)
        assert str(caught.value) == (
            "expected ride records {PULocationID, DOLocationID, trip_distance} "
            f"(a list of objects, one object, or columns of values), got {kind}"
        )
