"""One boosted model across the workers of a real local Dask cluster (two worker processes):
the twelve-month green window (2023-02..2024-01 train, 2024-02 validates, 742k training
rides), each worker reading its own months' cleaned rides from the data root; the RMSE is
within 1% of the same search on one process, and the model is the same kind of predictor."""

from __future__ import annotations

import pickle

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from support.data import cleaned_month
from taxi_assets import months
from taxi_assets.defs.resources.io_manager import TaxiIOManager
from taxi_assets.ml.dataset import build_training_set, pool_months, selection_mask
from taxi_assets.ml.distributed import cluster_client, dask_backend, should_distribute, tune_on_cluster_or_here
from taxi_assets.ml.estimators import ESTIMATORS
from taxi_assets.ml.tuning import tune

MONTH = "2024-02"
WINDOW = months.previous_months(MONTH, 12) + [MONTH]
SETTINGS = {
    "xgboost": {"num_boost_round": 40, "early_stopping_rounds": 10},
    "lightgbm": {"num_boost_round": 40},
}
# Seeds whose first (random) TPE draw is a cheap booster: depth 4 / 16 leaves, high learning rate.
SEEDS = {"xgboost": 3, "lightgbm": 35}


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    """The window's cleaned months stored as the pipeline stores them, and its training set."""
    root = tmp_path_factory.mktemp("distributed") / "data"
    io = TaxiIOManager(data_root=str(root))
    frames = []
    for month in WINDOW:
        frame = cleaned_month(month)
        io.write(dg.AssetKey("cleaned_trips"), month, frame)
        frames.append(frame)
    ts = build_training_set(pool_months(frames), pd.Timestamp(f"{MONTH}-01"), info={"months": WINDOW})
    sources = {month: str(io.path_for(dg.AssetKey("cleaned_trips"), month)) for month in WINDOW}
    return ts, sources


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0") as cluster:
        with Client(cluster) as c:
            c.wait_for_workers(2, timeout=60)
            yield c


@pytest.mark.parametrize("name", ["xgboost", "lightgbm"])
def test_window_trained_across_two_workers_matches_one_process(window, client, name):
    ts, sources = window
    spec = ESTIMATORS[name]
    assert ts.X_train.shape[0] == 742_292 and should_distribute(spec, ts.X_train.shape[0], 500_000)
    single = tune(spec, ts, 1, SEEDS[name], n_jobs=1, **SETTINGS[name])
    spread = tune(spec, ts, 1, SEEDS[name], backend=dask_backend(client, sources), **SETTINGS[name])

    assert spread.best_params == single.best_params  # the same trial of the same seeded search
    assert spread.metrics["rmse"] == pytest.approx(single.metrics["rmse"], rel=0.01)
    assert spread.metrics["rmse"] < spread.baseline_rmse == single.baseline_rmse
    facts = spread.training
    assert facts["distributed"] is True and facts["dask_workers"] == 2
    workers = set(client.scheduler_info(n_workers=-1)["workers"])
    assert set(facts["read_by"]) == set(WINDOW) and set(facts["read_by"].values()) == workers  # each read some months
    # The same rides as the training set: fitted + early-stopping slice = the window's training rides.
    assert facts["fitted_rides"] + facts["selection_rides"] == ts.X_train.shape[0] == single.training["window_rides"]
    # ...and the same selection slice as the window's (one process searches a booster on a
    # 250,000-ride sample, max_search_rows, and stops on the sample's slice; across workers every
    # ride is in memory somewhere, so the trials see them all).
    pickups = ts.rides("train")["pickup_datetime"].to_numpy()
    assert facts["selection_rides"] == int(selection_mask(pickups).sum()) == 148_458
    # The same kind of predictor: raw records in, minutes out; it pickles like the other one.
    assert type(spread.predictor.estimator) is type(single.predictor.estimator)
    assert spread.predictor.feature_step.describe() == single.predictor.feature_step.describe()
    records = [{"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.2}, {"PULocationID": 1, "DOLocationID": 265, "trip_distance": 30.0}]
    restored = pickle.loads(pickle.dumps(spread.predictor))
    minutes = restored.predict(records)
    assert minutes.shape == (2,) and np.all((minutes > 0) & (minutes < 120))


def test_the_cluster_is_used_only_above_the_size(window, client):
    """The switch itself, on February's one-month window (54,378 training rides; its two
    months are among the stored ones)."""
    _, sources = window
    ts = build_training_set(pool_months([cleaned_month("2024-01"), cleaned_month(MONTH)]), pd.Timestamp(f"{MONTH}-01"),
                            info={"months": ["2024-01", MONTH]})  # fmt: skip
    spec, options = ESTIMATORS["xgboost"], {"num_boost_round": 20}
    lines = []
    small = tune_on_cluster_or_here(spec, ts, 1, 3, sources=sources.__getitem__, min_rows=100_000, log=lines.append, **options)
    assert "distributed" not in small.training and lines == []
    # Above the size but no cluster reachable (not in a worker, no address): one process, said so.
    big = tune_on_cluster_or_here(spec, ts, 1, 3, sources=sources.__getitem__, min_rows=1000, log=lines.append, **options)
    assert "distributed" not in big.training and "no Dask cluster" in lines[-1]
    assert big.metrics["rmse"] == small.metrics["rmse"]
    with cluster_client(client.scheduler.address) as reached:
        assert reached is not None and len(reached.scheduler_info(n_workers=-1)["workers"]) == 2
    spread = tune_on_cluster_or_here(spec, ts, 1, 3, sources=sources.__getitem__, min_rows=1000, dask_address=client.scheduler.address,
                       log=lines.append, **options)  # fmt: skip
    assert spread.training["distributed"] is True and "54,378 training rides >= 1,000: training across" in lines[-1]
    assert spread.training["fitted_rides"] + spread.training["selection_rides"] == 54_378
    assert spread.metrics["rmse"] == pytest.approx(small.metrics["rmse"], rel=0.02)
    assert not should_distribute(ESTIMATORS["random_forest"], 10**9, 1)
