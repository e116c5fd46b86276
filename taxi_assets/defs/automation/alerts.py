"""Alert sensors: failed runs, failed asset checks and stale assets reach a human.

Each alert names the asset, the partition, the run id, the error (or failed check / freshness
state) and links to the run in the Dagster UI. Delivery goes through the ``notifier`` resource
(:class:`~taxi_assets.resources.notifications.AlertNotifier`), which never raises: a broken
mail server is logged in the tick, and cursors still advance, so one outage does not replay
every alert (nor block later ones) once the channel is back.

Where each sensor reads its facts:

* ``run_failure_alert``: Dagster's run-failure sensor machinery hands over the failed run;
  step errors come from its STEP_FAILURE events, asset keys from the run's execution plan.
* ``asset_check_failure_alert``: failed executions of this code location's checks from the
  instance's asset check executions table (index database on every storage), newer than the
  cursor's timestamp; recently alerted execution ids in the cursor prevent repeats.
* ``freshness_alert``: ``FRESHNESS_STATE_CHANGE`` events. Dagster 1.13's freshness daemon (part
  of ``dagster dev`` / ``dagster-daemon run`` unless ``freshness: enabled: false``) evaluates
  every ``FreshnessPolicy`` and records one such event per state change, which is exactly what
  the UI shows; reading them (instead of recomputing freshness here) keeps alert and UI in
  agreement and makes "once per FAIL transition" free.
"""


import json
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import dagster as dg

from taxi_assets.dagster_compat import AssetCheckExecutionRecordStatus
from taxi_assets.defs.resources.notifier import AlertNotifier
from taxi_assets.io.notify import Alert

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

# Records read per query page; freshness changes beyond this wait for the next tick.
EVENTS_PER_TICK = 100
MAX_PAGES_PER_CHECK = 10
# Failed-check window rescanned every tick, for evaluations stored after later-stamped ones.
CHECK_OVERLAP = timedelta(minutes=5)
FAILED = AssetCheckExecutionRecordStatus.FAILED
# With no cursor yet (first tick ever) alert only on what happened this recently, so turning
# the sensor on over a long-lived instance does not replay its whole history.
FIRST_TICK_LOOKBACK = timedelta(hours=1)
_ERROR_MAX = 1500
_METADATA_MAX_ENTRIES = 12
_METADATA_VALUE_MAX = 200


# ----------------------------------------------------------------------------- helpers


def run_partition(tags: Mapping[str, str]) -> str | None:
    """Partition of a run from its tags: one key, or ``start...end`` for a range backfill run."""
    if tags.get(PARTITION_TAG):
        return tags[PARTITION_TAG]
    if tags.get(RANGE_START_TAG) and tags.get(RANGE_END_TAG):
        return f"{tags[RANGE_START_TAG]}...{tags[RANGE_END_TAG]}"
    return None


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _error_text(error: Any) -> str:
    """The user's error, not Dagster's wrapper, with its cause and where it was raised."""
    while error.cause is not None and error.cls_name and error.cls_name.startswith("Dagster"):
        error = error.cause  # DagsterExecutionStepExecutionError etc. only wrap the real error
    text = error.message.strip()
    if error.stack:
        where = error.stack[-1].strip().splitlines()[0]
        text += f"\n  at {where}"
    if error.cause is not None:
        text += f"\n  caused by {error.cause.message.strip()}"
    return _truncate(text, _ERROR_MAX)


def step_failure_text(event: dg.DagsterEvent) -> str:
    """Error of one STEP_FAILURE event: a ``dg.Failure``'s description, else the exception."""
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return _truncate(data.user_failure_data.description.strip(), _ERROR_MAX)
    if data.error is None:
        return event.message or "step failed without an error message"
    return _error_text(data.error)


