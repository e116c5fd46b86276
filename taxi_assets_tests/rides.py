"""Cleaned-like synthetic rides for tests that need no real month (fast tests)."""

from __future__ import annotations


def synthetic_rides(n_train: int = 600, n_val: int = 100, seed: int = 3, long_ride_miles: float | None = None):
    """January rides (training) then February rides (validation), zones 10..14; with
    ``long_ride_miles``, the eighth training ride is that long (real months hold such rides).
    Durations grow with distance up to 30 miles, plus noise."""
    import numpy as np
    import pandas as pd

    from taxi_assets.ml.cleaning import pu_do

    rng = np.random.default_rng(seed)
    n = n_train + n_val
    start = np.where(np.arange(n) < n_train, np.datetime64("2024-01-01", "us"), np.datetime64("2024-02-01", "us"))
    span = np.where(np.arange(n) < n_train, 31, 29) * 86_400 * 1_000_000
    pickup = start + (rng.random(n) * span).astype("timedelta64[us]")
    pu = rng.integers(10, 15, n).astype(np.int32)
    do = rng.integers(10, 15, n).astype(np.int32)
    distance = np.round(rng.gamma(2.0, 1.5, n), 2)
    if long_ride_miles is not None:
        distance[7] = long_ride_miles
    return pd.DataFrame(
        {
            "pickup_datetime": pickup, "PULocationID": pu, "DOLocationID": do, "PU_DO": pu_do(pu, do),
            "trip_distance": distance, "duration": 3.0 + 2.5 * np.minimum(distance, 30) + rng.normal(0, 1, n),
        }
    )  # fmt: skip
