"""Monthly partitions keyed like the TLC file names (``2024-01``), shared by every asset."""

from __future__ import annotations

import dagster as dg

from taxi_assets.settings import SETTINGS

monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=SETTINGS.start_month, fmt="%Y-%m")


def previous_months(month: str, count: int) -> list[str]:
    """The ``count`` month keys before ``month``, oldest first (``2024-02``, 1 -> ``[2024-01]``)."""
    year, mon = (int(p) for p in month.split("-"))
    index = year * 12 + (mon - 1)
    return [f"{(i) // 12:04d}-{(i) % 12 + 1:02d}" for i in range(index - count, index)]


def training_window_mapping() -> dg.TimeWindowPartitionMapping:
    """Month M reads the ``TAXI_TRAIN_MONTHS`` months before it and M itself.

    Months before the first partition are allowed here and reported by the asset, which can
    name them (``training_set[2023-01] needs cleaned_trips for 2022-12...``).
    """
    return dg.TimeWindowPartitionMapping(
        start_offset=-SETTINGS.train_months, end_offset=0, allow_nonexistent_upstream_partitions=True
    )


# Backfills run one month per run: every asset computes one month (``context.partition_key``),
# a failed month retries alone, and the run queue (deploy/dagster.yaml) decides how many months
# run side by side.
ONE_MONTH_PER_RUN = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)

# Steps that talk to a server (TLC, the MLflow tracking server) retry transient failures;
# permanent ones raise ``dg.Failure(allow_retries=False)`` and fail at once.
NETWORK_RETRY = dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL)
