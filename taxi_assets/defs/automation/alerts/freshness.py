"""``freshness_alert``: an asset whose freshness policy turns FAIL reaches a human, once per
transition, with its policy and last materialization.

It reads the ``FRESHNESS_STATE_CHANGE`` events that Dagster's freshness daemon (part of ``dagster
dev`` / ``dagster-daemon run`` unless ``freshness: enabled: false``) records for every
``FreshnessPolicy``, exactly what the UI shows, instead of recomputing freshness: alert and UI
agree, and "once per FAIL transition" comes free."""

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import dagster as dg

from taxi_assets.defs.automation.alerts.common import EVENTS_PER_TICK, monitored_asset_keys, status_line, utc_text
from taxi_assets.defs.resources.notifier import AlertNotifier
from taxi_assets.io.notify import Alert


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
        f"at {utc_text(change.state_change_timestamp)}",
        f"Policy: {_describe_policy(policy)}",
    ]
    if latest is not None:
        age = timedelta(seconds=round(change.state_change_timestamp - latest.timestamp))
        lines.append(
            f"Last materialization: {utc_text(latest.timestamp)} ({age} before the state changed), "
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
    monitored = monitored_asset_keys(context)
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
        sent.append(f"{alert.asset}: {status_line(statuses)}")
    parts = []
    if sent:
        parts.append(f"{len(sent)} stale asset(s) alerted: " + "; ".join(sent))
    if recovered:
        parts.append("fresh again: " + ", ".join(recovered))
    summary = " | ".join(parts) or "no asset turned stale"
    (context.log.info if parts else context.log.debug)(summary)
    return dg.SensorResult(skip_reason=dg.SkipReason(summary), cursor=str(next_cursor))
