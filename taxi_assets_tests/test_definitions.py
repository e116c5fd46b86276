"""The code location loads, through Python and through the CLIs users run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from taxi_assets.definitions import load_defs
from taxi_assets.ml.estimators import ESTIMATORS

defs = load_defs()

REPO = Path(__file__).resolve().parents[1]

EXPECTED_ASSETS = {
    "ingestion": {"raw_trips"},
    "preparation": {"cleaned_trips", "training_set"},
    "models": set(ESTIMATORS),
    "monitoring": {"data_drift", "model_leaderboard", "backtest"},
    "serving": {"champion_model", "trip_duration_predictions"},
}


def test_asset_graph_groups_and_partitions():
    graph = defs.resolve_asset_graph()
    groups: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        groups.setdefault(node.group_name, set()).add(key.to_user_string())
        if key == dg.AssetKey("backtest"):  # every month's champion in one table
            assert node.partitions_def is None
            assert {k.to_user_string() for k in node.parent_keys} == {"champion_model", "data_drift"}
            continue
        assert node.partitions_def.get_partition_keys(current_time=None)[:2] == ["2023-01", "2023-02"]
        assert node.description, f"{key} has no description for the UI"
    assert groups == EXPECTED_ASSETS
    for name in ESTIMATORS:  # cleaned_trips: what a booster's Dask workers read (ml/distributed.py)
        assert {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys} == {"training_set", "cleaned_trips"}
    # the champion line is a fold: champion_model[M] reads champion_model[M-1]
    champion_deps = {k.to_user_string() for k in graph.get(dg.AssetKey("champion_model")).parent_keys}
    assert champion_deps == set(ESTIMATORS) | {"training_set", "model_leaderboard", "champion_model"}
    leaderboard_deps = {k.to_user_string() for k in graph.get(dg.AssetKey("model_leaderboard")).parent_keys}
    assert leaderboard_deps == set(ESTIMATORS) | {"training_set"}


def test_jobs_sensors_schedules_resources():
    assert {j.name for j in defs.resolve_all_job_defs()} >= {
        "taxi_pipeline", "prepare_month", "ingest_month", "retrain_month", "predict"
    }
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {
        "new_month_sensor", "drift_retraining_sensor", "taxi_automation",
        "run_failure_alert", "asset_check_failure_alert", "freshness_alert",
    }
    for name in ("new_month_sensor", "taxi_automation", "run_failure_alert", "asset_check_failure_alert", "freshness_alert"):
        assert sensors[name].default_status == dg.DefaultSensorStatus.RUNNING, name
    (schedule,) = defs.schedules
    assert schedule.cron_schedule == "0 6 25 * *"
    assert set(defs.resources) >= {"io_manager", "data_source", "mlflow", "notifier"}


def _cli(*args: str, tmp_path: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, DAGSTER_HOME=str(home), TAXI_DATA_ROOT=str(tmp_path / "data"))
    return subprocess.run(args, cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=300)


def test_dagster_definitions_validate(tmp_path):
    done = _cli(
        sys.executable, "-m", "dagster", "definitions", "validate", "-m", "taxi_assets.definitions", tmp_path=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Validation successful for code location taxi_assets" in done.stderr + done.stdout


def test_dg_check_defs(tmp_path):
    dg_cli = Path(sys.executable).with_name("dg")
    done = _cli(str(dg_cli), "check", "defs", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "All definitions loaded successfully." in done.stdout + done.stderr


def test_cli_materializes_a_real_month(tmp_path, shared_data):
    done = _cli(sys.executable, "-m", "dagster", "asset", "materialize", "-m", "taxi_assets.definitions",
                "--select", "raw_trips", "--partition", "2024-01", tmp_path=tmp_path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    stored = tmp_path / "data" / "green" / "raw_trips" / "2024-01.parquet"
    import pyarrow.parquet as pq

    assert pq.read_metadata(stored).num_rows == 56_551
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        assert instance.get_materialized_partitions(dg.AssetKey("raw_trips")) == {"2024-01"}


@pytest.mark.fast
def test_max_evaluations_setting_caps_each_models_default(monkeypatch):
    """TAXI_MAX_EVALUATIONS lowers the default budget of every model above it (what automation
    launches with), leaves smaller defaults alone, and run config still sets any value."""
    from taxi_assets.defs.models import assets

    defaults = {name: assets._config_class(spec)().max_evaluations for name, spec in ESTIMATORS.items()}
    assert defaults == {name: spec.max_evaluations for name, spec in ESTIMATORS.items()}
    assert defaults["lightgbm"] == 8 and defaults["lasso"] == 8
    monkeypatch.setattr(assets, "SETTINGS", assets.SETTINGS.model_copy(update={"max_evaluations": 2}))
    capped = {name: assets._config_class(spec)().max_evaluations for name, spec in ESTIMATORS.items()}
    assert capped == {name: min(2, spec.max_evaluations) for name, spec in ESTIMATORS.items()}
    assert assets._config_class(ESTIMATORS["lightgbm"])(max_evaluations=20).max_evaluations == 20


@pytest.mark.fast
def test_step_start_method_setting(monkeypatch):
    from taxi_assets.defs.executors import PRELOADED_MODULES, multiprocess_config, step_start_method
    from taxi_assets.settings import SettingsError, read_settings

    monkeypatch.delenv("TAXI_STEP_START_METHOD", raising=False)
    assert step_start_method(read_settings()) == {"forkserver": {"preload_modules": list(PRELOADED_MODULES)}}
    assert "taxi_assets.definitions" in PRELOADED_MODULES
    monkeypatch.setenv("TAXI_STEP_START_METHOD", " Spawn ")
    assert step_start_method(read_settings()) == {"spawn": {}}
    monkeypatch.setenv("TAXI_MAX_CONCURRENT_STEPS", "3")
    monkeypatch.setenv("TAXI_MAX_CONCURRENT_MODEL_STEPS", "2")
    config = multiprocess_config(read_settings())
    assert (config["max_concurrent"], config["tag_concurrency_limits"][0]["limit"], config["start_method"]) == (3, 2, {"spawn": {}})
    monkeypatch.setenv("TAXI_STEP_START_METHOD", "fork")
    with pytest.raises(SettingsError, match=r"^invalid setting TAXI_STEP_START_METHOD='fork': expected forkserver or spawn$"):
        read_settings()
