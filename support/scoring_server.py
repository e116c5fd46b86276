"""Test and benchmark helpers around the scoring server: ``mlflow models serve`` started in
its own process group on a free loopback port (:class:`ScoringServer`) and a keep-alive
client (:class:`ScoringClient`). Stops only the processes it started."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from support.local import DEFAULT_HOST, free_port
from support.local import group_alive as _group_alive
from taxi_assets.registry.serving import payload

# --- the scoring server -----------------------------------------------------------------------


def serve_command(
    model_uri: str,
    port: int,
    host: str = DEFAULT_HOST,
    workers: int | None = None,
    python: str = sys.executable,
) -> list[str]:
    """``mlflow models serve`` for ``model_uri`` in this environment (``--env-manager local``)."""
    command = [python, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
               "--host", host, "--port", str(port)]  # fmt: skip
    if workers:
        command += ["--workers", str(workers)]
    return command


def serve_env(tracking_uri: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: ``base`` (default ``os.environ``) with the tracking store set."""
    env = dict(os.environ if base is None else base)
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    # `mlflow models serve` execs `uvicorn` by name: put this interpreter's scripts first on
    # PATH, so it works from a venv that was never activated (make test, CI, cron).
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "")]) if env.get("PATH") else scripts
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


class ScoringServer:
    """``mlflow models serve`` as a subprocess in its own process group.

    ``with ScoringServer(uri, tracking_uri, log_path) as server: server.url`` starts it on a
    free loopback port, waits until ``/ping`` answers (raising with the log tail if the server
    exits or does not answer in ``ready_timeout`` seconds) and on exit stops only its own
    process group (SIGTERM, then SIGKILL after ``stop_timeout``).
    """

    def __init__(
        self,
        model_uri: str,
        tracking_uri: str,
        log_path: Path,
        host: str = DEFAULT_HOST,
        port: int | None = None,
        workers: int | None = None,
        ready_timeout: float = 120.0,
        stop_timeout: float = 20.0,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ):
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.log_path = Path(log_path)
        self.host = host
        self.port = port or free_port(host)
        self.workers = workers
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.env = serve_env(tracking_uri, env)
        self.cwd = cwd or self.log_path.parent
        self.process: subprocess.Popen | None = None
        self.started_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def command(self) -> list[str]:
        return serve_command(self.model_uri, self.port, self.host, self.workers)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self) -> ScoringServer:
        started = time.monotonic()
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.cwd,
            )  # fmt: skip
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.started_seconds = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        import urllib.error
        import urllib.request

        deadline = started + self.ready_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mlflow models serve exited with code {self.process.returncode} before answering /ping:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow models serve did not answer {self.url}/ping within {self.ready_timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.25)

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None and not _group_alive(process.pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # uvicorn workers may outlive the parent by a moment; they are in the same group
        deadline = time.monotonic() + self.stop_timeout
        while _group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def __enter__(self) -> ScoringServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- the client -------------------------------------------------------------------------------


class ScoringError(RuntimeError):
    """The scoring server refused a request (``status`` 4xx/5xx, MLflow's ``error_code``)."""

    def __init__(self, status: int, error_code: str | None, message: str):
        super().__init__(f"HTTP {status} {error_code or ''}: {message}".replace("  ", " "))
        self.status = status
        self.error_code = error_code
        self.message = message


class ScoringClient:
    """Posts records to a scoring server over one keep-alive ``requests.Session``."""

    def __init__(self, url: str, timeout: float = 30.0):
        import requests

        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def post(self, records: Sequence[Mapping[str, Any]] | Mapping[str, Any]):
        """The raw ``requests.Response`` for ``records`` (for status and body checks)."""
        return self.session.post(
            f"{self.url}/invocations",
            data=json.dumps(payload(records)),
            headers={"Content-Type": "application/json"},
            timeout=self.timeout,
        )

    def predict(self, records: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> list[float]:
        """Minutes for each record; raises :class:`ScoringError` when the server refuses."""
        response = self.post(records)
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text}
        if response.status_code != 200:
            raise ScoringError(response.status_code, body.get("error_code"), str(body.get("message", body)))
        return [float(p) for p in body["predictions"]]

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> ScoringClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
