"""Steps on a real Dask cluster: ``dask scheduler`` and two ``dask worker`` processes on
127.0.0.1, started here and stopped by PID, run February's graph (preparation, training set,
the eight models, leaderboard, champion) through ``TAXI_EXECUTOR=dask`` with the Dagster CLI;
every step runs in a worker process, and the outputs equal the multiprocess executor's for the
same seed (both with one fitting thread per step, as the local Dask cluster gives each worker).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from taxi_assets.defs.executors import dask_cluster_config, executor_from_settings
from taxi_assets.defs.resources.io_manager import TaxiIOManager
from taxi_assets.ml.estimators import ESTIMATORS
from taxi_assets.settings import SettingsError, read_settings
from taxi_assets_tests.processes import BIN, DagsterProcess, wait_until

MONTH, PREVIOUS = "2024-02", "2024-01"
GRAPH = ["raw_trips", "cleaned_trips", "training_set", *ESTIMATORS, "model_leaderboard", "champion_model"]
# One trial per model, seeded where the quick space's first draw is cheap (10 trees, shallow
# boosters, few lasso iterations), and short boosters: the point is where steps run.
SEEDS = {"linear_regression": 11, "lasso": 48, "linear_svr": 59, "extra_trees": 54, "gradient_boosting": 13,
         "random_forest": 13, "xgboost": 3, "lightgbm": 35}  # fmt: skip
QUICK = {"ops": {name: {"config": {"max_evaluations": 1, "random_state": SEEDS.get(name, 11)}} for name in ESTIMATORS}}
QUICK["ops"]["xgboost"]["config"]["num_boost_round"] = 40
QUICK["ops"]["lightgbm"]["config"]["num_boost_round"] = 40


def base_env(tmp: Path, shared_data: Path, data_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("TAXI_EXECUTOR", "TAXI_DASK_ADDRESS", "TAXI_DASK_WORKERS", "MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_LOCATION"):
        env.pop(name, None)
    env.update(
        DAGSTER_HOME=str(tmp / "home"),
        TAXI_DATA_ROOT=str(data_root),
        TAXI_DATA_SOURCE=str(shared_data),
        TAXI_IGNORE_DOTENV="1",
        TAXI_MAX_THREADS="1",  # what each worker of a two-worker cluster on two cores fits with
    )
    return env


def launch(env: dict, cwd: Path, select: list[str], partition: str, config: dict | None = None) -> subprocess.Popen:
    args = [str(BIN / "dagster"), "asset", "materialize", "-m", "taxi_assets.definitions",
            "--select", ",".join(select), "--partition", partition]  # fmt: skip
    if config:
        args += ["--config-json", json.dumps(config)]
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(run: subprocess.Popen) -> None:
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, output[-4000:]


def materialize(env: dict, cwd: Path, select: list[str], partition: str, config: dict | None = None) -> None:
    finish(launch(env, cwd, select, partition, config))


def step_pids(home: Path, selection: str) -> tuple[int, dict[str, int]]:
    """``(run worker pid, {step: pid of its STEP_START})`` of the newest run selecting ``selection``."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = [r for r in instance.get_runs() if selection in str(r.asset_selection)][:1]
        assert run.status == dg.DagsterRunStatus.SUCCESS
        run_pid, steps = None, {}
        for event in instance.all_logs(run.run_id):
            if event.dagster_event is None:
                continue
            if event.dagster_event.event_type_value == "RUN_START":
                run_pid = event.dagster_event.pid
            elif event.dagster_event.event_type_value == "STEP_START":
                steps[event.step_key] = event.dagster_event.pid
    return run_pid, steps


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, shared_data):
    """A scheduler and two single-thread workers (no nanny: the process started is the worker),
    each its own process group, stopped by PID at the end."""
    tmp = tmp_path_factory.mktemp("dask")
    data_root = tmp / "dask-data"
    env = base_env(tmp, shared_data, data_root)
    scheduler_file = tmp / "scheduler.json"
    scheduler = DagsterProcess(
        [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
         "--scheduler-file", str(scheduler_file)],
        env, tmp, tmp / "scheduler.log",
    ).start()  # fmt: skip
    workers = []
    try:
        wait_until(lambda: scheduler_file.is_file() and json.loads(scheduler_file.read_text()).get("address"), 60, 0.5,
                   "scheduler file")  # fmt: skip
        address = json.loads(scheduler_file.read_text())["address"]
        for i in (1, 2):
            workers.append(DagsterProcess(
                [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                 "--name", f"worker-{i}", "--no-dashboard"],
                env, tmp, tmp / f"worker-{i}.log",
            ).start())  # fmt: skip
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=120)
            registered = set(client.run(os.getpid).values())
        assert registered == {w.pid for w in workers}
        yield {"address": address, "workers": workers, "tmp": tmp, "env": env, "data_root": data_root}
    finally:
        for process in [*workers, scheduler]:
            process.stop(timeout=20)


