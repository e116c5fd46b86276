"""The XGBoost design before issue 13 and after it, side by side, on three training windows.

Designs (each tuned by ``taxi_assets.ml.tuning``-style seeded TPE, seed 42, quick space):

* ``onehot-val-es`` - **the old design as shipped**: the course's one-hot ``PU_DO`` matrix
  (5,094 columns for one month, 17,913 for twelve), distance unclipped, ``xgb.train`` early
  stopping on the *validation month* (the month it is then scored on: optimistic);
* ``onehot`` - the same one-hot matrix through today's tuner: distance clipped, early stopping
  on the training window's last week, refit on the whole window (the honest one-hot figure);
* ``categorical`` - **the new design** (the registry's ``xgboost``): PU, DO and the PU_DO pair
  as native categorical codes plus clipped distance, honest early stopping, refit;
* ``lightgbm`` - the registry's ``lightgbm`` (same representation).

Windows (``_models.py``): ``one`` (train green 2024-01, validate 2024-02), ``twelve`` (train
2023-02..2024-01), ``yellow`` (a 3.4-million-ride month built from the shared green files,
split at the 16th). On ``one`` every design runs its registry default of evaluations (3 for
XGBoost, 8 for LightGBM); on the big windows every design runs ``--big-evaluations`` (1: the
first TPE trial, the same parameters for the three XGBoost designs) so the comparison is
affordable. Each case runs in a fresh process (peak RSS is the case's own; see ``_common``):
RMSE, wall and CPU seconds of the whole tuning (matrix build, trials, refit), peak RSS.

    python benchmarks/xgboost_designs.py [--windows one,twelve,yellow] [--big-evaluations 1]
        [--designs onehot-val-es,onehot,categorical,lightgbm] [--timeout 1800]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import _common as c  # the script's folder is on sys.path when run as a script
import _models as m

SCRIPT = Path(__file__).resolve()
DESIGNS = ("onehot-val-es", "onehot", "categorical", "lightgbm")
SEED = 42


def old_design(ts, evaluations: int, on_trial) -> dict:
    """The pre-issue-13 ``xgboost`` entry, as it was: one-hot, unclipped, early stopping on the
    validation month, the best trial kept (scored through its ``best_iteration``)."""
    import numpy as np
    import xgboost as xgb
    from hyperopt import STATUS_OK, Trials, fmin, tpe

    from taxi_assets.ml.estimators import ESTIMATORS, available_threads, clean_params
    from taxi_assets.ml.metrics import regression_metrics
    from taxi_assets.ml.predictor import TripDurationPredictor

    threads = available_threads()
    space = ESTIMATORS["xgboost"].search_space(SEED)
    best = {"loss": np.inf, "rounds": None}

    def objective(sampled):
        params = clean_params(sampled)
        train = xgb.DMatrix(ts.X_train, label=ts.y_train, nthread=threads)
        valid = xgb.DMatrix(ts.X_val, label=ts.y_val, nthread=threads)
        booster = xgb.train({**params, "nthread": threads, "verbosity": 0}, train, num_boost_round=1000,
                            evals=[(valid, "validation")], early_stopping_rounds=10, verbose_eval=False)  # fmt: skip
        predictor = TripDurationPredictor(ts.vectorizer, booster, "xgboost")  # a bare vectorizer: no clip
        loss = regression_metrics(ts.y_val, predictor.predict_features(ts.X_val))["rmse"]
        if loss < best["loss"]:
            best.update(loss=loss, rounds=int(booster.best_iteration) + 1)
        on_trial(loss)
        return {"loss": loss, "status": STATUS_OK}

    fmin(objective, space, algo=tpe.suggest, max_evals=evaluations, trials=Trials(),
         rstate=np.random.default_rng(SEED), show_progressbar=False)  # fmt: skip
    return {"rmse": best["loss"], "rounds": best["rounds"]}


def run_design(design: str, ts, evaluations: int) -> dict:
    import dataclasses

    from taxi_assets.ml.estimators import ESTIMATORS
    from taxi_assets.ml.tuning import tune

    losses: list[float] = []

    def on_trial(loss) -> None:
        losses.append(float(getattr(loss, "loss", loss)))
        c.progress(trial=len(losses), rmse=round(losses[-1], 4))

    if design == "onehot-val-es":
        facts = old_design(ts, evaluations, on_trial)
        return {**facts, "trial_rmse": losses}
    spec = ESTIMATORS["lightgbm" if design == "lightgbm" else "xgboost"]
    if design == "onehot":
        spec = dataclasses.replace(spec, representation="onehot")
    result = tune(spec, ts, evaluations, SEED, on_trial=on_trial)
    estimator = result.predictor.estimator
    rounds = estimator.num_boosted_rounds() if hasattr(estimator, "num_boosted_rounds") else estimator.current_iteration()
    return {"rmse": result.metrics["rmse"], "rounds": int(rounds), "trial_rmse": losses,
            "selection_rmse": result.training.get("selection_rmse"), "refit_seconds": result.training.get("refit_seconds")}  # fmt: skip


def run_case(args) -> None:
    c.preload_libraries()
    if args.case == "build":
        c.emit(**m.build(args.window, Path(args.out)))
        return
    import hyperopt  # noqa: F401  (imports outside the clock, for every design alike)
    import lightgbm  # noqa: F401
    import xgboost  # noqa: F401

    from taxi_assets.ml.dataset import load_training_set

    ts = load_training_set(Path(args.input[0]))
    with c.Clock() as clock:
        facts = run_design(args.design, ts, args.evaluations)
    c.emit(**clock.fields(), design=args.design, evaluations=args.evaluations, **facts)


def _options(parser) -> None:
    parser.add_argument("--windows", default="one,twelve,yellow")
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--big-evaluations", type=int, default=1, help="evaluations of every design on twelve/yellow")
    parser.add_argument("--timeout", type=float, default=1800.0, help="stop one design's tuning after this long")
    parser.add_argument("--window", help="internal: window of the build case")
    parser.add_argument("--design", help="internal: design of a design case")
    parser.add_argument("--evaluations", type=int, help="internal: evaluations of a design case")


LABELS = {
    "onehot-val-es": "xgboost one-hot, early stop on validation month (old, as shipped)",
    "onehot": "xgboost one-hot, clipped, early stop on last training week + refit",
    "categorical": "xgboost categorical PU/DO/PU_DO (new default)",
    "lightgbm": "lightgbm categorical PU/DO/PU_DO (new)",
}


def main(argv=None) -> int:
    args = c.parse_case_args(argv, _options)
    if args.case:
        run_case(args)
        return 0
    from taxi_assets.ml.estimators import ESTIMATORS

    windows = [w.strip() for w in args.windows.split(",") if w.strip()]
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    print(f"xgboost_designs: {', '.join(windows)}; seed {SEED}; {c.machine()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-designs-") as tmp:
        for window in windows:
            path = Path(tmp) / f"{window}.npz"
            facts = c.run_case(SCRIPT, "build", "--window", window, "--out", str(path))
            print(f"\n{m.window_label(window, facts)} (built in {facts['wall_seconds']:.1f} s, {facts['stored_mib']} MiB stored)")
            for design in designs:
                spec = ESTIMATORS["lightgbm" if design == "lightgbm" else "xgboost"]
                evaluations = spec.max_evaluations if window == "one" else args.big_evaluations
                r = c.run_case(SCRIPT, "design", "--design", design, "--input", str(path), "--evaluations",
                               str(evaluations), timeout=args.timeout)  # fmt: skip
                if r.get("timed_out"):
                    done = [p["rmse"] for p in r.get("progress", [])]
                    row = [window, LABELS[design], evaluations, f"> {args.timeout:.0f} (stopped)", "n/a",
                           r.get("peak_rss_mib") or "n/a", f"{min(done):.3f} (trials done: {len(done)})" if done else "n/a", "n/a", "n/a"]
                else:
                    row = [window, LABELS[design], evaluations, round(r["wall_seconds"], 1), round(r["cpu_seconds"], 1),
                           r["peak_rss_mib"], f"{r['rmse']:.3f}", r.get("rounds"), c.load_range([r])]
                print("  " + " | ".join(str(v) for v in row), flush=True)
                rows.append(row)
    c.print_table(["window", "design", "evaluations", "wall s", "CPU s", "peak RSS MiB", "val RMSE", "rounds", "load avg (1 min)"],
                  rows, title="Old one-hot XGBoost and the new design, side by side")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
