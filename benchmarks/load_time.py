"""How long the code location takes to load, and until ``dagster dev`` answers.

Each command runs in a fresh interpreter (median of ``--runs``):

* ``python -c "import dagster"`` - the floor any Dagster code location pays;
* ``python -c "import taxi_assets"`` - loads the ``Definitions`` (every asset module);
* ``dagster definitions validate -m taxi_assets`` - what CI and deploys run;

then ``dagster dev -m taxi_assets`` is started in its own session (free port on 127.0.0.1,
``DAGSTER_HOME`` in a temp folder) and ``/server_info`` is polled until it answers; only that
process group is stopped afterwards. Finally the heavy libraries present after
``import taxi_assets`` and the slowest ``taxi_assets`` modules (``python -X importtime``)
are listed, so a regression names its module.

    python benchmarks/load_time.py [--runs 5] [--dev-runs 2]

Target: ``import taxi_assets`` under 3 s beyond bare ``import dagster``.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import _common as c  # the script's folder is on sys.path when run as a script

TARGET_EXTRA_S = 3.0
HEAVY = ["sklearn", "scipy", "scipy.sparse", "scipy.stats", "mlflow", "xgboost", "hyperopt", "matplotlib", "pandas", "pyarrow"]
BIN = Path(sys.executable).parent


def _env(home: Path) -> dict:
    """Outputs and the Dagster instance in a temp folder: loading must not touch the project."""
    env = dict(os.environ)
    env.update(DAGSTER_HOME=str(home / "dagster_home"), TAXI_DATA_ROOT=str(home / "data"), PYTHONWARNINGS="ignore")
    if (c.SHARED_DATA / "green_tripdata_2024-01.parquet").exists():
        env.setdefault("TAXI_DATA_SOURCE", str(c.SHARED_DATA))
    (home / "dagster_home").mkdir(parents=True, exist_ok=True)
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(command: list[str], env: dict, runs: int) -> dict:
    """Wall and CPU seconds (user + system of the finished child) of ``runs`` fresh runs.

    CPU seconds are read from ``RUSAGE_CHILDREN`` before and after each run (runs are
    sequential, so the difference is that child's): on a shared machine they move much less
    than wall seconds.
    """
    walls, cpus, loads = [], [], []
    for _ in range(runs):
        cpu_before = _children_cpu()
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=c.REPO_ROOT, check=False)
        walls.append(time.perf_counter() - started)
        cpus.append(_children_cpu() - cpu_before)
        loads.append(os.getloadavg()[0])
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return {"median": statistics.median(walls), "min": min(walls), "max": max(walls), "cpu": statistics.median(cpus),
            "load": f"{min(loads):.1f}..{max(loads):.1f}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


EMPTY_LOCATION = "import dagster as dg\n\ndefs = dg.Definitions()\n"


def time_dagster_dev(env: dict, target: list[str] | None = None, timeout: float = 180.0) -> dict:
    """Seconds from launching ``dagster dev`` until ``/server_info`` answers HTTP 200.

    ``target`` is the code location option (default ``-m taxi_assets``); the empty location
    (``-f empty_location.py``) gives the floor ``dagster dev`` itself needs on this machine.
    """
    port = free_port()
    command = [str(BIN / "dagster"), "dev", *(target or ["-m", "taxi_assets"]), "-h", "127.0.0.1", "-p", str(port)]
    log = tempfile.TemporaryFile()
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=c.REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    answered, info = None, {}
    try:
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"dagster dev exited with {process.returncode}:\n{log.read().decode()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
                    if response.status == 200:
                        answered = time.perf_counter() - started
                        info = json.loads(response.read())
                        break
            except OSError:
                time.sleep(0.1)
        if answered is None:
            raise RuntimeError(f"dagster dev did not answer on port {port} within {timeout:.0f} s")
        # The webserver answers before the code location is loaded; wait for the location too.
        location_loaded = _wait_for_location(port, started, timeout)
    finally:
        _stop_group(process)
        log.close()
    return {"server_info": answered, "location_loaded": location_loaded, "version": info.get("dagster_webserver_version"),
            "load": os.getloadavg()[0]}


def _wait_for_location(port: int, started: float, timeout: float) -> float | None:
    """Seconds until GraphQL reports the ``taxi_assets`` location loaded (None if it never does)."""
    query = json.dumps({"query": "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                                 "locationOrLoadError { __typename } } } } }"}).encode()
    while time.perf_counter() - started < timeout:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=query,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                entries = json.loads(response.read())["data"]["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                if any(e["locationOrLoadError"]["__typename"] != "RepositoryLocation" for e in entries):
                    raise RuntimeError(f"the code location failed to load: {entries}")
                return time.perf_counter() - started
        except (OSError, KeyError, TypeError):
            pass
        time.sleep(0.1)
    return None


def _stop_group(process: subprocess.Popen) -> None:
    """Stop the ``dagster dev`` session we started (its process group only), politely first."""
    if process.poll() is not None:
        return
    pgid = os.getpgid(process.pid)
    os.killpg(pgid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        process.wait(timeout=10)
    # dagster dev's children (webserver, daemon, code server) share the group; make sure none lingers.
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def import_report(env: dict) -> tuple[list[str], list[tuple[str, float]]]:
    """Heavy libraries loaded by ``import taxi_assets`` and its slowest own modules (cumulative s)."""
    probe = ("import sys, json, taxi_assets; "
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    heavy = json.loads(done.stdout.strip().splitlines()[-1])
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import taxi_assets"], env=env,
                          capture_output=True, text=True, check=True)
    own = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:"):].split("|")]
        if parts[2].lstrip().startswith("taxi_assets") and parts[1].isdigit():
            own.append((parts[2].strip(), int(parts[1]) / 1e6))
    own.sort(key=lambda item: -item[1])
    return heavy, own[:10]


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dev-runs", type=int, default=2)
    args = parser.parse_args(argv)
    print(f"load_time: {c.machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        env = _env(Path(tmp))
        figures = {
            'python -c "import dagster"': time_command([sys.executable, "-c", "import dagster"], env, args.runs),
            'python -c "import taxi_assets"': time_command([sys.executable, "-c", "import taxi_assets"], env, args.runs),
            "dagster definitions validate -m taxi_assets": time_command(
                [str(BIN / "dagster"), "definitions", "validate", "-m", "taxi_assets"], env, args.runs),
        }
        empty = Path(tmp) / "empty_location.py"
        empty.write_text(EMPTY_LOCATION)
        figures["dagster definitions validate -f empty_location.py (CLI floor)"] = time_command(
            [str(BIN / "dagster"), "definitions", "validate", "-f", str(empty)], env, args.runs)
        dev, dev_empty = [], []
        for _ in range(args.dev_runs):  # interleaved, so background load hits both alike
            dev.append(time_dagster_dev(env))
            dev_empty.append(time_dagster_dev(env, ["-f", str(empty)]))
        heavy, own = import_report(env)
    base = figures['python -c "import dagster"']
    rows = [[name, f["median"], f"{f['min']:.2f}..{f['max']:.2f}", f["median"] - base["median"], f["cpu"],
             f["cpu"] - base["cpu"], f["load"]] for name, f in figures.items()]
    http = statistics.median(d["server_info"] for d in dev)
    loaded = [d["location_loaded"] for d in dev if d["location_loaded"] is not None]
    dev_load = f"{min(d['load'] for d in dev):.1f}..{max(d['load'] for d in dev):.1f}"
    rows.append([f"dagster dev: /server_info answers (median of {args.dev_runs})", http,
                 f"{min(d['server_info'] for d in dev):.2f}..{max(d['server_info'] for d in dev):.2f}", "-", "-", "-",
                 dev_load])
    if loaded:
        rows.append([f"dagster dev: taxi_assets location LOADED (median of {len(loaded)})", statistics.median(loaded),
                     f"{min(loaded):.2f}..{max(loaded):.2f}", "-", "-", "-", dev_load])
    floor = [d["location_loaded"] for d in dev_empty if d["location_loaded"] is not None]
    if floor:
        rows.append([f"dagster dev: empty location LOADED (floor, median of {len(floor)})", statistics.median(floor),
                     f"{min(floor):.2f}..{max(floor):.2f}", "-", "-", "-",
                     f"{min(d['load'] for d in dev_empty):.1f}..{max(d['load'] for d in dev_empty):.1f}"])
    c.print_table(["command", f"wall s (median of {args.runs})", "min..max s", "beyond import dagster s",
                   "CPU s (median)", "CPU beyond import dagster s", "load avg (1 min)"], rows, title="Load time")
    ours = figures['python -c "import taxi_assets"']
    extra, extra_cpu = ours["median"] - base["median"], ours["cpu"] - base["cpu"]
    print(f"\ncode location load beyond import dagster: {extra:.2f} s wall, {extra_cpu:.2f} s CPU "
          f"(target < {TARGET_EXTRA_S:.0f} s: {'met' if extra < TARGET_EXTRA_S else 'NOT met'})")
    print(f"heavy libraries loaded by import taxi_assets: {', '.join(heavy) or 'none'}")
    c.print_table(["taxi_assets module", "cumulative import s"], own, title="Slowest taxi_assets imports (-X importtime)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
