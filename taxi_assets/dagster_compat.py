"""The project's only imports of Dagster internals (``dagster._...``): names Dagster 1.13 does not export.

Every other module uses the public ``import dagster as dg``; ruff's banned-api rule (TID251,
``pyproject.toml``) fails on ``dagster._`` anywhere else in the package. Each entry says which
public API is missing. When an upgrade exports one, import it from ``dagster`` where it is used
and delete it here; when an upgrade moves one, this is the one file to fix.
"""

# LocalRunLauncher.check_run_worker_health (taxi_assets/instance.py) answers the run monitor with
# a CheckRunHealthResult holding a WorkerStatus: the method is part of the public RunLauncher
# interface, but dagster exports neither type it must return.
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

# The status filter of event_log_storage.get_asset_check_execution_history, the one query of a
# check's failed executions across runs (asset_check_failure_alert): dagster exports no such
# query on DagsterInstance, nor this enum.
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

__all__ = ["AssetCheckExecutionRecordStatus", "CheckRunHealthResult", "WorkerStatus"]
