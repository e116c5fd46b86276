"""One booster over the twelve-month green window, trained across two Dask workers vs on one
process (``taxi_assets.ml.distributed``).

    python benchmarks/distributed_training.py                      # xgboost and lightgbm (~6 min)
    python benchmarks/distributed_training.py --models xgboost --rounds 150

The window is 2023-02..2024-01 (742,292 training rides after the split; 2024-02 validates),
cleaned and stored as the pipeline stores ``cleaned_trips`` (one parquet per month) before the
clock starts; the training set is built once. Each estimator runs the same seeded search
(one trial, the same hyperparameters) three ways:

* ``one process, 2 threads``: :func:`taxi_assets.ml.tuning.tune` with every core;
* ``one process, 1 thread``: the same with ``n_jobs=1`` (what each worker below has);
* ``2 workers x 1 thread``: :func:`taxi_assets.ml.tuning.tune` with `taxi_assets.ml.distributed.dask_backend` on a
  ``LocalCluster`` of two worker processes, each reading its months.

Reported: validation RMSE (and its gap to one process), wall seconds of the search and refit,
CPU seconds (the driver's own plus, for Dask, both workers' and the scheduler's, from
``getrusage`` in each process), peak RSS of the driver and of each worker, and the 1-minute
load average. On two cores the cluster cannot be faster than one process using both: it does
the same work plus the per-round exchange of histograms between workers; the point of the
Dask path is a window too big for one machine's memory or time, on several machines.

Figures of 2026-12-02 (``--rounds 100``; other work ran at the same time, load in the last column):

| model | how | RMSE | vs one process | wall s | CPU s | peak RSS MiB | load avg |
|---|---|---|---|---|---|---|---|
| xgboost | one process, 2 thread(s) | 4.5906 |  | 19.0 | 29.4 | driver 1051 | 0.91 |
| xgboost | one process, 1 thread(s) | 4.5906 |  | 33.5 | 28.1 | driver 1110 | 1.69 |
| xgboost | 2 workers x 1 thread (Dask) | 4.6169 | +0.57% | 116.0 | 88.4 | driver 1158, workers 670 / 738 | 7.73 |
| lightgbm | one process, 2 thread(s) | 4.5275 |  | 41.7 | 33.7 | driver 1158 | 6.50 |
| lightgbm | one process, 1 thread(s) | 4.5275 |  | 61.0 | 34.0 | driver 1158 | 9.12 |
| lightgbm | 2 workers x 1 thread (Dask) | 4.5314 | +0.09% | 57.9 | 53.3 | driver 1158, workers 670 / 738 | 8.96 |

Peak RSS is a high-water mark per process: the driver's includes building the window's
training set, the workers' both models (one cluster for the whole script).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rusage_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="xgboost,lightgbm")
    parser.add_argument("--rounds", type=int, default=100, help="num_boost_round of every fit")
    args = parser.parse_args()

    os.environ.setdefault("TAXI_IGNORE_DOTENV", "1")
    import dagster as dg
    import pandas as pd
    from distributed import Client, LocalCluster

    from support.data import cleaned_month
    from taxi_assets import months
    from taxi_assets.defs.resources.io_manager import TaxiIOManager
    from taxi_assets.ml.dataset import build_training_set, pool_months
    from taxi_assets.ml.distributed import dask_backend
    from taxi_assets.ml.estimators import ESTIMATORS
    from taxi_assets.ml.tuning import tune

    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    month = "2024-02"
    window = months.previous_months(month, 12) + [month]
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        io = TaxiIOManager(data_root=tmp)
        frames = []
        for m in window:
            frame = cleaned_month(m)
            io.write(dg.AssetKey("cleaned_trips"), m, frame)
            frames.append(frame)
        ts = build_training_set(pool_months(frames), pd.Timestamp(f"{month}-01"), info={"months": window})
        del frames
        sources = {m: str(io.path_for(dg.AssetKey("cleaned_trips"), m)) for m in window}
        print(f"window {window[0]}..{window[-2]} -> {month}: {ts.X_train.shape[0]:,} training rides, "
              f"{ts.X_val.shape[0]:,} validation rides; num_boost_round={args.rounds}, 1 trial, seed 5\n")  # fmt: skip
        rows = []
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0",
                          silence_logs=40) as cluster, Client(cluster) as client:  # fmt: skip
            client.wait_for_workers(2, timeout=60)
            for name in args.models.split(","):
                spec, options = ESTIMATORS[name], {"num_boost_round": args.rounds}
                single = {}
                for threads in (2, 1):
                    cpu, t0 = rusage_cpu(), time.perf_counter()
                    result = tune(spec, ts, 1, 5, n_jobs=threads, **options)
                    single[threads] = result
                    rows.append((name, f"one process, {threads} thread(s)", result.metrics["rmse"], None,
                                 time.perf_counter() - t0, rusage_cpu() - cpu, f"driver {hwm_mib():.0f}", os.getloadavg()[0]))  # fmt: skip
                before = client.run(rusage_cpu)
                scheduler_before = client.run_on_scheduler(rusage_cpu)
                cpu, t0 = rusage_cpu(), time.perf_counter()
                spread = tune(spec, ts, 1, 5, backend=dask_backend(client, sources), **options)
                wall = time.perf_counter() - t0
                after = client.run(rusage_cpu)
                workers_cpu = sum(after[w] - before[w] for w in after) + client.run_on_scheduler(rusage_cpu) - scheduler_before
                peaks = client.run(hwm_mib)
                assert spread.best_params == single[1].best_params
                gap = spread.metrics["rmse"] / single[2].metrics["rmse"] - 1
                rows.append((name, "2 workers x 1 thread (Dask)", spread.metrics["rmse"], gap, wall,
                             rusage_cpu() - cpu + workers_cpu,
                             f"driver {hwm_mib():.0f}, workers " + " / ".join(f"{p:.0f}" for p in peaks.values()),
                             os.getloadavg()[0]))  # fmt: skip
    print("| model | how | RMSE | vs one process | wall s | CPU s | peak RSS MiB | load avg |")
    print("|---|---|---|---|---|---|---|---|")
    for name, how, rmse, gap, wall, cpu, memory, avg in rows:
        gap_text = "" if gap is None else f"{gap:+.2%}"
        print(f"| {name} | {how} | {rmse:.4f} | {gap_text} | {wall:.1f} | {cpu:.1f} | {memory} | {avg:.2f} |")


if __name__ == "__main__":
    main()
