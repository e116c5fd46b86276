"""What starts the pipeline: a newly published TLC month, a monthly fallback schedule, and
declarative automation that carries each change downstream.

- ``new_month_sensor`` probes the data source for the month after the newest one it has seen
  (HTTP HEAD against the TLC address, or file presence in a local folder) and requests
  ``raw_trips`` for each newly published month. Its cursor is that newest month; a source
  error is logged and the cursor kept, so the next tick simply tries again.
- ``monthly_ingestion_schedule`` is the fallback when sensors are off: TLC publishes a month
  roughly two months after it ends (January arrives in mid/late March), so on the 25th of each
  month at 06:00 UTC it requests the month two months back and the one before it, skipping
  months already ingested.
- Every downstream asset carries :func:`retrain_condition`: it is requested when any upstream
  partition it reads was updated (or it is missing), once none of its upstream partitions is
  missing or in progress and every blocking check upstream has passed. Unlike
  ``AutomationCondition.eager()`` it is not limited to the latest month, so backfilling
  ``raw_trips`` for old months also retrains those months.
- ``drift_retraining_sensor`` asks for a fresh training set and models for a month whose
  ``data_drift`` checks warned.
"""

import dagster as dg

from taxi_assets.io.download import DataSourceError
from taxi_assets.partitions import monthly_partitions
from taxi_assets.resources.data_source import TlcDataSource

RAW = dg.AssetKey("raw_trips")

ingest_month_job = dg.define_asset_job(
    "ingest_month",
    selection=[RAW],
    partitions_def=monthly_partitions,
    description="Fetch one TLC month into raw_trips; automation carries it downstream.",
)

# Runs that train models; the queued run coordinator (deploy/dagster.yaml) limits how many run at once.
TRAINING_TAGS = {"taxi/workload": "training"}

# Months probed per tick at most (bootstrapping a deployment whose first months are absent).
MAX_PROBES_PER_TICK = 24


def retrain_condition() -> dg.AutomationCondition:
    return (
        dg.AutomationCondition.eager().without(dg.AutomationCondition.in_latest_time_window())
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label("retrain_on_new_upstream_data")


def months_to_probe(all_months: list[str], cursor: str | None) -> list[str]:
    """Months after ``cursor`` (all of them without a cursor), oldest first, capped."""
    later = [m for m in all_months if cursor is None or m > cursor]
    return later[:MAX_PROBES_PER_TICK]


@dg.sensor(
    job=ingest_month_job,
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests raw_trips for each newly published TLC month (cursor: newest month seen).",
)
def new_month_sensor(context: dg.SensorEvaluationContext, data_source: TlcDataSource):
    all_months = monthly_partitions.get_partition_keys(dynamic_partitions_store=context.instance)
    materialized = context.instance.get_materialized_partitions(RAW)
    cursor = context.cursor or None
    requests, newest = [], cursor
    for month in months_to_probe(all_months, cursor):
        try:
            published = data_source.is_published(month)
        except DataSourceError as exc:
            context.log.warning(f"data source error while probing {month}: {exc}; keeping cursor {cursor}")
            break
        if not published:
            if newest is not None:
                break  # TLC publishes in order: nothing after an unpublished month yet
            continue  # bootstrap: skip months the source never had
        newest = month
        if month not in materialized:
            requests.append(dg.RunRequest(run_key=f"raw_trips:{month}", partition_key=month))
    if newest != cursor and newest is not None:
        context.update_cursor(newest)
    if not requests:
        return dg.SkipReason(f"no newly published month after {newest or 'the first partition'}")
    context.log.info(f"newly published: {', '.join(r.partition_key for r in requests)}")
    return requests


@dg.schedule(
    job=ingest_month_job,
    cron_schedule="0 6 25 * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Fallback: on the 25th, ingest the months published since (two and three months back).",
)
def monthly_ingestion_schedule(context: dg.ScheduleEvaluationContext):
    scheduled = context.scheduled_execution_time
    index = scheduled.year * 12 + scheduled.month - 1
    months = [f"{(index - lag) // 12:04d}-{(index - lag) % 12 + 1:02d}" for lag in (3, 2)]
    valid = set(monthly_partitions.get_partition_keys(current_time=scheduled))
    materialized = context.instance.get_materialized_partitions(RAW)
    return [
        dg.RunRequest(run_key=f"raw_trips:{m}:{scheduled:%Y-%m-%d}", partition_key=m)
        for m in months
        if m in valid and m not in materialized
    ] or dg.SkipReason(f"{' and '.join(months)} already ingested or not partitions")


DRIFT = dg.AssetKey("data_drift")
retrain_month_job = dg.define_asset_job(
    "retrain_month",
    selection=dg.AssetSelection.assets("training_set").downstream() - dg.AssetSelection.assets(DRIFT),
    partitions_def=monthly_partitions,
    description="Rebuild one month's training set and everything downstream of it (models, leaderboard, champion).",
    tags=TRAINING_TAGS,
)


@dg.asset_sensor(
    asset_key=DRIFT,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="When data_drift[M] warns, retrain month M (training set and everything after it).",
    job=retrain_month_job,
)
def drift_retraining_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    month = asset_event.dagster_event.partition
    run_id = asset_event.run_id
    failed = [
        e
        for e in context.instance.event_log_storage.get_logs_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        )
        if e.dagster_event.event_specific_data.asset_key == DRIFT and not e.dagster_event.event_specific_data.passed
    ]
    if not failed:
        return dg.SkipReason(f"data_drift[{month}] passed its checks")
    names = ", ".join(e.dagster_event.event_specific_data.check_name for e in failed)
    return dg.RunRequest(run_key=f"drift-retrain:{month}:{run_id}", partition_key=month, tags={"taxi/reason": f"drift: {names}"})


automation_sensor = dg.AutomationConditionSensorDefinition(
    "taxi_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates every asset's automation condition (on by default so `dagster dev` just works).",
)