@pytest.fixture(scope="module")
def runs(cluster, shared_data):
    """February's graph on the Dask cluster, and the same graph with the multiprocess executor."""
    tmp = cluster["tmp"]
    for home in ("home", "home-multi"):
        (tmp / home).mkdir(exist_ok=True)
        with dg.DagsterInstance.from_config(str(tmp / home)):
            pass  # the instance's databases exist before the first run, as in any deployment
    dask_env = dict(cluster["env"], TAXI_EXECUTOR="dask", TAXI_DASK_ADDRESS=cluster["address"])
    multi_root = tmp / "multiprocess-data"
    # The multiprocess executor with the cluster's shape: two steps at once, models included,
    # one fitting thread each (TAXI_MAX_THREADS=1 from base_env).
    multi_env = dict(base_env(tmp, shared_data, multi_root), TAXI_EXECUTOR="multiprocess", DAGSTER_HOME=str(tmp / "home-multi"),
                     TAXI_MAX_CONCURRENT_STEPS="2", TAXI_MAX_CONCURRENT_MODEL_STEPS="2")  # fmt: skip
    for name in ("dask", "multiprocess"):
        (tmp / f"cwd-{name}").mkdir()
    # January's preparation once, on the cluster; the multiprocess run gets a copy of its files.
    materialize(dask_env, tmp / "cwd-dask", ["raw_trips", "cleaned_trips"], PREVIOUS)
    for asset in ("raw_trips", "cleaned_trips"):
        (multi_root / "green" / asset).mkdir(parents=True)
        shutil.copy2(cluster["data_root"] / "green" / asset / f"{PREVIOUS}.parquet", multi_root / "green" / asset)
    # February's graph both ways at once (nothing here is timed; it halves the test's wall time).
    started = [launch(env, tmp / f"cwd-{name}", GRAPH, MONTH, QUICK) for name, env in (("dask", dask_env), ("multiprocess", multi_env))]
    for run in started:
        finish(run)
    return {"dask": cluster["data_root"], "multiprocess": multi_root}


def test_steps_execute_in_the_worker_processes(cluster, runs):
    run_pid, steps = step_pids(cluster["tmp"] / "home", "model_leaderboard")
    worker_pids = {w.pid for w in cluster["workers"]}
    # Every step of the graph (and its asset-check steps) ran, each in one of the two workers,
    # none in the run worker.
    assert set(GRAPH) <= set(steps)
    assert set(steps.values()) <= worker_pids, (steps, worker_pids)
    assert set(steps.values()) == worker_pids  # both workers took steps
    assert run_pid not in worker_pids
    # The multiprocess run's steps ran in processes of their own, never in the workers.
    _, multi_steps = step_pids(cluster["tmp"] / "home-multi", "model_leaderboard")
    assert set(GRAPH) <= set(multi_steps) and not set(multi_steps.values()) & worker_pids
    # The month's outputs are where the workers (TAXI_DATA_ROOT of their environment) wrote them.
    root = runs["dask"] / "green"
    assert sorted(p.name for p in (root / "cleaned_trips").iterdir()) == [f"{PREVIOUS}.parquet", f"{MONTH}.parquet"]
    for name in ESTIMATORS:
        assert (root / name / f"{MONTH}.pkl").is_file()


