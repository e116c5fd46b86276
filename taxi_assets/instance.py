"""The embedded Dagster instance: its ``dagster.yaml`` and a run launcher the run monitor can ask.

``taxi-assets init`` (run by ``make run`` / ``make dev``) writes ``$DAGSTER_HOME/dagster.yaml``
from the package's ``instance.yaml``: SQLite storage beside it, no telemetry, a run queue
sized for a laptop, one model-training step at a time across all runs (pool
``model_training``) and run monitoring with :class:`LocalRunLauncher`.

Why a launcher of our own: the run monitor can only tell that a run's worker died when the
launcher answers ``check_run_worker_health``, and the default one does not, so a run killed
with ``kill -9`` stayed STARTED forever and its step processes ran on as orphans.
:class:`LocalRunLauncher` launches like the default one and answers from the process ids on
the run's events (``RUN_START``, ``STEP_START``): when the worker is gone, its step processes
are terminated and the monitor marks the run FAILED. It sees only its own machine's processes
(psutil); Kubernetes deployments use their launcher's checks (deploy/dagster.yaml).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from importlib.resources import files
from pathlib import Path

import psutil
import yaml
from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher

from taxi_assets.dagster_compat import CheckRunHealthResult, WorkerStatus

INSTANCE_MARKER = "# taxi-assets embedded instance"
EMBEDDED_INSTANCE_YAML = files("taxi_assets").joinpath("instance.yaml").read_text()


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


def immediate_launch_config(home: Path) -> dict:
    """The instance of ``home`` (its ``dagster.yaml``) with runs launched at once instead of queued.

    ``taxi-assets run`` launches through ``dagster job launch``, which submits to the instance's
    run coordinator: the queue only the daemon drains. This configuration writes to the same
    storage (the SQLite files of ``home`` unless the file names other storage) through Dagster's
    ``DefaultRunCoordinator``, so the run starts at once, as the UI's runs do, without a daemon.
    """
    config_file = home / "dagster.yaml"
    config = (yaml.safe_load(config_file.read_text()) if config_file.exists() else None) or {}
    config.pop("run_queue", None)
    config["run_coordinator"] = {"module": "dagster.core.run_coordinator", "class": "DefaultRunCoordinator"}
    if "storage" not in config:
        config["storage"] = {"sqlite": {"base_dir": str(home)}}
    config.setdefault(
        "local_artifact_storage",
        {"module": "dagster.core.storage.root", "class": "LocalArtifactStorage", "config": {"base_dir": str(home)}},
    )
    config.setdefault(
        "compute_logs",
        {
            "module": "dagster.core.storage.local_compute_log_manager",
            "class": "LocalComputeLogManager",
            "config": {"base_dir": str(home / "storage")},
        },
    )
    return config


# --- processes (psutil) -------------------------------------------------------------------------


def process_start_time(pid: int) -> float | None:
    """Unix time a process started, or None when unknown or gone."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_same_process(pid: int, started_before: float) -> bool:
    """``pid`` is alive and is the process that logged an event at ``started_before`` (not a
    pid reused by a process started after the event)."""
    if not is_alive(pid):
        return False
    start = process_start_time(pid)
    return start is None or start <= started_before + 2.0


def terminate(pids: list[int], grace_seconds: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL after ``grace_seconds``; returns the pids signalled."""
    signalled: list[psutil.Process] = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            process = psutil.Process(pid)
            process.terminate()
            signalled.append(process)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(is_alive(p.pid) for p in signalled):
        time.sleep(0.2)
    for process in signalled:
        if is_alive(process.pid):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                process.kill()
    return [p.pid for p in signalled]


def is_alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its parent."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # ZombieProcess is one too
        return False
    except psutil.AccessDenied:
        return True


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
    """The parent pid of ``pid`` (``None`` when it is gone or cannot be read)."""
    try:
        return psutil.Process(pid).ppid()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


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
