"""The embedded Dagster instance: its ``dagster.yaml`` and a run launcher the run monitor can ask.

``taxi-assets init`` (run by ``make run`` / ``make dev``) writes ``$DAGSTER_HOME/dagster.yaml``
from :data:`EMBEDDED_INSTANCE_YAML`: SQLite storage beside it (Dagster's default), no
telemetry (offline-first), a run queue sized for a laptop, one model-training step at a time
across all runs (the ``model_training`` pool: each fit already uses every core), and run
monitoring with :class:`LocalRunLauncher`.

Why a launcher of our own: Dagster's run monitor can only tell that a run's worker died when
the run launcher answers ``check_run_worker_health``, and the default launcher (a subprocess
of the code server) does not. So a run killed with ``kill -9`` (or the OOM killer) stayed
STARTED forever and its step processes kept running as orphans. :class:`LocalRunLauncher`
launches exactly like the default one and answers the health check from the process ids
Dagster records on the run's events: the run worker's (``RUN_START``) and each step's
(``STEP_START``). When the worker is gone, the step processes it left are terminated and the
monitor marks the run FAILED (then ``run_failure_alert`` reports it). It only sees processes
on its own machine, which is what the embedded instance is for; deployments on Kubernetes use
their launcher's own health checks (deploy/dagster.yaml).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

INSTANCE_MARKER = "# taxi-assets embedded instance"

EMBEDDED_INSTANCE_YAML = f"""\
{INSTANCE_MARKER} (written by `taxi-assets init`; rewritten when the project changes it;
# delete this line to keep your own edits). Runs, events and schedules live in SQLite files
# beside this one. Production: deploy/dagster.yaml (Postgres, run queue limits, retries).
telemetry:
  enabled: false
nux:
  enabled: false

# Run logs on the console (dagster dev's terminal, `dagster asset materialize`): INFO and above,
# i.e. the assets' own progress lines and failures, not every engine event. The UI keeps all.
python_logs:
  python_log_level: INFO

# Sensors, automation and backfills queue runs; the daemon starts at most four at a time, never
# two runs of the same month at once (they would write the same files). Model steps (pool
# "model_training") run one at a time across all runs: each fit already uses every core.
concurrency:
  runs:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    default_limit: 1

# A run whose worker died (kill -9, out of memory) is marked FAILED within a poll interval and
# its orphaned step processes are ended (taxi_assets.instance.LocalRunLauncher).
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_resume_run_attempts: 0
  poll_interval_seconds: 15

run_launcher:
  module: taxi_assets.instance
  class: LocalRunLauncher
"""


def write_instance_yaml(home: Path) -> Path:
    """Write ``home/dagster.yaml`` unless the user owns it (no marker line); returns its path."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if config.exists():
        text = config.read_text()
        if not text.startswith(INSTANCE_MARKER) or text == EMBEDDED_INSTANCE_YAML:
            return config
    config.write_text(EMBEDDED_INSTANCE_YAML)
    return config


# --- processes --------------------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first, then the parent
    pid, ...), or None when it cannot be read (gone, or no ``/proc``)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_start_time(pid: int) -> float | None:
    """Unix time a process started (Linux ``/proc``), or None when unknown or gone."""
    boot = _boot_time()
    fields = _stat_fields(pid)
    if boot is None or fields is None:
        return None
    return boot + int(fields[19]) / _CLOCK_TICKS  # field 22 of stat: starttime in clock ticks


def is_same_process(pid: int, started_before: float) -> bool:
    """``pid`` is alive and is the process that logged an event at ``started_before`` (not a
    pid reused by a process started after the event)."""
    if not is_alive(pid):
        return False
    start = process_start_time(pid)
    return start is None or start <= started_before + 2.0  # no /proc (macOS): alive is all we know


def terminate(pids: list[int], grace_seconds: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL after ``grace_seconds``; returns the pids signalled."""
    signalled = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
            signalled.append(pid)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(is_alive(p) for p in signalled):
        time.sleep(0.2)
    for pid in signalled:
        if is_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return signalled


def is_alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its parent."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    return fields is None or fields[0] != "Z"


class LocalRunLauncher(DefaultRunLauncher):
    """The default launcher plus ``check_run_worker_health`` from the pids on the run's events."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def _pids(self, run_id: str, event_type: DagsterEventType) -> dict[str, tuple[int, float]]:
        records = self._instance.get_records_for_run(run_id, of_type=event_type, limit=1000).records
        found = {}
        for record in records:
            entry = record.event_log_entry
            event = entry.dagster_event
            if event is not None and event.pid is not None:
                found[event.step_key or "run"] = (int(event.pid), entry.timestamp)
        return found

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        workers = self._pids(run.run_id, DagsterEventType.RUN_START)
        if not workers:  # not started yet: the start timeout covers runs that never start
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker not started yet")
        pid, started = workers["run"]
        if is_same_process(pid, started):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} is alive")
        finished = set(self._pids(run.run_id, DagsterEventType.STEP_SUCCESS)) | set(
            self._pids(run.run_id, DagsterEventType.STEP_FAILURE)
        )
        orphans = [
            step_pid
            for step, (step_pid, step_started) in self._pids(run.run_id, DagsterEventType.STEP_START).items()
            if step not in finished and step_pid != pid and is_same_process(step_pid, step_started)
            # A process that predates the run is no step process of it but a shared one that ran
            # the step (a Dask worker under TAXI_EXECUTOR=dask): never end it.
            and (process_start_time(step_pid) or started) >= started - 2.0
        ]
        ended = terminate(orphans)
        message = f"run worker pid {pid} is gone (killed or out of memory)"
        if ended:
            message += f"; ended its orphaned step process(es) {', '.join(map(str, ended))}"
        return CheckRunHealthResult(WorkerStatus.FAILED, message)


# --- step processes that outlive their run worker ---------------------------------------------

_WATCHING = False


def _parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` (Linux ``/proc``; ``None`` where it cannot be read)."""
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def end_with_run_worker(instance, run_id: str, poll_seconds: float = 1.0) -> bool:
    """In a step process of the multiprocess executor, end this process when its run worker
    dies (``kill -9``, out of memory): the step cannot report anything any more, and would
    otherwise keep running, and writing, as an orphan. Called when the step's resources are
    set up; does nothing in any other process (the run worker itself, a code server, tests).

    The step is the run worker's child, or its grandchild when the executor starts steps
    from a forkserver (``defs/executors.py``: the forkserver is the worker's child and exits
    with it). A watcher thread polls the parent pid and the worker: when either is gone the
    process gets SIGTERM (Dagster's interrupt handling runs the step's cleanup: temp files are
    removed, MLflow runs end FAILED), then SIGKILL ten seconds later. Returns whether it watches.
    """
    global _WATCHING
    if _WATCHING:
        return True
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_START, limit=1).records
    worker = records[0].event_log_entry.dagster_event.pid if records else None
    parent = os.getppid()
    if worker is None or worker == os.getpid() or worker not in (parent, _parent_of(parent)):
        return False

    def watch() -> None:
        while os.getppid() == parent and is_alive(worker):
            time.sleep(poll_seconds)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
        os.kill(os.getpid(), signal.SIGKILL)

    import threading

    threading.Thread(target=watch, name="taxi-run-worker-watch", daemon=True).start()
    _WATCHING = True
    return True
