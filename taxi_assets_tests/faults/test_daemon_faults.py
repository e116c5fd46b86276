"""Faults a user meets with the daemon running: a run worker killed with ``kill -9``, and failed
runs started every way a user starts them, each of which must reach the alert channels.

Both run against real processes: ``dagster-daemon run`` / ``dagster dev`` on a fresh embedded
instance written by ``taxi-assets init``, a real SMTP server (aiosmtpd) and a real webhook
endpoint on 127.0.0.1.

Before the fixes: the killed run stayed STARTED forever and its step process kept running
(the default run launcher cannot answer the run monitor's health check); runs started with
``dagster asset materialize`` or ``dg launch`` were never alerted (the run-failure sensor only
watched runs launched against its own code location).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest

from support.local import free_port
from taxi_assets.instance import write_instance_yaml
from taxi_assets_tests.helpers import WebhookServer, serving, smtp_serving
from taxi_assets_tests.processes import BIN, REPO, daemon, dagster_dev, wait_for_webserver, wait_until


class _TrickleHandler(BaseHTTPRequestHandler):
    """Serves every month as a parquet file that arrives one byte a second, forever: a step
    that downloads it keeps running (it never stalls long enough to time out). ``downloading``
    is set once a download has begun."""

    downloading = threading.Event()

    def do_HEAD(self):  # noqa: N802 - the new-month sensor's probe: nothing is published
        self.send_response(404)
        self.end_headers()

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", "100000000")
        self.end_headers()
        type(self).downloading.set()
        try:
            while True:
                self.wfile.write(b"P")
                self.wfile.flush()
                time.sleep(1)
        except OSError:
            return

    def log_message(self, format, *args):
        pass


# The README promises a killed run FAILED within one run-monitor poll (15 s): 15 s plus slack.
FAILED_WITHIN_SECONDS = 30


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _event_pid(instance, run_id: str, event_type) -> int | None:
    records = instance.get_records_for_run(run_id, of_type=event_type).records
    return records[0].event_log_entry.dagster_event.pid if records else None


def _deployment(root: Path, source: str) -> tuple[Path, dict]:
    home = root / "home"
    write_instance_yaml(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(DAGSTER_HOME=str(home), TAXI_DATA_SOURCE=source, TAXI_DATA_ROOT=str(root / "data"), TAXI_IGNORE_DOTENV="1")
    return home, env


def _parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_killed_run_is_failed_and_its_step_processes_ended(tmp_path):
    """Two ways a run worker dies under a running daemon:

    1. ``kill -9`` of the run worker: its code server reports the run failed, and the step
       process it started (downloading, so busy for minutes) ends too, instead of running on
       as an orphan;
    2. ``kill -9`` of the code server and then the run worker (what an out-of-memory kill or
       a crashed ``dagster dev`` leaves): nobody reports it, and before this fix the run stayed
       STARTED forever. The run monitor now asks the instance's run launcher, which sees the
       worker is gone: the run is FAILED within a poll interval, naming the pid.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TrickleHandler)
    server.daemon_threads = True
    with serving(server):
        home, env = _deployment(tmp_path, f"http://127.0.0.1:{server.server_address[1]}/trip-data")
        with dg.DagsterInstance.from_config(str(home)) as instance, daemon(env, tmp_path, tmp_path / "daemon.log") as process:

            def launch(month: str) -> tuple[str, int, int]:
                run_id = str(uuid.uuid4())
                launched = subprocess.run(
                    [str(BIN / "dagster"), "job", "launch", "-w", str(REPO / "workspace.yaml"), "-j", "ingest_month",
                     "--run-id", run_id, "--tags", json.dumps({"dagster/partition": month})],
                    env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180,
                )  # fmt: skip
                assert launched.returncode == 0, launched.stderr[-3000:]
                step_pid = wait_until(
                    lambda: _event_pid(instance, run_id, dg.DagsterEventType.STEP_START), 180, what="the download step"
                )
                worker_pid = _event_pid(instance, run_id, dg.DagsterEventType.RUN_START)
                assert worker_pid != step_pid and _pid_alive(worker_pid) and _pid_alive(step_pid)
                assert _TrickleHandler.downloading.wait(120), "the step never started downloading"
                _TrickleHandler.downloading.clear()
                return run_id, worker_pid, step_pid

            def finished(run_id: str):
                run = wait_until(
                    lambda: (r := instance.get_run_by_id(run_id)).is_finished and r,
                    120,
                    what=f"run {run_id} to leave STARTED\n{process.log_tail()}",
                )
                return run

            # 1. the run worker alone
            run_id, worker_pid, step_pid = launch("2024-01")
            os.kill(worker_pid, signal.SIGKILL)
            killed_at = time.monotonic()
            assert finished(run_id).status == dg.DagsterRunStatus.FAILURE
            # README: FAILED within one poll interval of the run monitor (15 s), plus slack
            assert time.monotonic() - killed_at < FAILED_WITHIN_SECONDS
            wait_until(lambda: not _pid_alive(step_pid), 30, interval=0.5, what="the orphaned step process to end")

            # 2. the code server, then the run worker: only the run monitor can notice
            run_id, worker_pid, step_pid = launch("2024-02")
            code_server = _parent_pid(worker_pid)
            os.kill(code_server, signal.SIGKILL)
            os.kill(worker_pid, signal.SIGKILL)
            killed_at = time.monotonic()
            run = finished(run_id)
            assert run.status == dg.DagsterRunStatus.FAILURE
            assert time.monotonic() - killed_at < FAILED_WITHIN_SECONDS
            wait_until(lambda: not _pid_alive(step_pid), 30, interval=0.5, what="the orphaned step process to end")
            messages = [
                r.event_log_entry.dagster_event.message or ""
                for r in instance.get_records_for_run(run_id).records
                if r.event_log_entry.dagster_event is not None
            ]
            assert any(f"run worker pid {worker_pid} is gone" in m for m in messages), messages


