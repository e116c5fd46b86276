"""Ingestion and preparation assets materialized through Dagster on the real TLC months,
plus every bad-input case: each fails with one message naming the month/file and leaves
earlier good outputs byte-for-byte intact."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from taxi_assets.defs.ingestion.assets import raw_trips
from taxi_assets.defs.preparation.assets import cleaned_trips, training_set
from taxi_assets.defs.resources.data_source import TlcDataSource
from taxi_assets_tests.tlc_server import TLCServer

ASSETS = [raw_trips, cleaned_trips, training_set]
RAW = dg.AssetKey("raw_trips")


def materialize(keys, partition, resources, instance, run_config=None, raise_on_error=True):
    return dg.materialize(
        ASSETS,
        selection=keys,
        partition_key=partition,
        resources=resources,
        instance=instance,
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


def meta(result, key: str) -> dict:
    (mat,) = [m for m in result.asset_materializations_for_node(key)]
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def failure_message(result) -> str:
    events = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert events, "expected a failed step"
    data = events[0].step_failure_data
    messages = [data.user_failure_data.description] if data.user_failure_data and data.user_failure_data.description else []
    error = data.error
    while error is not None:  # a failed input load wraps the IO manager's message as the cause
        messages.append(error.message)
        error = error.cause
    return "\n".join(messages)


@pytest.fixture
def reference_outputs(resources, instance):
    for month in ("2024-01", "2024-02"):
        materialize(["raw_trips", "cleaned_trips"], month, resources, instance)
    return materialize(["training_set"], "2024-02", resources, instance)


def test_reference_window_through_dagster(reference_outputs, resources, instance, io_manager):
    result = reference_outputs
    ts_meta = meta(result, "training_set")
    assert ts_meta["train_rows"] == 54_378
    assert ts_meta["validation_rows"] == 51_492
    assert ts_meta["num_features"] == 5_094
    assert ts_meta["window_rows"] == 105_870 and ts_meta["window_features"] == 7_027
    assert ts_meta["train_months"] == "2024-01"
    assert checks(result) == {"consistent_shapes": True}
    ts = io_manager.load(dg.AssetKey("training_set"), "2024-02")
    assert ts.X_train.shape == (54_378, 5_094) and ts.X_val.shape == (51_492, 5_094)
    stored = pq.read_table(io_manager.path_for(RAW, "2024-01"))
    assert stored.num_rows == 56_551 and stored.schema.field("PULocationID").type == pa.int32()


def test_raw_and_cleaned_metadata(resources, instance, shared_data):
    result = materialize(["raw_trips", "cleaned_trips"], "2024-01", resources, instance)
    raw = meta(result, "raw_trips")
    assert raw["dagster/row_count"] == 56_551
    assert len(raw["dagster/column_schema"].columns) == 20
    assert raw["dagster/column_schema"].columns[5].name == "PULocationID"
    assert raw["sha256"] == sha(shared_data / "green_tripdata_2024-01.parquet")
    assert raw["bytes"] == (shared_data / "green_tripdata_2024-01.parquet").stat().st_size
    assert raw["pickup_min"] == "2023-12-31 14:38:47" and raw["pickup_max"] == "2024-01-31 23:57:29"
    assert len(raw["preview"].records) == 5 and "PULocationID" in raw["preview"].records[0].data
    profile = {r.data["column"]: r.data for r in raw["profile"].records}
    assert len(profile) == 20  # one row per normalized column
    assert profile["ehail_fee"]["missing"] == 56_551  # every ehail_fee is missing
    assert profile["trip_distance"]["max"] == "201421.68"
    assert raw["duplicate_rows"] == 0 and raw["voided_pairs"] == 181
    for name in ("pickups_per_day", "trip_distance_histogram"):
        assert raw[name].startswith("![raw_trips 2024-01 ") and "data:image/png;base64," in raw[name]
        png = Path(raw["report_dir"]) / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cleaned = meta(result, "cleaned_trips")
    assert (Path(cleaned["report_dir"]) / "duration_histogram.png").stat().st_size > 1000
    assert cleaned["rows_in"] == 56_551 and cleaned["rows_out"] == 54_373
    assert cleaned["dropped_duration_below_min"] == 1_620 and cleaned["dropped_duration_above_max"] == 558
    assert 1 <= cleaned["duration_p50"] <= 60 and cleaned["duration_max"] <= 60
    assert cleaned["dagster/row_count"] == 54_373
    assert cleaned["impossible_distance_over_100_miles"] == 42 and cleaned["dropped_invalid_zone_id"] == 0
    assert cleaned["dropped_duplicate_rows"] == 0 and cleaned["duplicate_share"] == 0
    assert cleaned["voided_pairs"] == 181 and cleaned["voided_reversals_kept"] == 73
    assert "dropped_voided_reversal" not in cleaned
    assert checks(result) == {
        "schema_matches": True, "pickups_in_month": True, "has_rides": True, "duration_within_bounds": True,
        "distances_plausible": True, "no_duplicate_rides": True,
    }
    config = {"ops": {"cleaned_trips": {"config": {"drop_voided_rides": True}}}}
    dropped = meta(materialize(["cleaned_trips"], "2024-01", resources, instance, run_config=config), "cleaned_trips")
    assert dropped["dropped_voided_reversal"] == 73 and dropped["voided_reversals_kept"] == 0
    assert dropped["rows_out"] == 54_373 - 73 and dropped["voided_pairs"] == 181


def test_cleaning_bounds_are_run_config(resources, instance):
    materialize(["raw_trips"], "2024-01", resources, instance)
    config = {"ops": {"cleaned_trips": {"config": {"min_duration_minutes": 2.0, "max_duration_minutes": 30.0}}}}
    result = materialize(["cleaned_trips"], "2024-01", resources, instance, run_config=config)
    cleaned = meta(result, "cleaned_trips")
    assert cleaned["duration_max"] <= 30 and cleaned["rows_out"] < 54_373
    bad = {"ops": {"cleaned_trips": {"config": {"min_duration_minutes": 50.0, "max_duration_minutes": 5.0}}}}
    result = materialize(["cleaned_trips"], "2024-01", resources, instance, run_config=bad, raise_on_error=False)
    assert not result.success
    assert "cleaned_trips[2024-01]: invalid config min_duration_minutes=50.0, max_duration_minutes=5.0" in failure_message(result)


def _source_with(tmp_path, shared_data, month_file, content=None, table=None):
    folder = tmp_path / "source"
    folder.mkdir(exist_ok=True)
    target = folder / month_file
    if content is not None:
        target.write_bytes(content)
    elif table is not None:
        pq.write_table(table, target)
    else:
        shutil.copy(shared_data / month_file, target)
    return folder


@pytest.mark.parametrize(
    "case, expected",
    [
        ("truncated", "green_tripdata_2024-01.parquet"),
        ("html", "not a parquet file"),
        ("missing_column", "green_tripdata_2024-01.parquet: required column(s) missing: trip_distance"),
        ("empty", "green_tripdata_2024-01.parquet holds no rides"),
    ],
)
def test_bad_month_is_rejected_and_previous_output_survives(case, expected, resources, instance, io_manager, tmp_path, shared_data):
    materialize(["raw_trips"], "2024-01", resources, instance)
    good = io_manager.path_for(RAW, "2024-01")
    before = sha(good)
    name = "green_tripdata_2024-01.parquet"
    real = pq.read_table(shared_data / name)
    if case == "truncated":
        folder = _source_with(tmp_path, shared_data, name, content=(shared_data / name).read_bytes()[:500_000])
    elif case == "html":
        folder = _source_with(tmp_path, shared_data, name, content=b"<!DOCTYPE html><html>moved</html>")
    elif case == "missing_column":
        folder = _source_with(tmp_path, shared_data, name, table=real.drop_columns(["trip_distance"]))
    else:
        folder = _source_with(tmp_path, shared_data, name, table=real.slice(0, 0))
    bad_resources = dict(resources, data_source=TlcDataSource(base=str(folder)))
    result = materialize(["raw_trips"], "2024-01", bad_resources, instance, raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert expected in message
    assert "2024-01" in message
    assert sha(good) == before
    assert sorted(p.name for p in good.parent.iterdir()) == ["2024-01.parquet"]


def test_schema_drift_month_is_normalized(resources, instance, io_manager, tmp_path, shared_data):
    name = "green_tripdata_2024-01.parquet"
    real = pq.read_table(shared_data / name)
    drifted = real.set_column(
        real.column_names.index("PULocationID"), "PULocationID", real.column("PULocationID").cast(pa.int64())
    ).set_column(real.column_names.index("ehail_fee"), "ehail_fee", pa.nulls(real.num_rows, pa.null()))
    folder = _source_with(tmp_path, shared_data, name, table=drifted)
    result = materialize(["raw_trips"], "2024-01", dict(resources, data_source=TlcDataSource(base=str(folder))), instance)
    raw = meta(result, "raw_trips")
    assert "PULocationID (int64 -> int32)" in raw["cast_columns"] and "ehail_fee (null -> double)" in raw["cast_columns"]
    assert checks(result)["schema_matches"] is True
    assert pq.read_schema(io_manager.path_for(RAW, "2024-01")).field("PULocationID").type == pa.int32()


def test_wrong_month_file_fails_the_blocking_check(resources, instance, io_manager, tmp_path, shared_data):
    # The 2023-12 file served under the 2024-01 name: readable, but the wrong month.
    folder = _source_with(tmp_path, shared_data, "green_tripdata_2024-01.parquet",
                          content=(shared_data / "green_tripdata_2023-12.parquet").read_bytes())
    res = dict(resources, data_source=TlcDataSource(base=str(folder)))
    materialize(["raw_trips"], "2024-01", resources, instance)
    good = io_manager.path_for(RAW, "2024-01")
    before = sha(good)
    result = materialize(["raw_trips", "cleaned_trips"], "2024-01", res, instance, raise_on_error=False)
    assert checks(result)["pickups_in_month"] is False
    message = failure_message(result)
    assert "raw_trips[2024-01] failed blocking check pickups_in_month (share_inside=0.0" in message
    assert "nothing was written, the previous raw_trips[2024-01] is kept" in message
    assert result.asset_materializations_for_node("raw_trips") == []
    assert result.asset_materializations_for_node("cleaned_trips") == []
    assert sha(good) == before


def test_missing_month_names_the_file(resources, instance):
    result = materialize(["raw_trips"], "2023-01", resources, instance, raise_on_error=False)
    assert not result.success
    assert "raw_trips[2023-01]: green_tripdata_2023-01.parquet is not published yet" in failure_message(result)


def test_training_set_needs_its_window(resources, instance):
    materialize(["raw_trips", "cleaned_trips"], "2024-02", resources, instance)
    result = materialize(["training_set"], "2024-02", resources, instance, raise_on_error=False)
    assert "cleaned_trips[2024-01] has not been materialized" in failure_message(result)
    result = materialize(["training_set"], "2023-01", resources, instance, raise_on_error=False)
    assert not result.success


@pytest.fixture
def tlc_server():
    server = TLCServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.httpd.shutdown()
        server.httpd.server_close()


def retry_warnings(instance, result) -> list[str]:
    return [e.user_message for e in instance.all_logs(result.run_id) if e.level == logging.WARNING and "retrying in" in e.user_message]


def test_http_source_end_to_end(resources, instance, shared_data, tlc_server):
    """500 on the first request, then the file: the step's one retry fetches it."""
    http = TlcDataSource(base=f"{tlc_server.base}/flaky")
    result = materialize(["raw_trips"], "2024-02", dict(resources, data_source=http), instance)
    raw = meta(result, "raw_trips")
    url = f"{tlc_server.base}/flaky/green_tripdata_2024-02.parquet"
    assert raw["source"] == url
    assert raw["sha256"] == sha(shared_data / "green_tripdata_2024-02.parquet")
    assert tlc_server.count("/flaky/green_tripdata_2024-02.parquet") == 2
    assert retry_warnings(instance, result) == [
        f"raw_trips[2024-02]: could not download green_tripdata_2024-02.parquet from {url}: HTTP 500; "
        "retrying in 1s (retry 1 of 2)"
    ]


