"""Training sets for the model benchmarks, built in a fresh process and stored as ``.npz``.

Three windows, all validated on a month of rides never trained on:

* ``one``: ``training_set[2024-02]`` of the pipeline (train green 2024-01, validate 2024-02;
  54,378 / 51,492 rides), the reference window;
* ``twelve``: ``TAXI_TRAIN_MONTHS=12`` (train green 2023-02..2024-01, 742,292 rides; validate
  2024-02);
* ``yellow``: a 3.4-million-ride yellow-schema month synthesized from the 13 shared green
  months (``_common.make_yellow_month``, fixed seed, shifted into 2023-03), split at the 16th
  like ``yellow_month.py`` (about 1.64 M rides train, 1.61 M validate).

Each is built exactly as the assets build it (five-column read, ``clean_trips``,
``pool_months``, ``build_training_set``), with the course's feature set (extended features
off).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import _common as c

WINDOWS = ("one", "twelve", "yellow")
YELLOW_MONTH = "2023-03"
YELLOW_BOUNDARY = "2023-03-16"
YELLOW_ROWS = 3_400_000


def green_window(train_months: int, validation_month: str = "2024-02") -> list[str]:
    import pandas as pd

    end = pd.Period(validation_month, freq="M")
    return [str(end - i) for i in range(train_months, -1, -1)]


def build(window: str, out: Path, yellow_rows: int = YELLOW_ROWS) -> dict:
    """Build the ``window`` training set into ``out`` (call inside a case process); its facts."""
    import pandas as pd

    from taxi_assets.ml.cleaning import clean_trips
    from taxi_assets.ml.dataset import build_training_set, pool_months, save_training_set

    if window == "yellow":
        with tempfile.TemporaryDirectory(prefix="bench-yellow-models-") as tmp:
            path = c.make_yellow_month(YELLOW_MONTH, yellow_rows, Path(tmp) / f"yellow_tripdata_{YELLOW_MONTH}.parquet")
            with c.Clock() as clock:
                pooled = pool_months([clean_trips(c.read_needed(path, "yellow"))[0]])
                ts = build_training_set(pooled, pd.Timestamp(YELLOW_BOUNDARY), {"window": window}, extended_features=False)
        months = [YELLOW_MONTH]
    else:
        months = green_window(1 if window == "one" else 12)
        with c.Clock() as clock:
            pooled = pool_months([clean_trips(c.read_needed(c.green_path(m), "green"))[0] for m in months])
            ts = build_training_set(pooled, pd.Timestamp(f"{months[-1]}-01"), {"window": window}, extended_features=False)
    with open(out, "wb") as handle:
        save_training_set(ts, handle)
    return {**clock.fields(), "window": window, "months": months, "train": list(ts.X_train.shape),
            "val": list(ts.X_val.shape), "stored_mib": round(out.stat().st_size / c.MIB, 1)}  # fmt: skip


def window_label(window: str, facts: dict) -> str:
    rides = f"{facts['train'][0]:,} train / {facts['val'][0]:,} validation rides"
    names = {"one": "one month (green 2024-01 -> 2024-02)", "twelve": "12 months (green 2023-02..2024-01 -> 2024-02)",
             "yellow": f"yellow-sized month ({YELLOW_MONTH}, split at the 16th)"}  # fmt: skip
    return f"{names[window]}: {rides}, one-hot {facts['train'][1]:,} columns"
