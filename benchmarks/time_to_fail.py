"""How long a user waits for a clear failure, at the project's defaults (issue 12's figures).

Each case materializes real assets of the code location in this process (``dg.materialize``
with the code location's resources and an ephemeral instance) and times until the run has
failed, with the failure's first line:

* ``hanging source``: ``raw_trips[2024-01]`` from a local HTTP server that sends the headers of
  the file and then nothing: the data source's defaults (30 s without progress, 2 retries, 2 +
  4 s apart) make it ~95 s, reported as a timeout (before: ``is corrupt: truncated`` after
  ~255 s); the step is not retried again on top (the download did its retries);
* ``MLflow down``: ``linear_regression[2024-02]`` with ``MLFLOW_TRACKING_URI`` on a closed port:
  each attempt fails before training, and the step is retried as an outage
  (``TAXI_MAX_RETRIES`` = 2, ``TAXI_RETRY_DELAY_SECONDS`` = 30 then 60: the delays are most of
  the time; before: 929 s);
* ``corrupt stored input``: ``linear_regression[2024-02]`` whose stored ``training_set`` was
  truncated: permanent, no retry (before: 155 s, 2 retries, no path);
* ``MLflow locked 20 s`` / ``MLflow locked``: the embedded SQLite store held by another process
  (``BEGIN EXCLUSIVE``) for 20 s, then for good, while ``linear_regression[2024-02]`` runs:
  the first is waited out (a success, timed), the second fails each attempt after the
  ``mlflow`` resource's ``lock_timeout_seconds`` (45) and is retried as an outage (before: a
  raw ``database is locked`` traceback after 6 s, no retry).

    python benchmarks/time_to_fail.py [--cases hanging_source,mlflow_down,corrupt_input,mlflow_locked_20s,mlflow_locked]
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

CASES = ("hanging_source", "mlflow_down", "corrupt_input", "mlflow_locked_20s", "mlflow_locked")
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


class _HangAfterHeaders(BaseHTTPRequestHandler):
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
        self.stop.wait(600)


def _failure(result) -> str:
    """First line of the run's first step failure, as the failure alert words it."""
    from taxi_assets.defs.automation.alerts import step_failure_text

    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            return step_failure_text(event).splitlines()[0][:160]
    return "(no step failure)"


def _retries(result) -> int:
    return sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args(argv)
    cases = args.cases.split(",")
    work = Path(tempfile.mkdtemp(prefix="time-to-fail-"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HangAfterHeaders)
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
        if "hanging_source" in cases:
            from taxi_assets.defs.resources.data_source import TlcDataSource

            source = TlcDataSource(base=f"http://127.0.0.1:{server.server_address[1]}/trip-data")
            result, wall, cpu = run(["raw_trips"], "2023-06", data_source=source)
            rows.append(["hanging source (headers, then nothing)", f"{wall:.1f}", f"{cpu:.1f}", _retries(result), _failure(result)])
        if "mlflow_down" in cases:
            from taxi_assets.defs.resources.tracking import MlflowTracking
            from taxi_assets_tests.helpers import closed_port

            down = MlflowTracking(tracking_uri=f"http://127.0.0.1:{closed_port()}")
            result, wall, cpu = run(["linear_regression"], "2024-02", mlflow=down)
            rows.append(["MLflow tracking server down", f"{wall:.1f}", f"{cpu:.1f}", _retries(result), _failure(result)])
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
            rows.append([f"MLflow store locked {'20 s' if seconds == 20 else 'for good'}", f"{wall:.1f}", f"{cpu:.1f}",
                         _retries(result), outcome])  # fmt: skip
        if "corrupt_input" in cases:
            from taxi_assets.defs.resources.io_manager import TaxiIOManager

            stored = TaxiIOManager().path_for(dg.AssetKey("training_set"), "2024-02")
            stored.write_bytes(stored.read_bytes()[:4096])
            result, wall, cpu = run(["linear_regression"], "2024-02")
            rows.append(["corrupt stored training_set", f"{wall:.1f}", f"{cpu:.1f}", _retries(result), _failure(result)])
    _HangAfterHeaders.stop.set()
    server.shutdown()
    c.print_table(["case", "wall s to failure", "CPU s", "step retries", "failure (first line)"], rows)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
