"""Every registry model at its defaults on a yellow-sized month (3.4 million rides).

The month is synthesized from the shared green files (``_models.build("yellow")``: 3.4 M
yellow-schema rides in 2023-03, split at the 16th: ~1.64 M rides train, ~1.61 M validate) and
stored as the pipeline's ``training_set`` ``.npz``. Then each model runs in its own fresh
process (ML core only, no Dagster, no MLflow), as its asset's step would:

* load the training set (outside the clock: the step's input loading is not training);
* ``tune(spec, ts, spec.max_evaluations, 42)``: the registry defaults (quick space, its
  evaluations, its training cap ``max_train_rows`` drawn with the seed, its representation,
  early stopping and refit), timed: wall and CPU seconds;
* score the 1.6 M validation rides once more (what the leaderboard does), timed;
* pickle the predictor (what the IO manager and MLflow store), its size;
* peak RSS of the whole process (``VmHWM``): the step's memory high-water mark.

Targets (issue 13): every model finishes; no step over 4 GiB; the whole graph under 20
minutes on two cores (the models are most of it: ingestion and preparation of such a month
take ~6 s, ``yellow_month.py``).

    python benchmarks/yellow_models.py [--models all|name,name] [--rows 3400000] [--timeout 1800]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import _common as c  # the script's folder is on sys.path when run as a script
import _models as m

SCRIPT = Path(__file__).resolve()
SEED = 42
STEP_LIMIT_MIB = 4096
GRAPH_TARGET_S = 20 * 60


def run_case(args) -> None:
    c.preload_libraries()
    if args.case == "build":
        c.emit(**m.build("yellow", Path(args.out), yellow_rows=args.rows))
        return
    import io

    import hyperopt  # noqa: F401  (imports outside the clock)
    import joblib

    from taxi_assets.ml.dataset import load_training_set
    from taxi_assets.ml.estimators import get_estimator
    from taxi_assets.ml.tuning import tune

    spec = get_estimator(args.model)
    ts = load_training_set(Path(args.input[0]))
    rss_loaded = c.current_rss_mib()

    def on_trial(trial) -> None:
        c.progress(trial=trial.index, of=trial.total, seconds=round(trial.seconds, 1), rmse=round(trial.loss, 4))

    with c.Clock() as clock:
        result = tune(spec, ts, spec.max_evaluations, SEED, on_trial=on_trial)
    started = time.perf_counter()
    result.predictor.predict_training_set(ts, "val")
    score_seconds = time.perf_counter() - started
    buffer = io.BytesIO()
    joblib.dump(result.predictor, buffer)
    c.emit(**clock.fields(), model=spec.name, evaluations=spec.max_evaluations, rmse=result.metrics["rmse"],
           baseline_rmse=result.baseline_rmse, train_rides=result.training["train_rides"],
           window_rides=result.training["window_rides"], representation=result.training["representation"],
           trial_seconds=[round(t.seconds, 1) for t in result.trials], refit_seconds=result.training.get("refit_seconds"),
           score_seconds=score_seconds, pickle_mib=len(buffer.getvalue()) / c.MIB, rss_loaded_mib=round(rss_loaded, 1))  # fmt: skip


def _options(parser) -> None:
    parser.add_argument("--models", default="all")
    parser.add_argument("--rows", type=int, default=m.YELLOW_ROWS)
    parser.add_argument("--timeout", type=float, default=1800.0, help="stop one model after this long")
    parser.add_argument("--model", help="internal: model of a case")


def main(argv=None) -> int:
    args = c.parse_case_args(argv, _options)
    if args.case:
        run_case(args)
        return 0
    from taxi_assets.ml.estimators import ESTIMATORS

    names = list(ESTIMATORS) if args.models == "all" else [n.strip() for n in args.models.split(",") if n.strip()]
    print(f"yellow_models: {args.rows:,} synthetic yellow rides; {c.machine()}")
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-yellow-models-") as tmp:
        path = Path(tmp) / "yellow.npz"
        facts = c.run_case(SCRIPT, "build", "--rows", str(args.rows), "--out", str(path))
        print(f"{m.window_label('yellow', facts)}; built in {facts['wall_seconds']:.1f} s (peak {facts['peak_rss_mib']:.0f} MiB), "
              f"{facts['stored_mib']} MiB stored")  # fmt: skip
        for name in names:
            r = c.run_case(SCRIPT, "model", "--model", name, "--input", str(path), timeout=args.timeout)
            results[name] = r
            if r.get("timed_out"):
                done = r.get("progress", [])
                row = [name, "-", "-", "-", f"> {args.timeout:.0f} (stopped)", "n/a", r.get("peak_rss_mib") or "n/a", "n/a",
                       f"{min(p['rmse'] for p in done):.3f} ({len(done)} trials done)" if done else "n/a", "n/a", "n/a"]
            else:
                row = [name, r["representation"], f"{r['train_rides']:,}", r["evaluations"], round(r["wall_seconds"], 1),
                       round(r["cpu_seconds"], 1), r["peak_rss_mib"], round(r["score_seconds"], 1), f"{r['rmse']:.3f}",
                       round(r["pickle_mib"], 1), c.load_range([r])]
            print("  " + " | ".join(str(v) for v in row), flush=True)
            rows.append(row)
    c.print_table(["model", "representation", "rides trained", "evaluations", "tune wall s", "CPU s", "peak RSS MiB",
                   "score val s", "val RMSE", "pickle MiB", "load avg (1 min)"], rows,
                  title=f"Every model at its defaults on a yellow-sized month ({facts['train'][0]:,} training rides)")  # fmt: skip
    done = [r for r in results.values() if not r.get("timed_out")]
    total = facts["wall_seconds"] + sum(r["wall_seconds"] + r["score_seconds"] for r in done)
    peak = max([facts["peak_rss_mib"]] + [r["peak_rss_mib"] or 0 for r in results.values()])
    print(f"\nbaseline RMSE {done[0]['baseline_rmse']:.3f}" if done else "")
    print(f"training set + every model + validation scoring: {total:.0f} s (target for the whole graph: < {GRAPH_TARGET_S} s); "
          f"largest step peak RSS {peak:.0f} MiB (limit {STEP_LIMIT_MIB} MiB); "
          f"{'all models finished' if len(done) == len(results) else f'{len(results) - len(done)} model(s) stopped'}")  # fmt: skip
    return 0 if len(done) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