def _assets_by_step(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dict[str, list[str]]:
    """Step key -> asset keys it materializes, from the run's stored execution plan."""
    if not run.execution_plan_snapshot_id:
        return {}
    snapshot = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    result: dict[str, list[str]] = {}
    for step in snapshot.steps:
        keys = [
            output.properties.asset_key.to_user_string()
            for output in step.outputs
            if output.properties is not None and output.properties.asset_key is not None
        ]
        if keys:
            result[step.key] = keys
    return result


def _metadata_summary(metadata: Mapping[str, Any]) -> str:
    items = list(metadata.items())
    lines = [
        f"  {key}: {_truncate(str(getattr(value, 'value', value)), _METADATA_VALUE_MAX)}"
        for key, value in items[:_METADATA_MAX_ENTRIES]
    ]
    if len(items) > _METADATA_MAX_ENTRIES:
        lines.append(f"  ... and {len(items) - _METADATA_MAX_ENTRIES} more")
    return "\n".join(lines) if lines else "  (none)"


def _monitored_asset_keys(context: dg.SensorEvaluationContext) -> set[dg.AssetKey] | None:
    """Asset keys of this code location, or None (no filter) when the context has no repository."""
    repo = context.repository_def
    return set(repo.asset_graph.get_all_asset_keys()) if repo is not None else None


def _status_line(statuses: Mapping[str, str]) -> str:
    return ", ".join(f"{channel} {status}" for channel, status in statuses.items())


# --------------------------------------------------------------------------- run failures


def run_failure_alert_for(context: dg.RunFailureSensorContext, notifier: AlertNotifier) -> Alert:
    """The alert for one failed run: job, partition, failed steps with their assets and errors."""
    run = context.dagster_run
    instance = context.instance
    failures = context.get_step_failure_events()
    try:
        step_assets = _assets_by_step(instance, run)
    except Exception as exc:  # noqa: BLE001 - the alert matters more than the asset names
        context.log.warning(f"run {run.run_id}: could not read its execution plan: {exc}")
        step_assets = {}

    failed_assets: list[str] = []
    step_lines: list[str] = []
    for event in failures:
        assets = step_assets.get(event.step_key or "", [])
        failed_assets.extend(a for a in assets if a not in failed_assets)
        label = f"{event.step_key} (assets: {', '.join(assets)})" if assets else str(event.step_key)
        step_lines.append(f"- {label}:\n  {step_failure_text(event)}")

    if failures:
        error_block = "Failed steps:\n" + "\n".join(step_lines)
    else:  # the run died outside any step (launch, resources, termination...)
        run_error = getattr(context.failure_event.event_specific_data, "error", None)
        error_block = "Run error:\n" + (
            _error_text(run_error) if run_error is not None else (context.failure_event.message or "")
        )

    selection = sorted(key.to_user_string() for key in (run.asset_selection or ()))
    asset = ", ".join(failed_assets or selection) or run.job_name
    partition = run_partition(run.tags)
    detail = "\n".join(
        [
            f"Job: {run.job_name}",
            f"Partition: {partition or '(unpartitioned)'}",
            error_block,
            f"Run failure: {context.failure_event.message or ''}".rstrip(),
        ]
    )
    first_error = step_failure_text(failures[0]).splitlines()[0] if failures else "run failed"
    return Alert(
        title=f"Run failed in {run.job_name}: {first_error}",
        asset=asset,
        partition=partition,
        run_id=run.run_id,
        detail=detail,
        url=notifier.run_url(run.run_id),
        severity="error",
    )


# The jobs of this code location; runs of other locations sharing the instance are not ours.
OWN_JOBS = frozenset({"taxi_pipeline", "prepare_month", "ingest_month", "retrain_month", "predict"})


def is_own_run(instance: dg.DagsterInstance, run: dg.DagsterRun, asset_keys: set[dg.AssetKey] | None) -> bool:
    """A run of this code location however it was launched: by the daemon, the UI, or a CLI
    (``dagster asset materialize``, ``dg launch``) whose runs carry no code-location origin.
    Without a code location to compare with (a hand-built context) every run counts."""
    if asset_keys is None or run.job_name in OWN_JOBS:
        return True
    selection = set(run.asset_selection or ())
    if not selection:  # a job without an explicit selection: the assets its steps materialize
        try:
            selection = {
                dg.AssetKey.from_user_string(key) for keys in _assets_by_step(instance, run).values() for key in keys
            }
        except Exception:  # noqa: BLE001 - no plan stored: alert rather than stay silent
            return True
    return bool(selection & asset_keys)


@dg.run_failure_sensor(
    name="run_failure_alert",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    # Runs started by `dagster asset materialize` / `dg launch` in the CLI's own process have
    # no code-location origin: a sensor watching only its own location never sees them fail.
    monitor_all_code_locations=True,
    description=(
        "Emails / posts to the webhook when any run of this code location fails, however it was "
        "launched: job, partition, the assets of the failed steps, their errors and a link to the run."
    ),
)
def run_failure_alert(context: dg.RunFailureSensorContext, notifier: AlertNotifier) -> None:
    if not is_own_run(context.instance, context.dagster_run, _monitored_asset_keys(context)):
        context.log.debug(f"run {context.dagster_run.run_id} ({context.dagster_run.job_name}) is not ours: no alert")
        return
    alert = run_failure_alert_for(context, notifier)
    statuses = notifier.send(alert, context.log)
    context.log.info(f"run {alert.run_id} failure alert: {_status_line(statuses)}")


# ---------------------------------------------------------------------------- asset checks


def _check_partition(instance: dg.DagsterInstance, execution: Any, evaluation: Any) -> str | None:
    partition = execution.partition or getattr(evaluation, "partition", None)
    if partition:
        return partition
    if execution.run_id:
        run = instance.get_run_by_id(execution.run_id)
        if run is not None:
            return run_partition(run.tags)
    return None


def check_failure_alert_for(
    instance: dg.DagsterInstance, execution: Any, notifier: AlertNotifier
) -> Alert:
    """The alert for one failed asset check execution (an ``AssetCheckExecutionRecord``)."""
    evaluation = execution.event.dagster_event.event_specific_data
    asset = evaluation.asset_key.to_user_string()
    partition = _check_partition(instance, execution, evaluation)
    severity = evaluation.severity.value.lower()  # "error" or "warn"
    lines = [
        f"Check: {evaluation.check_name}",
        f"Asset: {asset}",
        f"Partition: {partition or '(unpartitioned)'}",
        f"Severity: {evaluation.severity.value}",
        f"Evaluated at: {_utc(execution.event.timestamp)}",
    ]
    if evaluation.description:
        lines.append(f"Description: {evaluation.description}")
    lines += ["Metadata:", _metadata_summary(evaluation.metadata or {})]
    return Alert(
        title=f"Asset check failed: {evaluation.check_name}",
        asset=asset,
        partition=partition,
        run_id=execution.run_id or "(runless)",
        detail="\n".join(lines),
        url=notifier.run_url(execution.run_id)
        if execution.run_id
        else notifier.asset_url(evaluation.asset_key.path),
        severity="warning" if severity == "warn" else severity,
    )


class CheckCursor(NamedTuple):
    """Evaluations up to ``after`` are handled; ``recent`` = alerted execution id -> evaluation
    time for the last ``CHECK_OVERLAP``, which is rescanned so an evaluation stored a little
    after its timestamp (a concurrent run) is still seen, without alerting twice."""

    after: float
    recent: dict[int, float]

    @classmethod
    def parse(cls, raw: str | None, now: float) -> "CheckCursor":
        if not raw:
            return cls(after=now - FIRST_TICK_LOOKBACK.total_seconds(), recent={})
        data = json.loads(raw)
        return cls(after=float(data["after"]), recent={int(k): float(v) for k, v in data["recent"].items()})

    def dump(self) -> str:
        return json.dumps({"after": self.after, "recent": {str(k): v for k, v in self.recent.items()}})


def _failed_check_executions(
    instance: dg.DagsterInstance,
    check_keys: Iterable[dg.AssetCheckKey],
    since: float,
    seen: Mapping[int, float],
) -> list[Any]:
    """Failed evaluations of ``check_keys`` stored with a timestamp after ``since``, oldest first.

    Reads the asset check executions table (``get_asset_check_execution_history``), which lives
    in the index database for every storage. Event-log storage ids would not do: on the default
    SQLite storage (``dagster dev``) they are per-run and cannot be compared across runs.
    """
    storage = instance.event_log_storage
    found = []
    for key in check_keys:
        page_cursor = None
        for _ in range(MAX_PAGES_PER_CHECK):
            page = storage.get_asset_check_execution_history(
                key, limit=EVENTS_PER_TICK, cursor=page_cursor, status={FAILED}
            )
            found += [
                e for e in page if e.event is not None and e.event.timestamp > since and e.id not in seen
            ]
            # Newest first by id: once a page reaches back before ``since`` the rest is older.
            if len(page) < EVENTS_PER_TICK or min(_event_time(e) for e in page) <= since:
                break
            page_cursor = page[-1].id
    return sorted(found, key=_event_time)


def _event_time(execution: Any) -> float:
    return execution.event.timestamp if execution.event is not None else execution.create_timestamp


@dg.sensor(
    name="asset_check_failure_alert",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Emails / posts to the webhook for every failed asset check of this code location: "
        "check, asset, partition, severity, run and the check's metadata."
    ),
)
def asset_check_failure_alert(
    context: dg.SensorEvaluationContext, notifier: AlertNotifier
) -> dg.SensorResult:
    now = time.time()
    cursor = CheckCursor.parse(context.cursor, now)
    repo = context.repository_def
    if repo is None:  # only in hand-built contexts: the daemon always passes the code location
        summary = "no code location in the sensor context: no asset checks to watch"
        context.log.warning(summary)
        return dg.SensorResult(skip_reason=dg.SkipReason(summary), cursor=cursor.dump())
    check_keys = sorted(repo.asset_graph.asset_check_keys, key=lambda k: k.to_user_string())
    since = cursor.after - CHECK_OVERLAP.total_seconds() if context.cursor else cursor.after
    executions = _failed_check_executions(context.instance, check_keys, since, cursor.recent)

    recent = dict(cursor.recent)
    sent: list[str] = []
    for execution in executions:
        alert = check_failure_alert_for(context.instance, execution, notifier)
        statuses = notifier.send(alert, context.log)
        recent[execution.id] = _event_time(execution)  # alerted, even if a channel was down
        sent.append(
            f"{execution.key.name} on {alert.asset}[{alert.partition or '-'}]: {_status_line(statuses)}"
        )
    after = max(now, cursor.after)
    keep_from = after - CHECK_OVERLAP.total_seconds()
    next_cursor = CheckCursor(after=after, recent={i: t for i, t in recent.items() if t > keep_from})
    summary = (
        f"{len(sent)} failed check(s) alerted: " + "; ".join(sent)
        if sent
        else f"no new failed checks among {len(check_keys)} check(s)"
    )
    # The console gets a line when an alert went out; a quiet tick is in the UI's tick history.
    (context.log.info if sent else context.log.debug)(summary)
    return dg.SensorResult(skip_reason=dg.SkipReason(summary), cursor=next_cursor.dump())


