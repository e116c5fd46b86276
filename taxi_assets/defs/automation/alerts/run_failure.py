"""``run_failure_alert``: a failed run of this code location, however it was launched, reaches a
human with its job, partition, the assets of its failed steps, their errors and a link.

Dagster's run-failure sensor hands over the failed run; step errors come from its STEP_FAILURE
events, asset keys from the run's stored execution plan. Which runs are ours is derived from
the code location itself (its jobs and assets), not from a hand-kept list."""

import dagster as dg

from taxi_assets.defs.automation.alerts.common import ERROR_MAX, error_text, run_partition, status_line, truncate
from taxi_assets.defs.resources.notifier import AlertNotifier
from taxi_assets.io.notify import Alert


def step_failure_text(event: dg.DagsterEvent) -> str:
    """Error of one STEP_FAILURE event: a ``dg.Failure``'s description, else the exception."""
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return truncate(data.user_failure_data.description.strip(), ERROR_MAX)
    if data.error is None:
        return event.message or "step failed without an error message"
    return error_text(data.error)


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
            error_text(run_error) if run_error is not None else (context.failure_event.message or "")
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


def own_job_names(repository_def: dg.RepositoryDefinition) -> frozenset[str]:
    """The jobs this code location defines. Dagster's implicit asset jobs (``__ASSET_JOB``...,
    the ``__`` prefix is reserved for them) are left out: every code location has one, so
    their name says nothing about whose run it is (their assets do)."""
    return frozenset(name for name in repository_def.job_names if not name.startswith("__"))


def is_own_run(instance: dg.DagsterInstance, run: dg.DagsterRun, repository_def: dg.RepositoryDefinition | None) -> bool:
    """A run of this code location however it was launched (the daemon, the UI, or a CLI such as
    ``dagster asset materialize`` or ``dg launch``, whose runs carry no code-location origin):
    one of its jobs, or a run of some of its assets. Without a code location to compare with (a
    hand-built context) every run counts."""
    if repository_def is None or run.job_name in own_job_names(repository_def):
        return True
    selection = set(run.asset_selection or ())
    if not selection:  # a job without an explicit selection: the assets its steps materialize
        try:
            selection = {
                dg.AssetKey.from_user_string(key) for keys in _assets_by_step(instance, run).values() for key in keys
            }
        except Exception:  # noqa: BLE001 - no plan stored: alert rather than stay silent
            return True
    return bool(selection & set(repository_def.asset_graph.get_all_asset_keys()))


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
    if not is_own_run(context.instance, context.dagster_run, context.repository_def):
        context.log.debug(f"run {context.dagster_run.run_id} ({context.dagster_run.job_name}) is not ours: no alert")
        return
    alert = run_failure_alert_for(context, notifier)
    statuses = notifier.send(alert, context.log)
    context.log.info(f"run {alert.run_id} failure alert: {status_line(statuses)}")