def test_outputs_equal_the_multiprocess_executor(runs):
    dask_io, multi_io = (TaxiIOManager(data_root=str(runs[k])) for k in ("dask", "multiprocess"))
    cleaned = [io.load(dg.AssetKey("cleaned_trips"), MONTH) for io in (dask_io, multi_io)]
    pd.testing.assert_frame_equal(*cleaned)
    ts_dask, ts_multi = (io.load(dg.AssetKey("training_set"), MONTH) for io in (dask_io, multi_io))
    assert ts_dask.X_train.shape == ts_multi.X_train.shape == (54_378, 5_094)
    assert (ts_dask.X_train != ts_multi.X_train).nnz == 0 and np.array_equal(ts_dask.y_val, ts_multi.y_val)
    for name in ESTIMATORS:
        a, b = dask_io.load(dg.AssetKey(name), MONTH), multi_io.load(dg.AssetKey(name), MONTH)
        assert a.best_params == b.best_params, name
        np.testing.assert_array_equal(a.predictor.predict_training_set(ts_dask), b.predictor.predict_training_set(ts_multi))
        assert a.metrics["rmse"] == b.metrics["rmse"], name
    boards = [io.load(dg.AssetKey("model_leaderboard"), MONTH) for io in (dask_io, multi_io)]
    assert list(boards[0]["model"]) == list(boards[1]["model"]) and len(boards[0]) == len(ESTIMATORS)
    np.testing.assert_array_equal(boards[0]["rmse"].to_numpy(), boards[1]["rmse"].to_numpy())
    champions = [io.load(dg.AssetKey("champion_model"), MONTH) for io in (dask_io, multi_io)]
    assert champions[0].name == champions[1].name == boards[0]["model"].iloc[0]