JAN_FILE = "green_tripdata_2024-01.parquet"


@pytest.mark.parametrize(
    "route, month, attempts, failure",
    [  # transient: retried TAXI_MAX_RETRIES (2) times, then the last attempt's error
        ("always/503", "2024-01", 3, f"could not download {JAN_FILE} from {{url}}: HTTP 503"),
        ("hang/0", "2024-01", 3, f"could not download {JAN_FILE} from {{url}}: timed out: no data for 0.5 s after 0 of {{size:,}} bytes"),
        # permanent: one attempt
        ("tlc", "2024-06", 1, "green_tripdata_2024-06.parquet is not published yet at {url} (HTTP 404); TLC publishes months with a ~2 month lag"),
        ("html", "2024-01", 1, f"{JAN_FILE} from {{url}} is corrupt: not a parquet file (no 'PAR1' magic bytes at the start; 54 bytes, looks like HTML)"),
    ],
)
def test_raw_trips_retries_transient_source_errors_only(route, month, attempts, failure, resources, instance, tlc_server, shared_data):
    """A real Dagster run of raw_trips against a local HTTP server: the step is retried for a
    5xx and a source that hangs, never for a month that is not published or a corrupt file."""
    source = TlcDataSource(base=f"{tlc_server.base}/{route}", timeout_seconds=0.5)
    result = materialize(["raw_trips"], month, dict(resources, data_source=source), instance, raise_on_error=False)
    path = f"/{route}/green_tripdata_{month}.parquet"
    described = f"raw_trips[{month}]: " + failure.format(url=tlc_server.base + path, size=(shared_data / JAN_FILE).stat().st_size)
    assert not result.success
    assert tlc_server.count(path) == attempts
    assert [e.event_type_value for e in result.all_events if e.event_type_value.startswith("STEP_")] == (
        ["STEP_START", "STEP_UP_FOR_RETRY", "STEP_RESTARTED", "STEP_UP_FOR_RETRY", "STEP_RESTARTED", "STEP_FAILURE"]
        if attempts == 3 else ["STEP_START", "STEP_FAILURE"]
    )  # fmt: skip
    assert failure_message(result).splitlines()[0] == described
    assert retry_warnings(instance, result) == [
        f"{described}; retrying in {delay}s (retry {n} of 2)" for n, delay in ((1, 1), (2, 2))
    ][: attempts - 1]
    assert "<html" not in failure_message(result).lower()  # never the file's bytes
    assert result.asset_materializations_for_node("raw_trips") == []


