"""Two runs materializing the same month at once leave one complete, consistent output."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from taxi_assets.defs.resources.io_manager import TaxiIOManager
from taxi_assets.io.atomic import TEMP_PREFIX

REPO = Path(__file__).resolve().parents[2]


def test_concurrent_cli_runs_of_one_partition(tmp_path, shared_data):
    home = tmp_path / "home"
    home.mkdir()
    env = dict(
        os.environ,
        DAGSTER_HOME=str(home),
        TAXI_DATA_ROOT=str(tmp_path / "data"),
        TAXI_DATA_SOURCE=str(shared_data),
        TAXI_EXECUTOR="in_process",
    )
    with dg.DagsterInstance.from_config(str(home)):
        pass  # create the instance's databases once, as any deployment has them before runs race
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "taxi_assets.definitions",
               "--select", "raw_trips,cleaned_trips", "--partition", "2024-01"]
    runs = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    raw = tmp_path / "data" / "green" / "raw_trips"
    cleaned = tmp_path / "data" / "green" / "cleaned_trips"
    assert sorted(p.name for p in raw.iterdir()) == ["2024-01.parquet"]
    assert sorted(p.name for p in cleaned.iterdir()) == ["2024-01.parquet"]
    assert pq.read_metadata(raw / "2024-01.parquet").num_rows == 56_551
    assert pq.read_metadata(cleaned / "2024-01.parquet").num_rows == 54_373
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(dg.AssetKey("cleaned_trips"), limit=10).records
        assert len(records) == 2 and {r.partition_key for r in records} == {"2024-01"}


def test_racing_writers_leave_one_whole_file(tmp_path):
    io = TaxiIOManager(data_root=str(tmp_path))
    frames = [pd.DataFrame({"writer": [w] * 200_000, "value": range(200_000)}) for w in range(6)]
    errors: list[BaseException] = []

    def write(frame: pd.DataFrame) -> None:
        # Each writer has its own output context, as each step has in a run.
        context = dg.build_output_context(asset_key=dg.AssetKey("frame"), partition_key="2024-01")
        try:
            io.handle_output(context, frame)
        except BaseException as error:  # noqa: BLE001 - recorded and asserted below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(f,)) for f in frames]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []  # every writer finished its write; the last rename wins
    stored = io.load(dg.AssetKey("frame"), "2024-01")
    assert len(stored) == 200_000 and stored["writer"].nunique() == 1  # exactly one writer's rows
    assert stored.equals(frames[int(stored["writer"].iloc[0])])
    assert not [p for p in (tmp_path / "green" / "frame").iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_multiprocess_run_trains_models_one_at_a_time(tmp_path, shared_data):
    """The default executor runs steps in processes; model steps (each using every core) never overlap."""
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, DAGSTER_HOME=str(home), TAXI_DATA_ROOT=str(tmp_path / "data"), TAXI_DATA_SOURCE=str(shared_data))
    env.pop("TAXI_EXECUTOR", None)

    def materialize(select: str, partition: str, executor: str | None = None, config: str | None = None):
        run_env = dict(env, TAXI_EXECUTOR=executor) if executor else env
        args = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "taxi_assets.definitions", "--select", select,
                "--partition", partition] + (["--config-json", config] if config else [])
        done = subprocess.run(args, cwd=REPO, env=run_env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]

    for month in ("2024-01", "2024-02"):
        materialize("raw_trips,cleaned_trips", month, executor="in_process")
    quick = '{"ops": {"extra_trees": {"config": {"max_evaluations": 1}}, "linear_regression": {"config": {"max_evaluations": 1}}}}'
    materialize("training_set,linear_regression,extra_trees", "2024-02", config=quick)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = [r for r in instance.get_runs() if "extra_trees" in str(r.asset_selection)]
        spans, pids = {}, set()
        for event in instance.all_logs(run.run_id):
            if event.dagster_event is None or event.step_key not in ("linear_regression", "extra_trees", "training_set"):
                continue
            kind = event.dagster_event.event_type_value
            if kind == "STEP_START":
                spans[event.step_key] = [event.timestamp, None]
                pids.add(event.dagster_event.pid)
            elif kind == "STEP_SUCCESS":
                spans[event.step_key][1] = event.timestamp
        assert set(spans) == {"training_set", "linear_regression", "extra_trees"}
        assert len(pids) == 3  # one process per step
        (a_start, a_end), (b_start, b_end) = spans["linear_regression"], spans["extra_trees"]
        assert a_end <= b_start or b_end <= a_start  # never both fitting at once
