"""How long a user waits for a clear failure, at the project's defaults (benchmarks/README.md, 8).

Each case materializes real assets of the code location in this process (``dg.materialize``,
the code location's resources, an ephemeral instance) and times until the run has failed:

* ``hanging source``: ``raw_trips[2023-06]`` from a local server that sends the headers, then
  nothing (requests' read timeout ends each attempt); ``trickling source``: one byte a second
  (every read succeeds: the read loop's progress deadline, under 64 KiB in 30 s, ends it);
* ``MLflow down``: ``linear_regression[2024-02]`` with the tracking URI on a closed port;
* ``corrupt stored input``: its stored ``training_set`` truncated: permanent, no retry;
* ``MLflow locked 20 s`` / ``for good``: the SQLite store held by another process (``BEGIN
  EXCLUSIVE``): waited out, or failed after ``lock_timeout_seconds`` (45) and retried.

Transient failures retry the step (``TAXI_MAX_RETRIES`` = 2, 30 then 60 s apart); ``before``
is the figure measured with the previous design.

    python benchmarks/time_to_fail.py [--cases hanging_source,trickling_source,mlflow_down,corrupt_input,mlflow_locked_20s,mlflow_locked]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import _common as c  # the script's folder is on sys.path when run as a script

CASES = ("hanging_source", "trickling_source", "mlflow_down", "corrupt_input", "mlflow_locked_20s", "mlflow_locked")
# Measured before (benchmarks/README.md, section 8): the downloader retried a hang itself (3
# attempts, 2 + 4 s apart) and the step did not; a trickle was cut by a watchdog thread; a locked
# store failed at once with a raw traceback.
BEFORE = {"hanging_source": "96.3", "trickling_source": "-", "mlflow_down": "107.0", "corrupt_input": "0.3",
          "mlflow_locked_20s": "6 (failed)", "mlflow_locked": "6 (failed)"}  # fmt: skip
LOCKER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _lock(db: Path, seconds: float):
    """Another process holding ``BEGIN EXCLUSIVE`` on ``db`` for ``seconds`` (kill it to release)."""
    import subprocess

    process = subprocess.Popen([sys.executable, "-c", LOCKER, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


class _StallingSource(BaseHTTPRequestHandler):
    """``/hang/...``: the headers of a 1.4 MB file, then nothing; ``/trickle/...``: one byte a second."""

    stop = threading.Event()

    def log_message(self, *args):  # quiet
        pass

    def do_HEAD(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", "1400000")
        self.end_headers()

    def do_GET(self):  # noqa: N802
        self.do_HEAD()
        self.wfile.flush()
        while self.path.startswith("/trickle/") and not self.stop.wait(1):
            try:
                self.wfile.write(b"P")
                self.wfile.flush()
            except OSError:
                return  # the client gave up
        self.stop.wait(600)


def _failure(result) -> str:
    """First line of the run's first step failure, as the failure alert words it."""
    from taxi_assets.defs.automation.alerts.run_failure import step_failure_text

    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            return step_failure_text(event).splitlines()[0][:240]
    return "(no step failure)"


def _retries(result) -> int:
    return sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args(argv)
    cases = args.cases.split(",")
    work = Path(tempfile.mkdtemp(prefix="time-to-fail-"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StallingSource)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # Settings are read when the code location is imported: set them first.
    os.environ.update(
        TAXI_IGNORE_DOTENV="1",
        TAXI_DATA_ROOT=str(work / "data"),
        TAXI_DATA_SOURCE=str(c.SHARED_DATA),
        DAGSTER_HOME=str(work / "home"),
        MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}",
    )
    (work / "home").mkdir()
    import dagster as dg

    from taxi_assets.definitions import load_defs

    defs = load_defs()
    assets = [*defs.assets]
    resources = dict(defs.resources)
    print(f"time_to_fail: {c.machine()}")
    rows = []
    with dg.DagsterInstance.ephemeral() as instance:

        def run(selection, month, **overrides):
            started, cpu = time.monotonic(), time.process_time()
            result = dg.materialize(assets, selection=selection, partition_key=month, instance=instance,
                                    resources={**resources, **overrides}, raise_on_error=False)  # fmt: skip
            return result, time.monotonic() - started, time.process_time() - cpu

        if {"mlflow_down", "corrupt_input", "mlflow_locked_20s", "mlflow_locked"} & set(cases):
            for month in ("2024-01", "2024-02"):
                run(["raw_trips", "cleaned_trips"], month)
            prepared, _, _ = run(["training_set"], "2024-02")
            assert prepared.success
        for case, route, label in (
            ("hanging_source", "hang", "hanging source (headers, then nothing)"),
            ("trickling_source", "trickle", "trickling source (one byte a second)"),
        ):
            if case in cases:
                from taxi_assets.defs.resources.data_source import TlcDataSource

                source = TlcDataSource(base=f"http://127.0.0.1:{server.server_address[1]}/{route}")
                result, wall, cpu = run(["raw_trips"], "2023-06", data_source=source)
                rows.append([label, BEFORE[case], f"{wall:.1f}", f"{cpu:.1f}", _retries(result), _failure(result)])
        if "mlflow_down" in cases:
            from support.local import closed_port
            from taxi_assets.defs.resources.tracking import MlflowTracking

            down = MlflowTracking(tracking_uri=f"http://127.0.0.1:{closed_port()}")
            result, wall, cpu = run(["linear_regression"], "2024-02", mlflow=down)
            rows.append(["MLflow tracking server down", BEFORE["mlflow_down"], f"{wall:.1f}", f"{cpu:.1f}", _retries(result), _failure(result)])
        for case, seconds in (("mlflow_locked_20s", 20), ("mlflow_locked", 3600)):
            if case not in cases:
                continue
            resources["mlflow"].store().experiment_id()  # the store exists, as after any first run
            holder = _lock(work / "mlflow.db", seconds)
            try:
                result, wall, cpu = run(["linear_regression"], "2024-02")
            finally:
                holder.kill()
                holder.wait()
            outcome = "succeeded" if result.success else _failure(result)
            rows.append([f"MLflow store locked {'20 s' if seconds == 20 else 'for good'}", BEFORE[case], f"{wall:.1f}",
                         f"{cpu:.1f}", _retries(result), outcome])  # fmt: skip
        if "corrupt_input" in cases:
            from taxi_assets.defs.resources.io_manager import TaxiIOManager

            stored = TaxiIOManager().path_for(dg.AssetKey("training_set"), "2024-02")
            stored.write_bytes(stored.read_bytes()[:4096])
            result, wall, cpu = run(["linear_regression"], "2024-02")
            rows.append(["corrupt stored training_set", BEFORE["corrupt_input"], f"{wall:.1f}", f"{cpu:.1f}", _retries(result), _failure(result)])
    _StallingSource.stop.set()
    server.shutdown()
    c.print_table(["case", "before s", "wall s to failure", "CPU s", "step retries", "failure (first line)"], rows)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
