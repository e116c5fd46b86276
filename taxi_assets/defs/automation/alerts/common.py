"""What the three alert sensors share: a run's partition from its tags, error and time texts,
this code location's assets, and the one-line delivery status a tick logs."""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import dagster as dg

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

# Records read per query page; freshness changes beyond this wait for the next tick.
EVENTS_PER_TICK = 100
ERROR_MAX = 1500


def run_partition(tags: Mapping[str, str]) -> str | None:
    """Partition of a run from its tags: one key, or ``start...end`` for a range backfill run."""
    if tags.get(PARTITION_TAG):
        return tags[PARTITION_TAG]
    if tags.get(RANGE_START_TAG) and tags.get(RANGE_END_TAG):
        return f"{tags[RANGE_START_TAG]}...{tags[RANGE_END_TAG]}"
    return None


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def utc_text(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def error_text(error: Any) -> str:
    """The user's error, not Dagster's wrapper, with its cause and where it was raised."""
    while error.cause is not None and error.cls_name and error.cls_name.startswith("Dagster"):
        error = error.cause  # DagsterExecutionStepExecutionError etc. only wrap the real error
    text = error.message.strip()
    if error.stack:
        where = error.stack[-1].strip().splitlines()[0]
        text += f"\n  at {where}"
    if error.cause is not None:
        text += f"\n  caused by {error.cause.message.strip()}"
    return truncate(text, ERROR_MAX)


def monitored_asset_keys(context: dg.SensorEvaluationContext) -> set[dg.AssetKey] | None:
    """Asset keys of this code location, or None (no filter) when the context has no repository."""
    repo = context.repository_def
    return set(repo.asset_graph.get_all_asset_keys()) if repo is not None else None


def status_line(statuses: Mapping[str, str]) -> str:
    return ", ".join(f"{channel} {status}" for channel, status in statuses.items())
