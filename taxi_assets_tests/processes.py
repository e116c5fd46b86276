"""Long-running Dagster processes for system tests: ``dagster dev`` and ``dagster-daemon run``
started the way a user starts them, each in its own process group, stopped by PID (never by
name), with default signal handlers restored (a process started in the background from a
script ignores SIGINT/SIGTERM otherwise)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from support.local import group_alive

REPO = Path(__file__).resolve().parents[1]
WORKSPACE = REPO / "workspace.yaml"
BIN = Path(sys.executable).parent


def _default_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


class DagsterProcess:
    """A Dagster CLI process (its own session) writing to ``log``; ``stop()`` ends its group."""

    def __init__(self, args: list[str], env: Mapping[str, str], cwd: Path, log: Path):
        self.args, self.env, self.cwd, self.log = args, dict(env), cwd, log
        self.process: subprocess.Popen | None = None

    def start(self) -> DagsterProcess:
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(
                self.args, env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_default_signals,
            )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30) -> None:
        process = self.process
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and (process.poll() is None or group_alive(process.pid)):
                time.sleep(0.2)
            if process.poll() is not None and not group_alive(process.pid):
                return

    def __enter__(self) -> DagsterProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def daemon(env: Mapping[str, str], cwd: Path, log: Path) -> DagsterProcess:
    """``dagster-daemon run`` on the project's workspace: sensors, automation, run queue, monitoring."""
    return DagsterProcess([str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)], env, cwd, log)


def dagster_dev(env: Mapping[str, str], cwd: Path, log: Path, port: int) -> DagsterProcess:
    """``dagster dev`` (webserver + daemon) on the project's workspace."""
    args = [str(BIN / "dagster"), "dev", "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(port)]
    return DagsterProcess(args, env, cwd, log)


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 2.0, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; its value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(interval)


def webserver(args: list[str], env: Mapping[str, str], cwd: Path, log: Path, port: int) -> DagsterProcess:
    """``dagster-webserver`` (no daemon) on ``127.0.0.1:port`` for the code location ``args``."""
    return DagsterProcess([str(BIN / "dagster-webserver"), *args, "-h", "127.0.0.1", "-p", str(port)], env, cwd, log)


def answers(port: int) -> bool:
    """The Dagster webserver on ``port`` answers ``/server_info``."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for_webserver(process: DagsterProcess, port: int, timeout: float = 180) -> None:
    def up():
        if process.process is not None and process.process.poll() is not None:
            raise AssertionError(f"the Dagster process exited:\n{process.log_tail()}")
        return answers(port)

    wait_until(up, timeout, interval=0.5, what=f"the webserver on port {port} to answer\n{process.log_tail()}")


def wait_for_run(client, run_id: str, timeout: float = 180):
    """The final status of a run, polled through the GraphQL client."""
    from dagster import DagsterRunStatus

    finished = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
    return wait_until(lambda: (s := client.get_run_status(run_id)) in finished and s, timeout, interval=1,
                      what=f"run {run_id} to finish")  # fmt: skip
