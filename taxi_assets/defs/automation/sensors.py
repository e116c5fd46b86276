"""What starts the pipeline: a newly published TLC month, and declarative automation that carries
each change downstream; plus retraining on drift.

- ``new_month_sensor`` (on) probes the data source (HTTP HEAD against the TLC address, or file
  presence in a local folder) and requests ``raw_trips`` for newly published months. Its cursor
  is the newest month seen; a source error is logged and the cursor kept. With no cursor yet it
  requests only the newest ``TAXI_BOOTSTRAP_MONTHS`` (default 3) published months not ingested
  yet, so a source with years of months does not turn ``dagster dev`` into a day of training
  (older months are a backfill away; ``0`` ingests nothing on first start).
- ``taxi_automation`` (on) evaluates every asset's automation condition
  (``defs/automation/conditions.py``) every ``TAXI_AUTOMATION_INTERVAL_SECONDS``.
- ``drift_retraining_sensor`` (off) asks for a fresh training set and models for a month whose
  ``data_drift`` checks warned.
"""

import dagster as dg

from taxi_assets.defs.automation.jobs import RAW, ingest_month_job, retrain_month_job
from taxi_assets.defs.partitions import monthly_partitions
from taxi_assets.defs.resources.data_source import TlcDataSource
from taxi_assets.io.download import DataSourceError
from taxi_assets.settings import SETTINGS

DRIFT = dg.AssetKey("data_drift")

# Months probed per tick at most after the cursor; on the first tick, how far back to look.
MAX_PROBES_PER_TICK = 24
MAX_BOOTSTRAP_PROBES = 120


def months_to_probe(all_months: list[str], cursor: str | None) -> list[str]:
    """Months after ``cursor``, oldest first, capped."""
    return [m for m in all_months if cursor is None or m > cursor][:MAX_PROBES_PER_TICK]


def newest_published(all_months: list[str], is_published, count: int) -> tuple[list[str], str | None]:
    """``(the newest `count` published months oldest first, the newest published month)``.

    Looks back from the newest partition (TLC publishes with a lag, so the newest partitions
    are usually not published yet) at most ``MAX_BOOTSTRAP_PROBES`` months.
    """
    found: list[str] = []
    newest = None
    for month in reversed(all_months[-MAX_BOOTSTRAP_PROBES:]):
        if not is_published(month):
            if newest is not None:
                break  # TLC publishes in order: a gap means older months are absent too
            continue
        newest = newest or month
        if len(found) >= count:  # TAXI_BOOTSTRAP_MONTHS=0: the newest month is found, none ingested
            break
        found.append(month)
    return sorted(found), newest


@dg.sensor(
    job=ingest_month_job,
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Requests raw_trips for each newly published TLC month (cursor: newest month seen). On first start, "
        f"only the newest {SETTINGS.bootstrap_months} published months (TAXI_BOOTSTRAP_MONTHS)."
    ),
)
def new_month_sensor(context: dg.SensorEvaluationContext, data_source: TlcDataSource):
    all_months = monthly_partitions.get_partition_keys()
    materialized = context.instance.get_materialized_partitions(RAW)
    cursor = context.cursor or None
    try:
        if cursor is None:
            wanted, newest = newest_published(all_months, data_source.is_published, SETTINGS.bootstrap_months)
            if newest is None:
                return dg.SkipReason(f"no published month found at {data_source.base}")
            context.log.info(
                f"first start: newest published month {newest}; ingesting the newest "
                f"{SETTINGS.bootstrap_months} (TAXI_BOOTSTRAP_MONTHS): {', '.join(wanted) or 'none'}"
            )
        else:
            wanted, newest = [], cursor
            for month in months_to_probe(all_months, cursor):
                if not data_source.is_published(month):
                    break  # TLC publishes in order: nothing after an unpublished month yet
                wanted.append(month)
                newest = month
    except DataSourceError as exc:
        context.log.warning(f"data source error while probing: {exc}; keeping cursor {cursor}")
        return dg.SkipReason(f"data source error: {exc}")
    if newest is not None and newest != cursor:
        context.update_cursor(newest)
    requests = [dg.RunRequest(run_key=f"raw_trips:{m}", partition_key=m) for m in wanted if m not in materialized]
    if not requests:
        return dg.SkipReason(f"no newly published month after {newest or 'the first partition'}")
    context.log.info(f"requesting raw_trips for {', '.join(r.partition_key for r in requests)}")
    return requests


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
    minimum_interval_seconds=SETTINGS.automation_interval_seconds,
    use_user_code_server=True,
    description=(
        "Evaluates every asset's automation condition (on by default so `dagster dev` just works): each "
        "month flows downstream once its inputs are complete; months that cannot succeed are never requested."
    ),
)