def test_full_data_root_fails_at_once_naming_the_path(resources, instance, tmp_path):
    """Before: ``OSError: [Errno 28] No space left on device`` without the path, retried for
    3.5 minutes. Now one permanent failure naming the folder; the earlier month is intact and
    no partial file is left."""
    import time

    from taxi_assets.defs.resources.io_manager import TaxiIOManager
    from taxi_assets_tests.helpers import mounted_tmpfs

    with mounted_tmpfs(tmp_path / "small", "size=1600k") as small:
        io = TaxiIOManager(data_root=str(small))
        res = dict(resources, io_manager=io)
        assert materialize(["raw_trips"], "2024-02", res, instance).success  # 1.28 MB: fits
        good = io.path_for(RAW, "2024-02")
        before = sha(good)
        started = time.monotonic()
        result = materialize(["raw_trips"], "2024-01", res, instance, raise_on_error=False)
        seconds = time.monotonic() - started
        assert not result.success and seconds < 60
        message = failure_message(result)
        assert "raw_trips[2024-01]: cannot write" in message and str(small / "green") in message
        assert "No space left on device" in message
        assert [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"] == []
        assert sha(good) == before
        leftovers = [p.name for p in small.rglob("*") if p.is_file() and p.name.startswith(".tmp-")]
        assert leftovers == []
        assert instance.get_materialized_partitions(RAW) == {"2024-02"}


def _raw_month_with(shared_data, tmp_path, month: str, change) -> Path:
    """A source folder holding ``month``'s real file after ``change(table) -> table``."""
    name = f"green_tripdata_{month}.parquet"
    real = pq.read_table(shared_data / name)
    return _source_with(tmp_path, shared_data, name, table=change(real))


@pytest.mark.parametrize(
    "case, check",
    [
        ("dropoffs_before_pickups", "has_rides"),
        ("huge_distances", "distances_plausible"),
        ("appended_to_itself", "no_duplicate_rides"),
    ],
)
def test_cleaned_trips_blocking_checks_judge_before_writing(case, check, resources, instance, io_manager, tmp_path, shared_data):
    """Before: a month where every dropoff precedes its pickup wrote a 0-row file over the good
    54,373-row cleaned_trips[2024-01] and recorded the materialization, and only then failed
    ("1 blocking asset check failed ...: cleaned_trips: has_rides"). Now the check is judged
    first: the previous file stays byte-identical and no materialization is recorded."""
    CLEANED = dg.AssetKey("cleaned_trips")
    materialize(["raw_trips", "cleaned_trips"], "2024-01", resources, instance)
    good = io_manager.path_for(CLEANED, "2024-01")
    before = sha(good)
    count = len(instance.fetch_materializations(CLEANED, limit=10).records)

    def change(table: pa.Table) -> pa.Table:
        if case == "appended_to_itself":  # before: "kept 108,746 of 113,102", the month weighed double
            return pa.concat_tables([table, table])
        if case == "dropoffs_before_pickups":
            pickup = table.column("lpep_pickup_datetime")
            earlier = pa.compute.subtract(pickup, pa.scalar(60_000_000, pa.duration("us")))
            return table.set_column(table.column_names.index("lpep_dropoff_datetime"), "lpep_dropoff_datetime", earlier)
        distance = table.column("trip_distance").to_numpy().copy()
        distance[:: 50] = 1e9  # 2% of the rides
        return table.set_column(table.column_names.index("trip_distance"), "trip_distance", pa.array(distance))

    folder = _raw_month_with(shared_data, tmp_path, "2024-01", change)
    bad = dict(resources, data_source=TlcDataSource(base=str(folder)))
    result = materialize(["raw_trips", "cleaned_trips"], "2024-01", bad, instance, raise_on_error=False)
    assert not result.success
    assert checks(result)[check] is False
    message = failure_message(result)
    assert f"cleaned_trips[2024-01] failed blocking check {check}" in message
    assert "nothing was written, the previous cleaned_trips[2024-01] is kept" in message
    assert sha(good) == before
    assert result.asset_materializations_for_node("cleaned_trips") == []
    assert len(instance.fetch_materializations(CLEANED, limit=10).records) == count
    if case == "appended_to_itself":
        assert "no_duplicate_rides (duplicate_share=0.5, threshold=0.01, duplicate_rows=56551)" in message
    if case == "huge_distances":
        assert "impossible_share=0.02" in message and "main_reason=over_100_miles" in message
        # a run-config bound drops them instead, for users who want that
        config = {"ops": {"cleaned_trips": {"config": {"max_trip_distance_miles": 100.0}}}}
        dropped = materialize(["raw_trips", "cleaned_trips"], "2024-01", bad, instance, run_config=config)
        cleaned = meta(dropped, "cleaned_trips")
        assert cleaned["impossible_distance_over_100_miles"] == 0
        assert cleaned["dropped_distance_above_max"] > 1_000  # the 2% and the month's own 42
        assert cleaned["rows_out"] + cleaned["dropped_distance_above_max"] == 54_373


def test_training_set_blocking_check_judges_before_writing(resources, instance, io_manager, tmp_path):
    """A cleaned month that reaches the training set with an infinite duration (written behind
    the pipeline's back) fails consistent_shapes and replaces nothing."""
    for month in ("2024-01", "2024-02"):
        materialize(["raw_trips", "cleaned_trips"], month, resources, instance)
    materialize(["training_set"], "2024-02", resources, instance)
    TS = dg.AssetKey("training_set")
    good = io_manager.path_for(TS, "2024-02")
    before = sha(good)
    CLEANED = dg.AssetKey("cleaned_trips")
    broken = io_manager.load(CLEANED, "2024-02")
    broken.loc[0, "duration"] = float("inf")
    io_manager.write(CLEANED, "2024-02", broken)
    result = materialize(["training_set"], "2024-02", resources, instance, raise_on_error=False)
    assert not result.success
    assert checks(result) == {"consistent_shapes": False}
    message = failure_message(result)
    assert "training_set[2024-02] failed blocking check consistent_shapes (problems=targets contain NaN or infinite values)" in message
    assert sha(good) == before
    assert result.asset_materializations_for_node("training_set") == []


def test_corrupt_stored_input_fails_at_once_naming_asset_month_and_path(resources, instance, io_manager):
    """Before: ``Exceeded max_retries of 2: zipfile.BadZipFile: File is not a zip file`` after
    155 s, naming nothing. A stored output that cannot be read is permanent: one failure naming
    the asset, month and file, without retries."""
    import time

    from taxi_assets.defs.models.assets import model_assets

    for month in ("2024-01", "2024-02"):
        materialize(["raw_trips", "cleaned_trips"], month, resources, instance)
    materialize(["training_set"], "2024-02", resources, instance)
    stored = io_manager.path_for(dg.AssetKey("training_set"), "2024-02")
    stored.write_bytes(stored.read_bytes()[:4096])  # truncated behind the pipeline's back
    linear = next(a for a in model_assets if a.key == dg.AssetKey("linear_regression"))
    started = time.monotonic()
    result = dg.materialize([*ASSETS, linear], selection=["linear_regression"], partition_key="2024-02",
                            resources=resources, instance=instance, raise_on_error=False)  # fmt: skip
    assert not result.success and time.monotonic() - started < 60
    message = failure_message(result)
    assert f"training_set[2024-02]: the stored file {stored} cannot be read (BadZipFile)" in message
    assert "re-materialize it" in message
    assert [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"] == []


@pytest.mark.parametrize("share, passes", [(0.004, True), (0.006, False)])
def test_distances_plausible_is_pinned_at_half_a_percent(share, passes, resources, instance, tmp_path, shared_data):
    """The default max_impossible_distance_share (0.5%) on both sides: a month whose kept rides
    hold 0.4% impossible distances is written, one with 0.6% is refused (real months: ~0.08%)."""
    from taxi_assets.ml import cleaning, schema

    name = "green_tripdata_2024-01.parquet"
    real = pq.read_table(shared_data / name)
    raw = schema.normalize_table(real, "green", name)[0].to_pandas()
    minutes = cleaning.duration_minutes(raw["pickup_datetime"], raw["dropoff_datetime"])
    _, report = cleaning.clean_trips(raw)
    flags = np.logical_or.reduce(list(cleaning.impossible_distances(raw["trip_distance"].to_numpy(), minutes).values()))
    ordinary = np.flatnonzero(raw[cleaning.CLEAN_INPUT_COLUMNS].notna().all(axis=1).to_numpy()
                              & (minutes >= 1) & (minutes <= 60) & ~flags & ~cleaning.duplicate_rows(raw)
                              & ~cleaning.voided_reversals(raw))  # fmt: skip
    wanted = int(np.floor(share * report.rows_out)) if passes else int(np.ceil(share * report.rows_out))
    added = wanted - sum(report.flagged.values())
    assert added > 0
    hit = np.random.default_rng(7).choice(ordinary, size=added, replace=False)
    distance = real.column("trip_distance").to_numpy().copy()
    distance[hit] = 500.0  # over 100 miles
    folder = _source_with(tmp_path, shared_data, name,
                          table=real.set_column(real.column_names.index("trip_distance"), "trip_distance", pa.array(distance)))  # fmt: skip
    source = dict(resources, data_source=TlcDataSource(base=str(folder)))
    result = materialize(["raw_trips", "cleaned_trips"], "2024-01", source, instance, raise_on_error=False)
    assert result.success is passes
    assert checks(result)["distances_plausible"] is passes
    if passes:
        flagged = meta(result, "cleaned_trips")
        assert sum(flagged[f"impossible_distance_{r}"] for r in ("negative", "over_100_miles", "implied_speed_over_100_mph")) == wanted
    else:
        assert f"impossible_share={round(wanted / report.rows_out, 6)}" in failure_message(result)


@pytest.mark.fast
def test_guard_checks_fail_on_what_they_guard_against():
    """schema_matches and duration_within_bounds guard post-conditions of the normalization and
    the cleaning (no real or broken input reaches them failing through those steps): fed a table
    or durations that break them, they fail, naming what is wrong."""
    import pandas as pd

    from taxi_assets.defs.ingestion.checks import check_schema
    from taxi_assets.defs.preparation.checks import check_duration_bounds
    from taxi_assets.ml.schema import NORMALIZED_SCHEMAS

    expected = NORMALIZED_SCHEMAS["green"]
    good = pa.Table.from_pylist([], schema=expected)
    assert check_schema(good, "green").passed
    distance = expected.names.index("trip_distance")
    wrong_type = good.set_column(distance, "trip_distance", pa.array([], pa.string()))
    result = check_schema(wrong_type, "green")
    assert not result.passed and result.metadata["mismatches"].text == "trip_distance: string != double"
    missing = good.remove_column(distance)
    assert check_schema(missing, "green").metadata["mismatches"].text == "trip_distance: missing != double"
    reordered = good.select([*expected.names[1:], expected.names[0]])
    assert not check_schema(reordered, "green").passed  # same columns, another order

    inside = check_duration_bounds(pd.Series([1.0, 30.0, 60.0]), 1.0, 60.0)
    assert inside.passed and inside.metadata["outside_bounds"].value == 0
    outside = check_duration_bounds(pd.Series([0.5, 30.0, 60.5, float("nan")]), 1.0, 60.0)
    assert not outside.passed and outside.metadata["outside_bounds"].value == 3
