"""A yellow-taxi deployment end to end, through the ``dagster`` CLI in a subprocess.

``TAXI_TYPE`` is definition-time configuration, read once when ``taxi_assets.settings`` is
imported; this test process already imported it as green (see conftest). So the yellow
deployment runs where it would in production: ``dagster asset materialize -m taxi_assets.definitions``
with ``TAXI_TYPE=yellow``, a yellow source folder, its own data root and ``DAGSTER_HOME``.

The yellow months are small yellow-schema files built from the shared green months
(``lpep_*`` -> ``tpep_*``, green-only ``ehail_fee``/``trip_type`` dropped, ``Airport_fee``
added with the TLC's 2024 spelling), 3,000 rides each, drawn with a fixed seed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from taxi_assets.ml.dataset import load_training_set
from taxi_assets.ml.estimators import ESTIMATORS
from taxi_assets.ml.leaderboard import validation_predictions
from taxi_assets.ml.schema import NORMALIZED_SCHEMAS

MONTHS = ("2024-01", "2024-02")
MODEL = "linear_regression"  # the quickest model: one hyperopt trial closes the graph on yellow
RIDES = 3_000
AIRPORT_ZONES = [1, 132, 138]  # Newark, JFK, LaGuardia
DAGSTER = str(Path(sys.executable).parent / "dagster")


def yellow_month_from_green(green_file: Path, out: Path, rides: int, seed: int) -> pa.Table:
    """A yellow-schema TLC file holding ``rides`` rides of a green month (same month)."""
    green = pq.read_table(green_file)
    picks = np.sort(np.random.default_rng(seed).choice(green.num_rows, size=rides, replace=False))
    table = green.take(picks).drop_columns(["ehail_fee", "trip_type"])
    table = table.rename_columns(
        [{"lpep_pickup_datetime": "tpep_pickup_datetime", "lpep_dropoff_datetime": "tpep_dropoff_datetime"}.get(n, n)
         for n in table.column_names]
    )
    pu = table.column("PULocationID")
    table = table.append_column("Airport_fee", pc.if_else(pc.is_in(pu, pa.array(AIRPORT_ZONES, pu.type)), 1.75, 0.0))
    pq.write_table(table, out)
    return table


@pytest.fixture(scope="module")
def yellow_deployment(tmp_path_factory, shared_data):
    """Source folder, data root and DAGSTER_HOME of a yellow deployment, after materializing
    raw_trips + cleaned_trips for 2024-01 and the whole graph for 2024-02 (every model with one
    hyperopt trial) through the CLI."""
    root = tmp_path_factory.mktemp("yellow")
    source, data_root, home = root / "source", root / "data", root / "dagster_home"
    for folder in (source, data_root, home):
        folder.mkdir()
    built = {
        month: yellow_month_from_green(
            shared_data / f"green_tripdata_{month}.parquet", source / f"yellow_tripdata_{month}.parquet", RIDES, seed=i
        )
        for i, month in enumerate(MONTHS)
    }
    env = dict(os.environ)
    env.update(
        TAXI_TYPE="yellow",
        TAXI_DATA_SOURCE=str(source),
        TAXI_DATA_ROOT=str(data_root),
        DAGSTER_HOME=str(home),
        TAXI_EXECUTOR="in_process",  # one process per CLI call: the test stays fast
        PYTHONWARNINGS="ignore",
    )
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_LOCATION", "TAXI_TRAIN_MONTHS", "TAXI_START_MONTH"):
        env.pop(key, None)
    quick = {name: {"config": {"max_evaluations": 1}} for name in ESTIMATORS}
    quick["xgboost"] = {"config": {"max_evaluations": 1, "num_boost_round": 50, "max_depth": 6}}
    # Two CLI runs (each pays the code location's load): January's month, then the whole graph
    # for February (its month, training set, seven models, leaderboard, drift, champion and
    # predictions) in one run.
    steps = [
        ("raw_trips,cleaned_trips", "2024-01", ()),
        ("*", "2024-02", ("--config-json", json.dumps({"ops": quick}))),
    ]
    for selection, partition, extra in steps:
        done = subprocess.run(
            [DAGSTER, "asset", "materialize", "-m", "taxi_assets.definitions", "--select", selection, "--partition", partition, *extra],
            env=env, cwd=root, capture_output=True, text=True, timeout=300, check=False,
        )
        assert done.returncode == 0, f"{selection} [{partition}] failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return {"root": root, "data_root": data_root, "home": home, "built": built}


def _metadata(home: Path, asset: str, partition: str) -> dict:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
        ).records
        assert records, f"no materialization of {asset}[{partition}] in {home}"
        metadata = records[0].asset_materialization.metadata
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


def test_outputs_land_under_the_yellow_root(yellow_deployment):
    data_root = yellow_deployment["data_root"]
    stored = sorted(str(p.relative_to(data_root)) for p in (data_root / "yellow").rglob("*") if p.is_file())
    reports = [p for p in stored if p.startswith("yellow/reports/")]  # charts of the cleaned months
    assert reports and all(p.endswith(".png") for p in reports)
    expected = [
        "yellow/backtest/all.parquet",  # the champion line, unpartitioned
        "yellow/champion_model/2024-02.pkl",
        "yellow/cleaned_trips/2024-01.parquet",
        "yellow/cleaned_trips/2024-02.parquet",
        "yellow/data_drift/2024-02.pkl",
        *[f"yellow/{name}/2024-02.pkl" for name in ESTIMATORS],
        "yellow/model_leaderboard/2024-02.parquet",
        "yellow/raw_trips/2024-01.parquet",
        "yellow/raw_trips/2024-02.parquet",
        "yellow/training_set/2024-02.npz",
        "yellow/trip_duration_predictions/2024-02.parquet",
    ]
    assert [p for p in stored if p not in reports] == sorted(expected)
    # The only other output is the MLflow store; nothing of a green deployment appears.
    assert sorted(p.name for p in data_root.iterdir()) == ["mlflow", "yellow"]
    assert not (data_root / "green").exists()


def test_raw_trips_are_normalized_yellow(yellow_deployment):
    data_root, built = yellow_deployment["data_root"], yellow_deployment["built"]
    for month in MONTHS:
        raw = pq.read_table(data_root / "yellow" / "raw_trips" / f"{month}.parquet")
        assert raw.schema.remove_metadata().equals(NORMALIZED_SCHEMAS["yellow"]), raw.schema
        assert raw.num_rows == RIDES
        assert "ehail_fee" not in raw.column_names and "trip_type" not in raw.column_names
        # Airport_fee (TLC spelling) arrives as airport_fee with its values intact.
        assert raw.column("airport_fee").to_pylist() == built[month].column("Airport_fee").to_pylist()
        assert raw.column("pickup_datetime").to_pylist() == built[month].column("tpep_pickup_datetime").to_pylist()
        meta = _metadata(yellow_deployment["home"], "raw_trips", month)
        assert meta["taxi_type"] == "yellow"
        assert meta["dagster/row_count"] == RIDES
        assert len(meta["dagster/column_schema"].columns) == len(NORMALIZED_SCHEMAS["yellow"])
        assert meta["source"].endswith(f"yellow_tripdata_{month}.parquet")
        assert "Airport_fee" not in meta["dropped_columns"]


def test_training_set_shapes_are_consistent(yellow_deployment):
    data_root = yellow_deployment["data_root"] / "yellow"
    cleaned = pd.concat(
        [pd.read_parquet(data_root / "cleaned_trips" / f"{m}.parquet") for m in MONTHS], ignore_index=True
    )
    before = cleaned["pickup_datetime"] < pd.Timestamp("2024-02-01")
    ts = load_training_set(data_root / "training_set" / "2024-02.npz")
    assert ts.X_train.shape == (int(before.sum()), ts.num_features)
    assert ts.X_val.shape == (int((~before).sum()), ts.num_features)
    assert len(ts.y_train) == ts.X_train.shape[0] and len(ts.y_val) == ts.X_val.shape[0]
    assert ts.info["taxi_type"] == "yellow" and ts.info["months"] == list(MONTHS)
    # Every training row has its PU_DO pair and its distance: two stored values per row.
    assert np.array_equal(np.diff(ts.X_train.indptr), np.full(ts.X_train.shape[0], 2))
    assert np.allclose(ts.y_train, cleaned.loc[before, "duration"].to_numpy())
    meta = _metadata(yellow_deployment["home"], "training_set", "2024-02")
    assert meta["train_rows"] == ts.X_train.shape[0] and meta["validation_rows"] == ts.X_val.shape[0]
    assert meta["num_features"] == ts.num_features
    assert meta["window_rows"] == len(cleaned)
    cleaned_meta = _metadata(yellow_deployment["home"], "cleaned_trips", "2024-01")
    assert cleaned_meta["rows_in"] == RIDES and cleaned_meta["rows_out"] == int(
        pd.read_parquet(data_root / "cleaned_trips" / "2024-01.parquet").shape[0]
    )


def test_quick_model_closes_the_graph_on_yellow(yellow_deployment):
    data_root, home = yellow_deployment["data_root"], yellow_deployment["home"]
    meta = _metadata(home, MODEL, "2024-02")
    assert meta["trials"] == 1
    assert meta["registered_model_name"] == f"taxi-trip-duration-yellow-{MODEL}"
    assert meta["rmse"] < meta["baseline_rmse"]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey(MODEL), "beats_baseline")]
        )
    (execution,) = checks.values()
    assert execution.status.value == "SUCCEEDED"
    trained = joblib.load(data_root / "yellow" / MODEL / "2024-02.pkl")
    ts = load_training_set(data_root / "yellow" / "training_set" / "2024-02.npz")
    assert trained.estimator == MODEL and trained.month == "2024-02"
    # The stored model scores raw records the way serving does, and its validation RMSE is the
    # one recorded.
    records = [{"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.2}, {"PULocationID": 166, "DOLocationID": 41, "trip_distance": 0.9}]
    by_records = trained.predict(records)
    assert by_records.shape == (2,) and np.all(np.isfinite(by_records))
    validation = ts.validation_rides()
    assert np.allclose(trained.predict(validation), validation_predictions(trained, ts))
    validation_rmse = float(np.sqrt(np.mean((validation_predictions(trained, ts) - ts.y_val) ** 2)))
    assert validation_rmse == pytest.approx(meta["rmse"], rel=1e-9)


def test_whole_graph_runs_on_yellow(yellow_deployment):
    data_root, home = yellow_deployment["data_root"], yellow_deployment["home"]
    expected = {"raw_trips", "cleaned_trips", "training_set", *ESTIMATORS, "model_leaderboard", "data_drift",
                "champion_model", "trip_duration_predictions"}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        materialized = {
            key.to_user_string()
            for key in instance.get_asset_keys()
            if "2024-02" in instance.get_materialized_partitions(key)
        }
    assert materialized == expected
    backtest = pd.read_parquet(data_root / "yellow" / "backtest" / "all.parquet")
    assert list(backtest["month"]) == ["2024-02"]
    board = pd.read_parquet(data_root / "yellow" / "model_leaderboard" / "2024-02.parquet")
    assert sorted(board["model"]) == sorted(ESTIMATORS) and list(board["rmse"]) == sorted(board["rmse"])
    champion = _metadata(home, "champion_model", "2024-02")
    assert champion["champion_uri"] == "models:/taxi-trip-duration-yellow@champion"
    assert champion["promoted"] is True and champion["champion"] in ESTIMATORS
    predictions = pd.read_parquet(data_root / "yellow" / "trip_duration_predictions" / "2024-02.parquet")
    cleaned = pd.read_parquet(data_root / "yellow" / "cleaned_trips" / "2024-02.parquet")
    assert len(predictions) == len(cleaned) and predictions["predicted_duration"].notna().all()
    assert _metadata(home, "trip_duration_predictions", "2024-02")["model"] == champion["champion"]
