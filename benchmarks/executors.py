"""Executors compared on this machine: a month's graph with the multiprocess executor and on a
Dask cluster (``TAXI_EXECUTOR=dask``), and how the per-step cost grows with the steps of a run.

    python benchmarks/executors.py                 # both parts (~6 min on 2 cores)
    python benchmarks/executors.py --part graph    # the month's graph only
    python benchmarks/executors.py --part steps --steps 1,8,32
    python benchmarks/executors.py --part start    # multiprocess steps: spawn vs forkserver

Part "graph": February 2024's graph as ``taxi_assets_tests/defs/test_executors.py`` runs it (raw and cleaned
trips, the training set, the eight models with one trial each, the leaderboard, the
champion), launched with ``dagster asset materialize`` exactly as a user would: with the
multiprocess executor at its defaults (two steps at once, one model at a time, each fit on
every core), with the multiprocess executor shaped like the cluster (two fits at once, one
thread each: ``TAXI_MAX_CONCURRENT_MODEL_STEPS=2``, ``TAXI_MAX_THREADS=1``), and on a Dask
cluster the script starts on 127.0.0.1 (``dask scheduler`` and two ``dask worker --nthreads 1``
processes, each fitting on one thread), joined through ``TAXI_DASK_ADDRESS``. January's raw and cleaned
trips are prepared before the clock starts. Reported: wall seconds of the run; CPU seconds
of everything the run used (the CLI and its step processes; for Dask also the workers' and
the scheduler's CPU during the run, read from ``/proc``); peak memory (multiprocess: the
largest process, i.e. the biggest step; Dask: each worker's high-water mark ``VmHWM``, which
includes the steps it ran one after another).

Part "steps": a job of N no-op steps (``benchmarks/_noop_steps.py``) with each executor; the
per-step cost is the slope ``(wall(N) - wall(1)) / (N - 1)``: the part of a run that grows
with its steps (a process start and code-location import per step for multiprocess; a task
round trip and a job reconstruction per step on Dask).

Every line gives the 1-minute load average when the case finished: the machine is shared.

Figures of 2026-12-02 (load 2-3.7 on 2 cores):

| executor | wall s | CPU s | peak memory (MiB) | load avg |
|---|---|---|---|---|
| multiprocess defaults (2 steps at once, 1 model fit at a time on 2 threads) | 200.3 | 159.8 | largest process 410 | 3.42 |
| multiprocess, 2 fits at once x 1 thread | 175.8 | 156.5 | largest process 417 | 3.71 |
| dask, 2 workers x 1 thread (existing cluster) | 60.6 | 58.3 | workers 523 / 702 (idle 60); run worker 250 | 2.68 |

| executor | N=1 wall s | N=8 wall s | N=32 wall s | per extra step s | load avg |
|---|---|---|---|---|---|
| multiprocess | 6.4 | 15.7 | 52.7 | 1.49 | 2.14..2.55 |
| dask | 11.0 | 9.2 | 11.0 | 0.00 (below the noise) | 1.88..2.06 |

The graph's CPU is two thirds process start-up under multiprocess: each of its 14 step
processes imports the code location (dagster, pandas, sklearn, mlflow: ~6 CPU s), which a
Dask worker pays once. A Dask run pays instead a fixed ~9-11 s (CLI start, joining the
scheduler, one job reconstruction per worker); multiprocess starts faster for a 1-step run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import REPO_ROOT, SHARED_DATA  # noqa: E402

BIN = Path(sys.executable).parent
MONTH, PREVIOUS = "2024-02", "2024-01"
MODELS = ["linear_regression", "lasso", "linear_svr", "extra_trees", "gradient_boosting", "random_forest", "xgboost", "lightgbm"]
GRAPH = ["raw_trips", "cleaned_trips", "training_set", *MODELS, "model_leaderboard", "champion_model"]
# One trial per model, seeded where the quick space's first draw is cheap (10 trees, shallow
# boosters, few lasso iterations), and short boosters: the point is where steps run.
SEEDS = {"linear_regression": 11, "lasso": 48, "linear_svr": 59, "extra_trees": 54, "gradient_boosting": 13,
         "random_forest": 13, "xgboost": 3, "lightgbm": 35}  # fmt: skip
QUICK = {"ops": {name: {"config": {"max_evaluations": 1, "random_state": seed}} for name, seed in SEEDS.items()}}
QUICK["ops"]["xgboost"]["config"]["num_boost_round"] = 40
QUICK["ops"]["lightgbm"]["config"]["num_boost_round"] = 40
TICKS = os.sysconf("SC_CLK_TCK")


def load() -> float:
    return round(os.getloadavg()[0], 2)


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def proc_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def timed(args: list[str], env: dict, cwd: Path) -> dict:
    """Run a command; wall, and CPU / max RSS of it and every descendant it waited for
    (measured in a fresh wrapper process, so earlier commands do not count)."""
    wrapper = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "done = subprocess.run(json.loads(sys.argv[1]), capture_output=True, text=True)\n"
        "wall = time.perf_counter() - t\n"
        "r = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'rc': done.returncode, 'wall': wall, 'cpu': r.ru_utime + r.ru_stime,"
        " 'maxrss_mib': r.ru_maxrss / 1024, 'tail': (done.stdout + done.stderr)[-3000:]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, json.dumps(args)], env=env, cwd=cwd, capture_output=True,
                         text=True, check=True)  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(args[:4])} failed:\n{result['tail']}")
    return result


def materialize(env: dict, cwd: Path, select: list[str], partition: str, config: dict | None = None) -> dict:
    args = [str(BIN / "dagster"), "asset", "materialize", "-m", "taxi_assets.definitions", "--select", ",".join(select),
            "--partition", partition] + (["--config-json", json.dumps(config)] if config else [])  # fmt: skip
    return timed(args, env, cwd)


class Cluster:
    """``dask scheduler`` + ``n`` single-thread ``dask worker --no-nanny`` processes on 127.0.0.1."""

    def __init__(self, tmp: Path, env: dict, workers: int = 2):
        self.tmp, self.env, self.n = tmp, env, workers
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Cluster:
        file = self.tmp / "scheduler.json"
        log = open(self.tmp / "dask.log", "w")
        self.procs.append(subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
             "--scheduler-file", str(file)], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip
        deadline = time.monotonic() + 60
        while not (file.is_file() and json.loads(file.read_text() or "{}").get("address")):
            if time.monotonic() > deadline:
                raise TimeoutError("dask scheduler did not start")
            time.sleep(0.3)
        self.address = json.loads(file.read_text())["address"]
        for i in range(self.n):
            self.procs.append(subprocess.Popen(
                [str(BIN / "dask"), "worker", self.address, "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                 "--no-dashboard", "--name", f"w{i}"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))  # fmt: skip
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            client.wait_for_workers(self.n, timeout=120)
        return self

    @property
    def worker_pids(self) -> list[int]:
        return [p.pid for p in self.procs[1:]]

    @property
    def all_pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def __exit__(self, *exc) -> None:
        for process in reversed(self.procs):  # only the processes started here, by pid
            process.terminate()
        for process in self.procs:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def base_env(tmp: Path, data_root: Path, home: Path) -> dict:
    env = dict(os.environ)
    for name in ("TAXI_EXECUTOR", "TAXI_DASK_ADDRESS", "MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_LOCATION", "TAXI_MAX_THREADS"):
        env.pop(name, None)
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env.update(DAGSTER_HOME=str(home), TAXI_DATA_ROOT=str(data_root), TAXI_DATA_SOURCE=str(SHARED_DATA),
               TAXI_IGNORE_DOTENV="1", PYTHONPATH=str(REPO_ROOT))  # fmt: skip
    return env


def graph_part(tmp: Path) -> None:
    print(f"## A month's graph ({MONTH}: {len(GRAPH)} steps, 8 models x 1 trial)\n")
    rows = []
    # Multiprocess: the executor's defaults on this machine.
    env = dict(base_env(tmp, tmp / "mp-data", tmp / "mp-home"), TAXI_EXECUTOR="multiprocess")
    materialize(dict(env, TAXI_EXECUTOR="in_process"), tmp, ["raw_trips", "cleaned_trips"], PREVIOUS)
    r = materialize(env, tmp, GRAPH, MONTH, QUICK)
    rows.append(("multiprocess defaults (2 steps at once, 1 model fit at a time on 2 threads)", r["wall"], r["cpu"],
                 f"largest process {r['maxrss_mib']:.0f}", load()))  # fmt: skip
    # The same executor shaped like the cluster below: two fits at once, one thread each.
    shaped = dict(env, TAXI_MAX_CONCURRENT_MODEL_STEPS="2", TAXI_MAX_THREADS="1")
    r = materialize(shaped, tmp, GRAPH, MONTH, QUICK)
    rows.append(("multiprocess, 2 fits at once x 1 thread", r["wall"], r["cpu"], f"largest process {r['maxrss_mib']:.0f}",
                 load()))  # fmt: skip
    # Dask: an existing cluster of two single-thread workers.
    dask_env = dict(base_env(tmp, tmp / "dask-data", tmp / "dask-home"), TAXI_MAX_THREADS="1")
    with Cluster(tmp, dask_env) as cluster:
        run_env = dict(dask_env, TAXI_EXECUTOR="dask", TAXI_DASK_ADDRESS=cluster.address)
        materialize(dict(run_env, TAXI_EXECUTOR="in_process"), tmp, ["raw_trips", "cleaned_trips"], PREVIOUS)
        before = {pid: proc_cpu(pid) for pid in cluster.all_pids}
        base_hwm = {pid: proc_hwm_mib(pid) for pid in cluster.worker_pids}
        r = materialize(run_env, tmp, GRAPH, MONTH, QUICK)
        cluster_cpu = sum(proc_cpu(pid) - before[pid] for pid in cluster.all_pids)
        hwm = [proc_hwm_mib(pid) for pid in cluster.worker_pids]
    rows.append(("dask, 2 workers x 1 thread (existing cluster)", r["wall"], r["cpu"] + cluster_cpu,
                 "workers " + " / ".join(f"{h:.0f}" for h in hwm) + f" (idle {min(base_hwm.values()):.0f}); run worker {r['maxrss_mib']:.0f}",
                 load()))  # fmt: skip
    print("| executor | wall s | CPU s | peak memory (MiB) | load avg |\n|---|---|---|---|---|")
    for name, wall, cpu, memory, avg in rows:
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {memory} | {avg} |")
    print()


def start_part(tmp: Path) -> None:
    """The month's graph with the multiprocess executor's two step start methods, one after
    the other in one run: ``spawn`` (a fresh interpreter per step, before) and ``forkserver``
    (steps forked from a process that imported the code location once, now)."""
    print(f"## Step start method, multiprocess defaults ({MONTH}: {len(GRAPH)} steps, 8 models x 1 trial)\n")
    rows = []
    for method in ("spawn", "forkserver"):
        env = dict(base_env(tmp, tmp / f"{method}-data", tmp / f"{method}-home"), TAXI_EXECUTOR="multiprocess",
                   TAXI_STEP_START_METHOD=method)  # fmt: skip
        materialize(dict(env, TAXI_EXECUTOR="in_process"), tmp, ["raw_trips", "cleaned_trips"], PREVIOUS)
        r = materialize(env, tmp, GRAPH, MONTH, QUICK)
        rows.append((method, r["wall"], r["cpu"], r["maxrss_mib"], load()))
    print("| start method | wall s | CPU s | largest process MiB | load avg |\n|---|---|---|---|---|")
    for name, wall, cpu, memory, avg in rows:
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {memory:.0f} | {avg} |")
    # CPU and memory are those of the processes the CLI waits for: forked steps are the
    # forkserver's children, so for forkserver they undercount; compare the wall seconds.
    print(f"\nforkserver / spawn: wall x{rows[1][1] / rows[0][1]:.2f} (CPU and memory columns undercount forked steps)\n")


def steps_part(tmp: Path, counts: list[int]) -> None:
    print("## Per-step cost (a job of N no-op steps)\n")
    def job(n: int) -> list[str]:
        return [str(BIN / "dagster"), "job", "execute", "-f", str(REPO_ROOT / "benchmarks" / "_noop_steps.py"),
                "-j", f"noop_steps_{n}"]  # fmt: skip

    results: dict[str, dict[int, tuple[float, float]]] = {"multiprocess": {}, "dask": {}}
    env = base_env(tmp, tmp / "steps-data", tmp / "steps-home")
    for n in counts:
        r = timed(job(n), dict(env, TAXI_EXECUTOR="multiprocess"), tmp)
        results["multiprocess"][n] = (r["wall"], load())
    with Cluster(tmp, env) as cluster:
        for n in counts:
            r = timed(job(n), dict(env, TAXI_EXECUTOR="dask", TAXI_DASK_ADDRESS=cluster.address), tmp)
            results["dask"][n] = (r["wall"], load())
    print("| executor | " + " | ".join(f"N={n} wall s" for n in counts) + " | per extra step s | load avg |")
    print("|---|" + "---|" * (len(counts) + 2))
    for name, by_n in results.items():
        first, last = counts[0], counts[-1]
        slope = (by_n[last][0] - by_n[first][0]) / (last - first) if last > first else float("nan")
        loads = [v[1] for v in by_n.values()]
        print(f"| {name} | " + " | ".join(f"{by_n[n][0]:.1f}" for n in counts) + f" | {slope:.2f} | {min(loads)}..{max(loads)} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["graph", "steps", "start", "all"], default="all")
    parser.add_argument("--steps", default="1,8,32", help="step counts of the no-op job (1, 2, 4, 8, 16, 32 or 64)")
    args = parser.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    with tempfile.TemporaryDirectory(prefix="bench-executors-") as tmp:
        if args.part in ("graph", "all"):
            graph_part(Path(tmp))
        if args.part in ("steps", "all"):
            steps_part(Path(tmp), [int(n) for n in args.steps.split(",")])
        if args.part in ("start", "all"):
            start_part(Path(tmp))


if __name__ == "__main__":
    main()