@pytest.fixture
def alert_channels():
    with smtp_serving() as (smtp_port, inbox), serving(WebhookServer()) as webhook:
        yield {"smtp_port": smtp_port, "inbox": inbox, "webhook": webhook}


def test_every_failed_run_is_alerted_however_it_was_launched(tmp_path, shared_data, alert_channels):
    """A month missing from the source fails raw_trips at once ("not published yet"). Five
    launch paths each fail one month; every one must arrive by email and webhook."""
    source = tmp_path / "source"
    source.mkdir()  # an empty source: every month is "not published yet"
    home, env = _deployment(tmp_path, str(source))
    env.update(
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(alert_channels["smtp_port"]),
        SMTP_USE_TLS="false",
        SMTP_EMAIL="dagster@example.org",
        ALERT_EMAIL_TO="oncall@example.org",
        ALERT_WEBHOOK_URL=f"{alert_channels['webhook'].base_url}/hooks/T000/B000/secret",
        TAXI_BOOTSTRAP_MONTHS="0",
    )
    port = free_port()
    workspace = str(REPO / "workspace.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance, dagster_dev(env, tmp_path, tmp_path / "dev.log", port) as dev:
        from dagster_graphql import DagsterGraphQLClient

        wait_for_webserver(dev, port)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)

        def cli(*args, cwd=tmp_path):
            done = subprocess.run(list(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
            return done

        # 1. the UI (its GraphQL API): a launched run
        client.submit_job_execution("ingest_month", tags={"dagster/partition": "2023-03"})
        # 2. the daemon: a backfill it launches (submitting it succeeds; the run fails later)
        submitted = cli(str(BIN / "dagster"), "job", "backfill", "-w", workspace, "-j", "ingest_month",
                        "--partitions", "2023-04", "--noprompt")  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr[-2000:]
        # 3.-5. commands that wait for their run: each exits non-zero with the month's failure
        for command, month in (
            ([str(BIN / "dagster"), "asset", "materialize", "-m", "taxi_assets.definitions", "--select", "raw_trips",
              "--partition", "2023-05"], "2023-05"),  # the dagster CLI, executing in its own process
            ([str(BIN / "dg"), "launch", "-m", "taxi_assets.definitions", "--assets", "raw_trips", "--partition", "2023-06"],
             "2023-06"),  # the dg CLI
            ([str(BIN / "taxi-assets"), "run", "--month", "2023-08"], "2023-07"),  # prepare_month of the training month
        ):  # fmt: skip
            done = cli(*command)
            assert done.returncode != 0, (command, done.stdout[-2000:])
            assert f"green_tripdata_{month}.parquet is not published yet" in done.stdout + done.stderr, command
            assert "/hooks/T000/B000/secret" not in done.stdout + done.stderr

        expected = {"2023-03", "2023-04", "2023-05", "2023-06", "2023-07"}

        def failed_partitions():
            runs = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
            return {r.tags.get("dagster/partition") for r in runs}

        wait_until(lambda: expected <= failed_partitions(), 240, what=f"five failed runs\n{dev.log_tail()}")
        inbox, webhook = alert_channels["inbox"], alert_channels["webhook"]

        def alerted():
            subjects = [m["Subject"] for m in inbox.messages()]
            return all(any(f"/ {month}" in s for s in subjects) for month in expected) and len(webhook.payloads) >= 5

        wait_until(alerted, 180, interval=5, what=f"an alert for each failed run\n{dev.log_tail()}")
    messages = inbox.messages()
    for month in expected:
        (mail,) = [m for m in messages if f"/ {month}" in m["Subject"]]
        body = mail.get_content()
        assert "is not published yet" in body and f"Partition: {month}" in body
    texts = [p["text"] for p in webhook.payloads]
    for month in expected:
        assert any(f"partition {month}" in t for t in texts), month
    # the webhook's secret path never appears in what was sent or logged: webhook texts, e-mails,
    # the UI process's log, and every log the run workers and steps wrote into the instance
    assert all("secret" not in t for t in texts)
    assert all("secret" not in m.get_content() and "secret" not in m["Subject"] for m in messages)
    assert "/hooks/T000/B000/secret" not in (tmp_path / "dev.log").read_text()
    logs = [p for p in (home / "storage").rglob("*") if p.is_file()]
    assert logs, "no run-worker logs were captured"
    assert not [p for p in logs if b"/hooks/T000/B000/secret" in p.read_bytes()]
