"""Ingestion: one TLC month, fetched, validated and normalized into ``raw_trips[M]``."""


import tempfile
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from taxi_assets.assets.profiles import profile_metadata
from taxi_assets.checks.data_checks import check_pickups_in_month, check_schema, raw_trips_check_specs
from taxi_assets.io.download import DataSourceError, DownloadError
from taxi_assets.ml.schema import SchemaError, normalize_table
from taxi_assets.partitions import NETWORK_RETRY, ONE_MONTH_PER_RUN, monthly_partitions
from taxi_assets.resources.data_source import TlcDataSource

PREVIEW_COLUMNS = ["pickup_datetime", "dropoff_datetime", "PULocationID", "DOLocationID", "trip_distance", "total_amount"]


def month_bounds(month: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(f"{month}-01")
    return start, start + pd.offsets.MonthBegin(1)


def read_month(path: Path, taxi_type: str, label: str) -> tuple[pa.Table, object]:
    """Read a fetched file and bring it into the normalized schema (errors name ``label``)."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SchemaError(f"{label}: the file is not readable parquet ({exc}); nothing was replaced") from exc
    return normalize_table(table, taxi_type, label)


@dg.asset(
    partitions_def=monthly_partitions,
    group_name="ingestion",
    kinds={"parquet"},
    check_specs=raw_trips_check_specs,
    retry_policy=NETWORK_RETRY,
    backfill_policy=ONE_MONTH_PER_RUN,
    description=(
        "One month of TLC trip records as published, normalized to the project's schema "
        "(see taxi_assets/ml/schema.py) so any set of months concatenates. The month is "
        "downloaded (or read from a local folder), validated as parquet and checked for the "
        "required columns before it replaces anything."
    ),
)
def raw_trips(context: dg.AssetExecutionContext, data_source: TlcDataSource):
    month = context.partition_key
    file_name = data_source.file_name(month)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="taxi-fetch-") as tmp:
        try:
            fetched = data_source.fetch(month, Path(tmp), log=context.log.info)
            table, report = read_month(fetched.path, data_source.taxi_type, file_name)
        except DownloadError as exc:
            # Transient network trouble: let the retry policy try again later.
            raise dg.Failure(description=str(exc), allow_retries=True) from exc
        except (DataSourceError, SchemaError) as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
    if table.num_rows == 0:
        raise dg.Failure(
            description=f"{file_name} holds no rides: the month was not stored and the previous raw_trips[{month}] is kept",
            allow_retries=False,
        )
    pickups = table.column("pickup_datetime")
    preview = table.select([c for c in PREVIEW_COLUMNS if c in table.column_names]).slice(0, 5).to_pandas()
    context.log.info(f"{file_name}: {table.num_rows:,} rides, {fetched.num_bytes:,} bytes in {time.perf_counter() - started:.2f}s")
    start, end = month_bounds(month)
    checks = [check_schema(table, data_source.taxi_type), check_pickups_in_month(pickups.to_pandas(), start, end)]
    failed = [c for c in checks if not c.passed]
    if failed:
        # A readable file that is not this month's (or not our schema) must not replace a good
        # month: record the failed checks, then fail the step before anything is written.
        yield from checks
        details = "; ".join(f"{c.check_name}: {dict((k, getattr(v, 'value', v)) for k, v in c.metadata.items())}" for c in failed)
        raise dg.Failure(
            description=f"{file_name} failed validation for {month} ({details}); nothing was replaced",
            allow_retries=False,
        )
    yield dg.Output(
        table,
        metadata={
            "rows": table.num_rows,
            "columns": table.num_columns,
            "taxi_type": data_source.taxi_type,
            "source": fetched.source,
            "bytes": fetched.num_bytes,
            "sha256": fetched.sha256,
            "pickup_min": str(pc.min(pickups).as_py()),
            "pickup_max": str(pc.max(pickups).as_py()),
            "cast_columns": ", ".join(f"{k} ({v})" for k, v in report.cast_columns.items()) or "none",
            "filled_columns": ", ".join(report.filled_columns) or "none",
            "dropped_columns": ", ".join(report.dropped_columns) or "none",
            "preview": dg.MetadataValue.md(preview.to_markdown(index=False)),
            **profile_metadata(
                table.to_pandas(), "raw_trips", month, "pickup_datetime", {"trip_distance": "miles"}
            ),
        },
    )
    yield from checks