# ------------------------------------------------------------------------------ freshness


def _describe_policy(policy: Any) -> str:
    if policy is None:
        return "(policy not in this code location)"
    fail_window = getattr(policy, "fail_window", None)
    if fail_window is not None:
        text = f"time window: FAIL when not materialized for {fail_window.to_timedelta()}"
        warn = getattr(policy, "warn_window", None)
        return text + (f", WARN after {warn.to_timedelta()}" if warn is not None else "")
    cron = getattr(policy, "deadline_cron", None)
    if cron is not None:
        return f"cron: materialized by each '{cron}' ({policy.timezone}) deadline"
    return type(policy).__name__


def freshness_alert_for(
    instance: dg.DagsterInstance,
    change: Any,
    notifier: AlertNotifier,
    repository_def: dg.RepositoryDefinition | None = None,
) -> Alert:
    """The alert for one ``FreshnessStateChange`` to FAIL, with the last materialization."""
    key = change.key
    asset = key.to_user_string()
    latest = instance.get_latest_materialization_event(key)
    run_id = latest.run_id if latest is not None and latest.run_id else None
    partition = latest.dagster_event.partition if latest is not None and latest.dagster_event else None
    policy = None
    if repository_def is not None and repository_def.asset_graph.has(key):
        policy = repository_def.asset_graph.get(key).freshness_policy_or_from_metadata
    lines = [
        f"Freshness state: {change.previous_state.value} -> {change.new_state.value} "
        f"at {_utc(change.state_change_timestamp)}",
        f"Policy: {_describe_policy(policy)}",
    ]
    if latest is not None:
        age = timedelta(seconds=round(change.state_change_timestamp - latest.timestamp))
        lines.append(
            f"Last materialization: {_utc(latest.timestamp)} ({age} before the state changed), "
            f"run {run_id or '(runless)'}, partition {partition or '(unpartitioned)'}"
        )
    else:
        lines.append("Last materialization: none recorded")
    lines.append(f"Asset page: {notifier.asset_url(key.path)}")
    return Alert(
        title="Asset is stale: freshness policy failed",
        asset=asset,
        partition=partition,
        run_id=run_id or "(no run)",
        detail="\n".join(lines),
        url=notifier.run_url(run_id) if run_id else notifier.asset_url(key.path),
        severity="error",
    )


