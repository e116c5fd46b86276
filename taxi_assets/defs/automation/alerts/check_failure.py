"""``asset_check_failure_alert``: every failed evaluation of this code location's asset checks
reaches a human, once, with check, asset, partition, severity, run and the check's metadata.

Failed executions come from the instance's asset check executions table (in the index
database on every storage), newer than the cursor's timestamp; the execution ids alerted
during the last few minutes stay in the cursor, so a rescanned window never alerts twice."""

import json
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any, NamedTuple

import dagster as dg

from taxi_assets.dagster_compat import AssetCheckExecutionRecordStatus
from taxi_assets.defs.automation.alerts.common import EVENTS_PER_TICK, run_partition, status_line, truncate, utc_text
from taxi_assets.defs.resources.notifier import AlertNotifier
from taxi_assets.io.notify import Alert

MAX_PAGES_PER_CHECK = 10
# Failed-check window rescanned every tick, for evaluations stored after later-stamped ones.
CHECK_OVERLAP = timedelta(minutes=5)
FAILED = AssetCheckExecutionRecordStatus.FAILED
# With no cursor yet (first tick ever) alert only on what happened this recently, so turning
# the sensor on over a long-lived instance does not replay its whole history.
FIRST_TICK_LOOKBACK = timedelta(hours=1)
_METADATA_MAX_ENTRIES = 12
_METADATA_VALUE_MAX = 200


def _metadata_summary(metadata: Mapping[str, Any]) -> str:
    items = list(metadata.items())
    lines = [
        f"  {key}: {truncate(str(getattr(value, 'value', value)), _METADATA_VALUE_MAX)}"
        for key, value in items[:_METADATA_MAX_ENTRIES]
    ]
    if len(items) > _METADATA_MAX_ENTRIES:
        lines.append(f"  ... and {len(items) - _METADATA_MAX_ENTRIES} more")
    return "\n".join(lines) if lines else "  (none)"


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
        f"Evaluated at: {utc_text(execution.event.timestamp)}",
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
            f"{execution.key.name} on {alert.asset}[{alert.partition or '-'}]: {status_line(statuses)}"
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
