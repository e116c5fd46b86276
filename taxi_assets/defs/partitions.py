"""Monthly partitions keyed like the TLC file names (``2024-01``), their mappings and the
run policies every asset shares.

A run materializes one month or a range of months (declarative automation and single-run
backfills put a range on the run, even of one month, and then ``context.has_partition_key``
is false): :func:`months_of` is the one way the assets learn which months they compute.
"""

from __future__ import annotations

import warnings

import dagster as dg

from taxi_assets import months
from taxi_assets.settings import SETTINGS

# Beta/preview APIs used on purpose (BackfillPolicy on assets, allow_nonexistent_upstream_partitions,
# map_resolved_asset_specs, the arbitrary-Python automation condition): their warnings would
# repeat on every CLI call and step process without telling the user anything they can act on.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=SETTINGS.start_month, fmt="%Y-%m")

FIRST_TRAINABLE_MONTH = months.add(SETTINGS.start_month, SETTINGS.train_months)
"""The first month whose training window (``TAXI_TRAIN_MONTHS`` months before it) lies inside
the partition set: training sets, models and everything after them start here."""


def months_of(context: dg.AssetExecutionContext) -> list[str]:
    """The months this step materializes, oldest first: one, or every month of a ranged run."""
    return list(context.partition_keys)


def month_window(month: str) -> dg.TimeWindow:
    """``[first instant of month, first instant of the next month)`` from the partitions definition."""
    return monthly_partitions.time_window_for_partition_key(month)


def training_window_mapping() -> dg.TimeWindowPartitionMapping:
    """Month M reads the ``TAXI_TRAIN_MONTHS`` months before it and M itself.

    Months before the first partition are allowed here and reported by the asset, which can
    name them (``training_set[2023-01] needs cleaned_trips for 2022-12...``); automation never
    asks for such months (see ``defs/automation/conditions.py``).
    """
    return dg.TimeWindowPartitionMapping(
        start_offset=-SETTINGS.train_months, end_offset=0, allow_nonexistent_upstream_partitions=True
    )


def previous_month_mapping() -> dg.TimeWindowPartitionMapping:
    """Month M reads month M-1 (the previous month's champion, scored on M by data_drift)."""
    return dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True)


DATA_TEAM = "team:data-engineering"
ML_TEAM = "team:ml"


def monthly_asset(layer: str, owner: str, kinds: set[str]) -> dict:
    """What every asset of the graph shares: monthly partitions, one month per backfill run,
    its layer as group and tag, its owner and kinds (``@dg.asset(**monthly_asset(...), ...)``)."""
    return {
        "partitions_def": monthly_partitions,
        "backfill_policy": ONE_MONTH_PER_RUN,
        "group_name": layer,
        "tags": {"layer": layer},
        "owners": [owner],
        "kinds": kinds,
    }


# One month per run for backfills: a failed month retries alone and the run queue decides how
# many months run side by side. A ranged run (automation, or a job launched with range tags)
# is still handled month by month (see months_of); `dagster asset materialize
# --partition-range` is refused by Dagster before anything runs, as it needs single-run policies.
ONE_MONTH_PER_RUN = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)

def retry_transient(context: dg.AssetExecutionContext, description: str):
    """Fail this attempt for a transient reason (network, timeout, 5xx, a tracking server
    that is down) and ask Dagster to retry the step: at most ``TAXI_MAX_RETRIES`` (2) times,
    after ``TAXI_RETRY_DELAY_SECONDS`` (30) doubled each time. The project's one retry layer
    (the downloader makes one attempt). Only such failures are retried: a permanent error (bad
    file, corrupt stored output, full disk) or a bug fails at once, where a step-wide
    ``RetryPolicy`` would retry every exception but ``Failure(allow_retries=False)``."""
    retries = SETTINGS.max_retries
    delay = SETTINGS.retry_delay_seconds * 2 ** context.retry_number
    if context.retry_number < retries:
        context.log.warning(f"{description}; retrying in {delay:.0f}s (retry {context.retry_number + 1} of {retries})")
    raise dg.RetryRequested(max_retries=retries, seconds_to_wait=delay) from dg.Failure(description=description)


def month_bounds(month: str):
    """``(start, end)`` of ``month`` as naive timestamps (the TLC files' pickup times are naive)."""
    import pandas as pd

    window = month_window(month)
    return pd.Timestamp(window.start).tz_localize(None), pd.Timestamp(window.end).tz_localize(None)