def _change_of(record: Any) -> Any:
    """The ``FreshnessStateChange`` carried by a FRESHNESS_STATE_CHANGE event record."""
    return record.event_log_entry.dagster_event.event_specific_data


def _is_fail(change: Any) -> bool:
    return change.new_state.value == "FAIL"


@dg.sensor(
    name="freshness_alert",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Emails / posts to the webhook once each time an asset's freshness policy turns FAIL "
        "(state changes recorded by Dagster's freshness daemon), with its last materialization."
    ),
)
def freshness_alert(context: dg.SensorEvaluationContext, notifier: AlertNotifier) -> dg.SensorResult:
    instance = context.instance
    if not instance.freshness_enabled:
        context.log.warning(
            "the freshness daemon is disabled on this instance (dagster.yaml freshness: enabled: "
            "false): no freshness states are recorded, so no freshness alerts can be sent"
        )
    event_type = dg.DagsterEventType.FRESHNESS_STATE_CHANGE
    monitored = _monitored_asset_keys(context)
    changes: Iterable[Any]
    if context.cursor is None:
        # First tick: alert on assets failing *now* (latest recorded state), not on history.
        records = instance.event_log_storage.get_event_records(
            dg.EventRecordsFilter(event_type=event_type), ascending=True
        )
        latest_by_key = {change.key: change for change in map(_change_of, records)}
        changes = [c for c in latest_by_key.values() if _is_fail(c)]
        next_cursor = records[-1].storage_id if records else 0
    else:
        records = instance.event_log_storage.get_event_records(
            dg.EventRecordsFilter(event_type=event_type, after_cursor=int(context.cursor)),
            limit=EVENTS_PER_TICK,
            ascending=True,
        )
        changes = [_change_of(r) for r in records]
        next_cursor = records[-1].storage_id if records else int(context.cursor)

    sent: list[str] = []
    recovered: list[str] = []
    for change in changes:
        if monitored is not None and change.key not in monitored:
            continue
        if not _is_fail(change):
            if change.previous_state.value == "FAIL":
                recovered.append(change.key.to_user_string())
            continue
        alert = freshness_alert_for(instance, change, notifier, context.repository_def)
        statuses = notifier.send(alert, context.log)
        sent.append(f"{alert.asset}: {_status_line(statuses)}")
    parts = []
    if sent:
        parts.append(f"{len(sent)} stale asset(s) alerted: " + "; ".join(sent))
    if recovered:
        parts.append("fresh again: " + ", ".join(recovered))
    summary = " | ".join(parts) or "no asset turned stale"
    (context.log.info if parts else context.log.debug)(summary)
    return dg.SensorResult(skip_reason=dg.SkipReason(summary), cursor=str(next_cursor))


alert_sensors = [run_failure_alert, asset_check_failure_alert, freshness_alert]
