"""``monthly_ingestion_schedule`` (off by default): the fallback when sensors are not wanted.

TLC publishes a month roughly two months after it ends (January arrives in mid/late March), so
on the 25th of each month at 06:00 UTC it requests the month two months back and the one
before it, skipping months already ingested.
"""

import dagster as dg

from taxi_assets import months
from taxi_assets.defs.automation.jobs import RAW, ingest_month_job
from taxi_assets.defs.partitions import monthly_partitions


@dg.schedule(
    job=ingest_month_job,
    cron_schedule="0 6 25 * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Fallback: on the 25th, ingest the months published since (two and three months back).",
)
def monthly_ingestion_schedule(context: dg.ScheduleEvaluationContext):
    scheduled = context.scheduled_execution_time
    this_month = f"{scheduled.year:04d}-{scheduled.month:02d}"
    wanted = months.previous_months(this_month, 3)[:2]  # three and two months back
    valid = set(monthly_partitions.get_partition_keys(current_time=scheduled))
    materialized = context.instance.get_materialized_partitions(RAW)
    return [
        dg.RunRequest(run_key=f"raw_trips:{m}:{scheduled:%Y-%m-%d}", partition_key=m)
        for m in wanted
        if m in valid and m not in materialized
    ] or dg.SkipReason(f"{' and '.join(wanted)} already ingested or not partitions")