def prepared_month(data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A data root holding the month's cleaned trips and training set from ``data``, and an empty
    Dagster home: what a model step needs, nothing trained yet."""
    root = tmp_path / "data"
    for asset in ("cleaned_trips", "training_set"):
        shutil.copytree(data / "green" / asset, root / "green" / asset)
    home = tmp_path / "home"
    home.mkdir()
    with dg.DagsterInstance.from_config(str(home)):
        pass
    return root, home


def test_local_cluster_run_trains_a_booster_across_its_workers(cluster, runs, tmp_path):
    """``TAXI_EXECUTOR=dask`` without an address: the run starts its own local cluster, and with
    ``TAXI_DISTRIBUTED_MIN_ROWS`` below February's 54,378 training rides the XGBoost step, running
    in one of its workers, takes the distributed path from inside it (``worker_client`` frees its
    slot). That the training then runs on both workers is read from a scheduler's task records in
    ``test_a_booster_trains_on_both_workers_by_the_schedulers_records`` (this cluster ends with
    the run)."""
    root, home = prepared_month(runs["dask"], tmp_path)
    env = dict(cluster["env"], TAXI_EXECUTOR="dask", TAXI_DATA_ROOT=str(root), DAGSTER_HOME=str(home),
               TAXI_DISTRIBUTED_MIN_ROWS="1000", TAXI_DASK_WORKERS="2")  # fmt: skip
    env.pop("TAXI_DASK_ADDRESS", None)
    materialize(env, tmp_path, ["xgboost"], MONTH, {"ops": {"xgboost": QUICK["ops"]["xgboost"]}})
    run_pid, steps = step_pids(home, "xgboost")
    assert set(steps) == {"xgboost"} and steps["xgboost"] != run_pid
    assert steps["xgboost"] not in {w.pid for w in cluster["workers"]}  # the run's own cluster, not the test's
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs(limit=1)
        messages = [e.user_message for e in instance.all_logs(run.run_id)]
    assert any("54,378 training rides >= 1,000: training across the Dask cluster's workers" in m for m in messages)
    spread = TaxiIOManager(data_root=str(root)).load(dg.AssetKey("xgboost"), MONTH)
    single = TaxiIOManager(data_root=str(runs["dask"])).load(dg.AssetKey("xgboost"), MONTH)
    assert spread.best_params == single.best_params
    assert spread.metrics["rmse"] == pytest.approx(single.metrics["rmse"], rel=0.02)


def test_a_booster_trains_on_both_workers_by_the_schedulers_records(cluster, runs, tmp_path):
    """``TAXI_DASK_ADDRESS`` with the default executor: above ``TAXI_DISTRIBUTED_MIN_ROWS`` the
    XGBoost step (a local process) trains across the cluster's two workers. Read from the
    scheduler's own task stream, not from what the step logs: the months' encoding tasks and
    XGBoost's training tasks ran on each of the two workers, and the model is the same kind."""
    import time

    from distributed import Client

    root, home = prepared_month(runs["dask"], tmp_path)
    env = dict(cluster["env"], TAXI_DASK_ADDRESS=cluster["address"], TAXI_DATA_ROOT=str(root), DAGSTER_HOME=str(home),
               TAXI_DISTRIBUTED_MIN_ROWS="1000")  # fmt: skip
    env.pop("TAXI_EXECUTOR", None)
    with Client(cluster["address"], timeout=30) as client:
        client.get_task_stream(count=1)  # starts the scheduler's task-stream plugin before the run
        workers = set(client.scheduler_info(n_workers=-1)["workers"])
        started = time.time()
        materialize(env, tmp_path, ["xgboost"], MONTH, {"ops": {"xgboost": QUICK["ops"]["xgboost"]}})
        records = client.get_task_stream(start=started)
    assert len(workers) == 2
    ran_on: dict[str, set[str]] = {}
    for record in records:
        key = str(record["key"])
        # ours: one encoding task per month; xgboost.dask's: a ``fn-<uuid>`` task per worker per training
        kind = "encode" if "taxi-encode-" in key else "train" if key.startswith("fn-") else None
        if kind:
            ran_on.setdefault(kind, set()).add(record["worker"])
    keys = sorted({str(r["key"])[:24] for r in records})
    assert ran_on.get("encode") == workers, (ran_on, keys)  # each worker encoded its month's rides
    assert ran_on.get("train") == workers, (ran_on, keys)  # and XGBoost trained on both
    trainings = sum(str(r["key"]).startswith("fn-") for r in records)
    assert trainings == 2 * len(workers), keys  # the one trial and the refit, each on both workers
    spread = TaxiIOManager(data_root=str(root)).load(dg.AssetKey("xgboost"), MONTH)
    single = TaxiIOManager(data_root=str(runs["dask"])).load(dg.AssetKey("xgboost"), MONTH)
    assert spread.best_params == single.best_params
    assert spread.metrics["rmse"] == pytest.approx(single.metrics["rmse"], rel=0.02)


@pytest.mark.fast
def test_dask_settings_pick_the_cluster(monkeypatch):
    monkeypatch.setenv("TAXI_DASK_ADDRESS", "tcp://127.0.0.1:8786")
    assert dask_cluster_config(read_settings()) == {"existing": {"address": "tcp://127.0.0.1:8786"}}
    monkeypatch.setenv("TAXI_DASK_ADDRESS", "127.0.0.1:8786")
    with pytest.raises(SettingsError, match=r"^invalid setting TAXI_DASK_ADDRESS='127.0.0.1:8786': expected a scheduler address like tcp://"):
        read_settings()
    monkeypatch.delenv("TAXI_DASK_ADDRESS")
    monkeypatch.setenv("TAXI_DASK_WORKERS", "2")
    monkeypatch.delenv("TAXI_MAX_THREADS", raising=False)
    local = dask_cluster_config(read_settings())["local"]
    assert local["n_workers"] == 2 and local["host"] == "127.0.0.1"
    assert local["env"] == {"TAXI_MAX_THREADS": str(max(1, len(os.sched_getaffinity(0)) // 2))}
    monkeypatch.setenv("TAXI_MAX_THREADS", "1")
    assert dask_cluster_config(read_settings())["local"]["env"] == {"TAXI_MAX_THREADS": "1"}
    monkeypatch.setenv("TAXI_EXECUTOR", "dask")
    assert executor_from_settings(read_settings()).name == "dask"
    monkeypatch.setenv("TAXI_EXECUTOR", "spark")
    with pytest.raises(SettingsError, match="^invalid setting TAXI_EXECUTOR='spark': expected multiprocess, in_process, dask, k8s or celery_k8s$"):
        read_settings()
