"""A twelve-month training window: building the training set and training on it.

``TAXI_TRAIN_MONTHS=12`` on the shared green data: ``training_set[2024-02]`` trains on
2023-02..2024-01 and validates on 2024-02. Each step runs in a fresh process:

* ``build``: read the thirteen months (five columns each), clean, pool, split at 2024-02-01
  and vectorize - what the ``cleaned_trips`` partitions plus ``training_set`` compute;
* ``model NAME``: ``taxi_assets.ml.tuning.tune`` of one estimator at its defaults (its
  ``max_evaluations``, the ``quick`` profile, all cores) on that training set, stopped after
  ``--model-timeout`` seconds;
* the capped run: the slowest model (``--capped xgboost``) with ``max_evaluations=1`` and
  ``num_boost_round=200`` (``--capped-evaluations``, ``--capped-rounds``), so the twelve-month
  window has a complete figure even where the defaults take longer than the timeout.

Which models are the fastest and slowest is measured, not assumed: with ``--models auto``
all estimators are first tuned on the one-month window (train 2024-01, validate 2024-02),
and the fastest and slowest of that survey are then tuned on the twelve months. A comma list
names the models instead (``--models linear_regression``); ``--capped ''`` skips the capped run.

    python benchmarks/train_window.py [--models auto|name,name] [--capped xgboost] [--random-state 42]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import _common as c  # the script's folder is on sys.path when run as a script

SCRIPT = Path(__file__).resolve()
VALIDATION_MONTH = "2024-02"


def window(train_months: int) -> list[str]:
    import pandas as pd

    end = pd.Period(VALIDATION_MONTH, freq="M")
    return [str(end - i) for i in range(train_months, -1, -1)]


def run_case(args) -> None:
    c.preload_libraries()
    from taxi_assets.ml.dataset import load_training_set, save_training_set

    if args.case == "build":
        import pandas as pd

        from taxi_assets.ml.cleaning import clean_trips
        from taxi_assets.ml.dataset import build_training_set, pool_months

        months = window(args.train_months)
        with c.Clock() as clock:
            cleaned = [clean_trips(c.read_needed(c.green_path(m), "green"))[0] for m in months]
            pooled = pool_months(cleaned)  # as the training_set asset pools months
            ts = build_training_set(pooled, pd.Timestamp(f"{VALIDATION_MONTH}-01"), info={"months": months})
        with open(args.out, "wb") as handle:
            save_training_set(ts, handle)
        c.emit(**clock.fields(), months=months, window_rows=len(pooled), train=list(ts.X_train.shape), val=list(ts.X_val.shape),
               nnz=int(ts.X_train.nnz + ts.X_val.nnz))
        return
    # model case
    import numpy as np  # noqa: F401  (with the estimators' own imports below, before the clock)

    from taxi_assets.ml.estimators import get_estimator
    from taxi_assets.ml.tuning import tune

    spec = get_estimator(args.model)
    ts = load_training_set(Path(args.input[0]))
    evaluations = args.evaluations or spec.max_evaluations
    overrides = {"num_boost_round": args.num_boost_round} if args.num_boost_round else {}

    def on_trial(trial) -> None:
        c.progress(trial=trial.index, of=trial.total, seconds=round(trial.seconds, 2), rmse=round(trial.loss, 4))

    with c.Clock() as clock:
        result = tune(spec, ts, evaluations, args.random_state, on_trial=on_trial, **overrides)
    rounds = getattr(result.predictor.estimator, "best_iteration", None)  # XGBoost boosters only
    c.emit(**clock.fields(), model=spec.name, evaluations=evaluations, overrides=overrides, rmse=result.metrics["rmse"],
           baseline_rmse=result.baseline_rmse, best_params=result.best_params,
           trial_seconds=[round(t.seconds, 2) for t in result.trials],
           best_iteration=None if rounds is None else int(rounds))


def _options(parser) -> None:
    parser.add_argument("--train-months", type=int, default=12)
    parser.add_argument("--model")
    parser.add_argument("--models", default="auto", help="'auto' (survey on one month) or a comma list")
    parser.add_argument("--random-state", type=int, default=42)
    parser.add_argument("--model-timeout", type=float, default=900.0, help="stop one model's tuning after this long")
    parser.add_argument("--capped", default="xgboost", help="model for the capped run ('' skips it)")
    parser.add_argument("--capped-evaluations", type=int, default=1)
    parser.add_argument("--capped-rounds", type=int, default=200, help="num_boost_round of the capped run")
    parser.add_argument("--evaluations", type=int, help="internal: max_evaluations of a model case")
    parser.add_argument("--num-boost-round", type=int, help="internal: num_boost_round override of a model case")


def _model_rows(results: dict) -> list[list]:
    rows = []
    for name, r in results.items():
        if r.get("timed_out"):
            done = r.get("progress", [])
            total = done[0]["of"] if done else "?"
            rows.append([name, f"{len(done)} of {total} done", f"> {r['timeout_seconds']:.0f} (stopped)", "n/a",
                         r.get("peak_rss_mib") or "n/a", "n/a",
                         f"{min(t['rmse'] for t in done):.3f} (best so far)" if done else "n/a", "n/a"])
            continue
        rows.append([name, r["evaluations"], r["wall_seconds"], r["cpu_seconds"], r["peak_rss_mib"],
                     r["peak_rss_mib"] - r["rss_before_mib"],
                     f"{r['rmse']:.3f}", f"{r['baseline_rmse']:.3f}", c.load_range([r])])
    return rows


MODEL_HEADERS = ["model", "evaluations", "tune wall s", "CPU s", "peak RSS MiB", "growth MiB", "val RMSE", "baseline RMSE",
                 "load avg (1 min)"]


def main(argv=None) -> int:
    args = c.parse_case_args(argv, _options)
    if args.case:
        run_case(args)
        return 0
    from taxi_assets.ml.estimators import ESTIMATORS

    print(f"train_window: validate {VALIDATION_MONTH}, train on the {args.train_months} months before; {c.machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-window-") as tmp:
        tmp = Path(tmp)
        big = c.run_case(SCRIPT, "build", "--train-months", str(args.train_months), "--out", str(tmp / "window.npz"))
        c.print_table(
            ["training set", "months", "cleaned rides", "train", "validation", "wall s", "CPU s", "peak RSS MiB", "growth MiB",
             "load avg (1 min)"],
            [[f"{args.train_months} + 1 months", f"{big['months'][0]}..{big['months'][-1]}", big["window_rows"],
              " x ".join(f"{v:,}" for v in big["train"]), " x ".join(f"{v:,}" for v in big["val"]),
              big["wall_seconds"], big["cpu_seconds"], big["peak_rss_mib"], big["peak_rss_mib"] - big["rss_before_mib"],
              c.load_range([big])]],
            title="Building the training set (read, clean, pool, split, vectorize)",
        )
        print(f"stored training set: {(tmp / 'window.npz').stat().st_size / c.MIB:.1f} MiB (.npz)")

        if args.models == "auto":
            c.run_case(SCRIPT, "build", "--train-months", "1", "--out", str(tmp / "one.npz"))
            survey = {
                name: c.run_case(SCRIPT, "model", "--model", name, "--input", str(tmp / "one.npz"),
                                 "--random-state", str(args.random_state), timeout=args.model_timeout)
                for name in ESTIMATORS
            }
            c.print_table(MODEL_HEADERS, _model_rows(survey),
                          title="Survey: every model at its defaults on the one-month window (train 2024-01)")
            timed = {n: r["wall_seconds"] for n, r in survey.items() if not r.get("timed_out")}
            chosen = [min(timed, key=timed.get), max(timed, key=timed.get)]
        else:
            chosen = [m.strip() for m in args.models.split(",") if m.strip() and m.strip() != "none"]
        print(f"\ntuning on the {args.train_months}-month window: {', '.join(chosen)} (random_state {args.random_state})")
        results = {
            name: c.run_case(SCRIPT, "model", "--model", name, "--input", str(tmp / "window.npz"),
                             "--random-state", str(args.random_state), timeout=args.model_timeout)
            for name in chosen
        }
        if args.capped:
            label = (f"{args.capped} CAPPED (max_evaluations={args.capped_evaluations}, "
                     f"num_boost_round={args.capped_rounds})")
            print(f"capped run: {label}")
            results[label] = c.run_case(
                SCRIPT, "model", "--model", args.capped, "--input", str(tmp / "window.npz"),
                "--random-state", str(args.random_state), "--evaluations", str(args.capped_evaluations),
                "--num-boost-round", str(args.capped_rounds), timeout=args.model_timeout)
    c.print_table(MODEL_HEADERS, _model_rows(results),
                  title=f"Models at their defaults on the {args.train_months}-month window")
    for name, r in results.items():
        if not r.get("timed_out"):
            rounds = "" if r.get("best_iteration") is None else f"; best_iteration {r['best_iteration']}"
            print(f"{name}: trials {r['trial_seconds']} s; best {r['best_params']}{rounds}")
        else:
            print(f"{name}: stopped after {r['timeout_seconds']:.0f} s; finished trials "
                  f"{[t['seconds'] for t in r.get('progress', [])]} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
