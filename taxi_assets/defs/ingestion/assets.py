"""Ingestion: one TLC month, fetched, validated and normalized into ``raw_trips[M]``."""

import tempfile
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxi_assets.defs.checks import combine, gate
from taxi_assets.defs.ingestion.checks import check_pickups_in_month, check_schema, raw_trips_check_specs
from taxi_assets.defs.metadata import frame_table, profile_metadata
from taxi_assets.defs.partitions import DATA_TEAM, month_bounds, monthly_asset, months_of, retry_transient
from taxi_assets.defs.resources.data_source import TlcDataSource
from taxi_assets.io.download import DataSourceError, DownloadError
from taxi_assets.ml.cleaning import duplicate_rows, voided_reversals
from taxi_assets.ml.schema import SchemaError, normalize_table

PREVIEW_COLUMNS = ["pickup_datetime", "dropoff_datetime", "PULocationID", "DOLocationID", "trip_distance", "total_amount"]


def read_month(path: Path, taxi_type: str, label: str):
    """Read a fetched file and bring it into the normalized schema (errors name ``label``)."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SchemaError(f"{label}: the file is not readable parquet ({type(exc).__name__}); nothing was replaced") from None
    return normalize_table(table, taxi_type, label)


def fetch_month(context: dg.AssetExecutionContext, data_source: TlcDataSource, month: str):
    """``(table, fetched, report)`` for ``month``. A transient source error (HTTP 5xx/429, a
    connection refused or broken, a timeout: ``DownloadError``) retries the step
    (``retry_transient``, the one retry layer); any other one fails it at once."""
    file_name = data_source.file_name(month)
    try:
        scratch = tempfile.TemporaryDirectory(prefix="taxi-fetch-")
    except OSError as exc:
        raise dg.Failure(
            description=f"raw_trips[{month}]: cannot create a temporary folder in {tempfile.gettempdir()}: "
            f"{exc.strerror or type(exc).__name__}; nothing was replaced",
            allow_retries=False,
        ) from None
    with scratch as tmp:
        try:
            fetched = data_source.fetch(month, Path(tmp), log=context.log.info)
            table, report = read_month(fetched.path, data_source.taxi_type, file_name)
        except DownloadError as exc:
            retry_transient(context, f"raw_trips[{month}]: {exc}")
        except (DataSourceError, SchemaError) as exc:
            raise dg.Failure(description=f"raw_trips[{month}]: {exc}", allow_retries=False) from None
    if table.num_rows == 0:
        raise dg.Failure(
            description=f"raw_trips[{month}]: {file_name} holds no rides: nothing was written, the previous raw_trips[{month}] is kept",
            allow_retries=False,
        )
    return table, fetched, report


@dg.asset(
    **monthly_asset("ingestion", DATA_TEAM, {"parquet"}),
    check_specs=raw_trips_check_specs,
    description=(
        "One month of TLC trip records as published, normalized to the project's schema "
        "(see taxi_assets/ml/schema.py) so any set of months concatenates. The month is "
        "downloaded (or read from a local folder), validated as parquet and checked for the "
        "required columns and its own month before it replaces anything."
    ),
)
def raw_trips(context: dg.AssetExecutionContext, data_source: TlcDataSource):
    tables, checks = {}, {}
    for month in months_of(context):
        started = time.perf_counter()
        table, fetched, report = fetch_month(context, data_source, month)
        context.log.info(
            f"raw_trips[{month}]: {table.num_rows:,} rides from {data_source.file_name(month)}, "
            f"{fetched.num_bytes:,} bytes in {time.perf_counter() - started:.2f}s"
        )
        start, end = month_bounds(month)
        pickups = table.column("pickup_datetime")
        checks[month] = [check_schema(table, data_source.taxi_type), check_pickups_in_month(pickups.to_pandas(), start, end)]
        tables[month] = (table, fetched, report)
    yield from gate("raw_trips", checks)
    for month, (table, fetched, report) in tables.items():
        pickups = table.column("pickup_datetime")
        preview = table.select([c for c in PREVIEW_COLUMNS if c in table.column_names]).slice(0, 5).to_pandas()
        frame = table.to_pandas()
        context.add_asset_metadata(
            {
                "taxi_type": data_source.taxi_type,
                "source": fetched.source,
                "bytes": fetched.num_bytes,
                "sha256": fetched.sha256,
                "pickup_min": str(pc.min(pickups).as_py()),
                "pickup_max": str(pc.max(pickups).as_py()),
                "cast_columns": ", ".join(f"{k} ({v})" for k, v in report.cast_columns.items()) or "none",
                "filled_columns": ", ".join(report.filled_columns) or "none",
                "dropped_columns": ", ".join(report.dropped_columns) or "none",
                "preview": frame_table(preview),
                # Beside the profile: rides the month holds twice (cleaned_trips drops and judges them).
                "duplicate_rows": int(duplicate_rows(frame).sum()),
                "voided_pairs": int(voided_reversals(frame).sum()),
                **profile_metadata(frame, "raw_trips", month, "pickup_datetime", {"trip_distance": "miles"}),
            },
            partition_key=month,
        )
    yield dg.Output({month: table for month, (table, _, _) in tables.items()})
    yield from combine(checks).values()
