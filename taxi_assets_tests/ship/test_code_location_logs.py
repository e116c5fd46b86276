"""Every documented way to start the code location keeps its log readable: over several
automation ticks no warning repeats, and no warning names another location name.

Real processes, each on its own fresh instance (an empty source, so no run starts):
``dagster-daemon run`` with ``-m taxi_assets.definitions`` (no location name: the worst case)
and with ``-w workspace.yaml``; ``dagster code-server start -m ... --location-name taxi_assets``
(deploy/) with a daemon on a ``grpc_server`` workspace; and ``dg dev`` in the checkout (``make
dev``), which must print no warning at all.

Before the fix every load of the definitions under a name other than the project's logged
"The code location name 'taxi_assets' configured on this project does not match ..." once per
component: 40 lines per load, about 250 a minute from a daemon started with ``-m``; and a daemon
on ``-m``/``-w`` logged "No heartbeat received ..." each minute for the code server it replaced.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

from support.local import free_port
from taxi_assets.instance import write_instance_yaml
from taxi_assets_tests.processes import BIN, REPO, WORKSPACE, DagsterProcess, wait_for_webserver, wait_until

TICKS = 3
# A daemon replaces the code server it manages every 60 s; the old one stops 20 s after its last
# heartbeat. Watching for 200 s sees two replacements, so a warning logged per replacement repeats.
WATCH_SECONDS = 200
TICK_LINE = "taxi_automation - Prefetching asset records"
WARNING = re.compile(r" - (WARNING|ERROR|CRITICAL) - (.*)$|(\w+Warning): (.*)$")


def _env(root: Path) -> dict:
    home = root / "home"
    write_instance_yaml(home)
    source = root / "source"
    source.mkdir()  # nothing published: the sensors tick, no run starts
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home), TAXI_DATA_SOURCE=str(source), TAXI_DATA_ROOT=str(root / "data"),
        TAXI_IGNORE_DOTENV="1", TAXI_AUTOMATION_INTERVAL_SECONDS="5", TAXI_BOOTSTRAP_MONTHS="0",
    )  # fmt: skip
    return env


def warnings_in(log: Path) -> Counter:
    """Warning (and worse) messages of a Dagster log, without their timestamps."""
    found = Counter()
    for line in log.read_text(errors="replace").splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        match = WARNING.search(line)
        if match:
            found[match.group(2) or f"{match.group(3)}: {match.group(4)}"] += 1
    return found


def test_no_start_of_the_code_location_repeats_a_warning(tmp_path):
    port, grpc_port = free_port(), free_port()
    grpc_workspace = tmp_path / "workspace.grpc.yaml"
    grpc_workspace.write_text(
        f"load_from:\n  - grpc_server: {{host: 127.0.0.1, port: {grpc_port}, location_name: taxi_assets}}\n"
    )
    code_server = [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(grpc_port),
                   "-m", "taxi_assets.definitions", "--location-name", "taxi_assets"]  # fmt: skip
    # name: (command, the process whose instance it shares, the process whose log shows its ticks)
    starts = {
        "daemon -m": ([str(BIN / "dagster-daemon"), "run", "-m", "taxi_assets.definitions"], None, None),
        "daemon -w": ([str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)], None, None),
        "code server": (code_server, None, "daemon on the code server"),
        "daemon on the code server": (
            [str(BIN / "dagster-daemon"), "run", "-w", str(grpc_workspace)], "code server", "code server"
        ),
        "dg dev": ([str(BIN / "dg"), "dev", "--log-level", "warning", "-h", "127.0.0.1", "-p", str(port)], None, None),
    }
    health = [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(grpc_port)]
    processes: dict[str, DagsterProcess] = {}
    try:
        for name, (args, shares_instance_of, _) in starts.items():
            root = tmp_path / name.replace(" ", "_")
            root.mkdir()
            env = processes[shares_instance_of].env if shares_instance_of else _env(root)
            if name == "dg dev":  # as `make dev` runs it: this venv active
                env = {**env, "VIRTUAL_ENV": str(BIN.parent), "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
            if name == "daemon on the code server":  # deploy/: the daemon starts once the server answers
                wait_until(lambda: subprocess.run(health, capture_output=True).returncode == 0, 300, interval=2,
                           what=f"the code server\n{processes['code server'].log_tail()}")  # fmt: skip
            processes[name] = DagsterProcess(args, env, REPO if name == "dg dev" else root, root / "log").start()

        wait_for_webserver(processes["dg dev"], port, timeout=300)
        started = time.monotonic()

        def ticked() -> bool:
            for name, process in processes.items():
                if process.process.poll() is not None:
                    raise AssertionError(f"{name} exited:\n{process.log_tail()}")
            return time.monotonic() - started > WATCH_SECONDS and all(
                processes[shown_by or name].log.read_text(errors="replace").count(TICK_LINE) >= TICKS
                for name, (_, _, shown_by) in starts.items()
                if name != "code server"
            )

        wait_until(ticked, 600, interval=2, what=f"{TICKS} automation ticks of every daemon in {WATCH_SECONDS}s")
    finally:
        for process in reversed(processes.values()):  # the code server after its daemon
            process.stop()

    for name, process in processes.items():
        warnings = warnings_in(process.log)
        repeated = {message: count for message, count in warnings.items() if count > 1}
        assert not repeated, f"{name} repeats warnings: {repeated}"
        assert "taxi_assets.definitions" not in " ".join(warnings), f"{name}: {warnings}"
    assert not warnings_in(processes["dg dev"].log), processes["dg dev"].log_tail()
