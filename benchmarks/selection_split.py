"""Every model at its defaults on the reference window (train 2024-01, validate 2024-02, seed 42),
tuned the way the pipeline did before and the way it does now, side by side in one run:

* before: trials compared on the validation month (its RMSE is the minimum over the trials, a
  selection figure); the boosters early-stopped on the window's last week and were refitted;
* now: trials compared on the window's last week (the selection slice), the chosen parameters
  refitted on the whole window, the validation month scored once (out of sample).

Prints each model's validation RMSE both ways, the RMSE the parameters were chosen on, the
seconds, and the load average. Usage: ``python benchmarks/selection_split.py [--models a,b]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import SHARED_DATA  # noqa: E402


def reference_training_set():
    import pandas as pd
    import pyarrow.parquet as pq

    from taxi_assets.ml import cleaning, dataset, schema

    frames = []
    for month in ("2024-01", "2024-02"):
        path = SHARED_DATA / f"green_tripdata_{month}.parquet"
        table = pq.read_table(path, columns=schema.source_columns("green", cleaning.CLEAN_INPUT_COLUMNS))
        normalized, _ = schema.normalize_table(table, "green", path.name)
        frames.append(cleaning.clean_trips(normalized.to_pandas())[0])
    return dataset.build_training_set(pd.concat(frames, ignore_index=True), pd.Timestamp("2024-02-01"), extended_features=False)


def validation_searched():
    """The policy before, as a training backend: trials scored on the validation month; the
    sklearn models fit on the whole window and keep the best trial's model as it is."""
    from taxi_assets.ml.tuning import LocalTraining

    class ValidationSearched(LocalTraining):
        def __init__(self, spec, step, ts, random_state, threads, fit_options):
            super().__init__(spec, step, ts, random_state, threads, fit_options)
            self.selection_X, self.selection_y = step.from_training_set(ts, "val"), ts.y_val
            if not spec.early_stopping:
                self.X_fit, self.y_fit = self.X_all, self.y_all

        def refit(self, params, model):
            return super().refit(params, model) if self.spec.refit is not None else model

    return ValidationSearched


def main() -> None:
    from taxi_assets.ml.estimators import ESTIMATORS
    from taxi_assets.ml.tuning import tune

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(ESTIMATORS))
    args = parser.parse_args()
    ts = reference_training_set()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"train {ts.X_train.shape}, validation {ts.X_val.shape}; each model at its default budget, seed 42\n")
    header = ("model", "before: val RMSE", "now: val RMSE", "now: chosen on (last week)", "before s", "now s")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for name in args.models.split(","):
        spec = ESTIMATORS[name]
        t0 = time.perf_counter()
        before = tune(spec, ts, spec.max_evaluations, 42, backend=validation_searched())
        t1 = time.perf_counter()
        now = tune(spec, ts, spec.max_evaluations, 42)
        t2 = time.perf_counter()
        print(f"| {name} | {before.metrics['rmse']:.4f} | {now.metrics['rmse']:.4f} | {now.selection_rmse:.4f} | "
              f"{t1 - t0:.1f} | {t2 - t1:.1f} |", flush=True)  # fmt: skip
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
