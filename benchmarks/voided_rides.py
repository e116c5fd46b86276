"""The RMSE effect of dropping the reversals of voided rides (``drop_voided_rides``).

``training_set[2024-02]`` (train green 2024-01, validate 2024-02) built as the assets build it
(every raw column normalized, ``clean_trips``, ``pool_months``, ``build_training_set``) twice:
with the reversals kept (the default, the course's reference shapes) and dropped. Each listed
model is tuned with the same seed and budget on both, and scored on its own validation rides
and on the common ones (2024-02 without its reversals), so the two columns compare the same
rides. No timing: the figures are RMSEs in minutes.

    python benchmarks/voided_rides.py                                # linear_regression, lightgbm, 1 trial
    python benchmarks/voided_rides.py --models xgboost --evaluations 3
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from _common import green_path, machine, print_table  # noqa: E402

from taxi_assets.ml import schema  # noqa: E402
from taxi_assets.ml.cleaning import clean_trips  # noqa: E402
from taxi_assets.ml.dataset import build_training_set, pool_months  # noqa: E402
from taxi_assets.ml.estimators import ESTIMATORS  # noqa: E402
from taxi_assets.ml.tuning import tune  # noqa: E402

MONTHS = ("2024-01", "2024-02")


def training_set(drop_voided: bool):
    cleaned = []
    for month in MONTHS:
        path = green_path(month)
        raw, _ = schema.normalize_table(pq.read_table(path), "green", path.name)
        cleaned.append(clean_trips(raw.to_pandas(), drop_voided=drop_voided)[0])
    return build_training_set(pool_months(cleaned), pd.Timestamp(f"{MONTHS[-1]}-01"), extended_features=False)


def rmse(predictor, rides: pd.DataFrame, y: np.ndarray) -> float:
    return float(np.sqrt(np.mean((predictor.predict(rides) - y) ** 2)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["linear_regression", "lightgbm"], choices=sorted(ESTIMATORS))
    parser.add_argument("--evaluations", type=int, default=1, help="hyperopt trials per model (default 1)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    where = machine()
    kept, dropped = training_set(False), training_set(True)
    common = dropped.rides("val")[["PULocationID", "DOLocationID", "trip_distance"]]
    rows = []
    for name in args.models:
        results = {}
        for label, ts in (("kept", kept), ("dropped", dropped)):
            result = tune(ESTIMATORS[name], ts, args.evaluations, args.seed)
            results[label] = (result.metrics["rmse"], rmse(result.predictor, common, dropped.y_val))
        (own_k, common_k), (own_d, common_d) = results["kept"], results["dropped"]
        rows.append([name, f"{own_k:.4f}", f"{own_d:.4f}", f"{common_k:.4f}", f"{common_d:.4f}", f"{common_d - common_k:+.4f}"])
    print(
        f"training_set[2024-02] with the reversals of voided rides kept (default) and dropped; "
        f"{args.evaluations} trial(s), seed {args.seed}; {where}"
    )
    print(f"train {kept.X_train.shape[0]:,} vs {dropped.X_train.shape[0]:,} rides, "
          f"validation {kept.X_val.shape[0]:,} vs {dropped.X_val.shape[0]:,}")  # fmt: skip
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print_table(
        ["model", "rmse kept", "rmse dropped", "common kept", "common dropped", "change"],
        rows,
        title="validation RMSE (minutes): on each set's own validation rides, and on the common rides "
        "(2024-02 without reversals)",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
