"""The whole graph for the reference window (train 2024-01, validate 2024-02) through Dagster:
seven tuned models, the leaderboard with explanations, drift, the champion promoted in a real
MLflow registry, and batch predictions. Small tuning budgets keep it quick."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from taxi_assets.definitions import load_defs
from taxi_assets.defs.monitoring.drift import previous_champion_performance
from taxi_assets.defs.resources.tracking import MlflowTracking
from taxi_assets.ml.champion import decide
from taxi_assets.ml.estimators import ESTIMATORS
from taxi_assets.ml.metrics import regression_metrics
from taxi_assets.registry.names import CHAMPION_ALIAS, champion_model_name

# The assets and the standalone checks (Dagster's metadata bounds checks) of the code location.
all_assets = [*load_defs().assets, *load_defs().asset_checks]

QUICK = {
    "ops": {
        **{name: {"config": {"max_evaluations": 1, "random_state": 7}} for name in ESTIMATORS},
        "xgboost": {"config": {"max_evaluations": 1, "random_state": 7, "num_boost_round": 60, "max_depth": 6}},
    }
}


def meta(result, key: str) -> dict:
    mats = result.asset_materializations_for_node(key)
    assert mats, f"{key} was not materialized"
    return {k: getattr(v, "value", getattr(v, "text", v)) for k, v in mats[-1].metadata.items()}


@pytest.fixture(scope="module")
def graph(tmp_path_factory, shared_data):
    """Materialize the reference window once for the module (the expensive part)."""
    from taxi_assets.defs.resources.data_source import TlcDataSource
    from taxi_assets.defs.resources.io_manager import TaxiIOManager
    from taxi_assets.defs.resources.notifier import AlertNotifier

    root = tmp_path_factory.mktemp("graph")
    store = {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "artifact_location": (root / "artifacts").as_uri()}
    io = TaxiIOManager(data_root=str(root / "outputs"))
    resources = {
        "io_manager": io,
        "data_source": TlcDataSource(base=str(shared_data)),
        "mlflow": MlflowTracking(**store),
        "notifier": AlertNotifier(),
    }
    home = root / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        dg.materialize(all_assets, selection=["raw_trips", "cleaned_trips"], partition_key="2024-01",
                       resources=resources, instance=instance)
        result = dg.materialize(all_assets, partition_key="2024-02", resources=resources, instance=instance,
                                run_config=QUICK)
        yield {"result": result, "io": io, "store": store, "resources": resources, "instance": instance}


def test_every_model_materializes_and_beats_the_baseline(graph):
    result = graph["result"]
    assert result.success
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    for name in ESTIMATORS:
        m = meta(result, name)
        assert m["rmse"] < m["baseline_rmse"], name
        assert m["trials"] == 1 and m["registered_model_version"] == 1
        assert set(m) >= {"mse", "mae", "r2", "train_seconds", "best_params", "mlflow_run_id", "model_uri"}
        assert checks[(name, "beats_baseline")] is True
    # the course's 5.995 with trip_distance clipped at the training p99.9 (representation.py)
    assert meta(result, "linear_regression")["rmse"] == pytest.approx(5.756, abs=0.01)


def test_leaderboard_ranks_and_explains(graph):
    result, io = graph["result"], graph["io"]
    board = io.load(dg.AssetKey("model_leaderboard"), "2024-02")
    assert list(board["model"]) == list(board.sort_values("rmse")["model"])
    assert set(board["model"]) == set(ESTIMATORS) and len(board) == len(ESTIMATORS)
    for name in ESTIMATORS:
        row = board[board["model"] == name].iloc[0]
        assert row["rmse"] == pytest.approx(meta(result, name)["rmse"], rel=1e-9)
        assert row["mse"] == pytest.approx(row["rmse"] ** 2, rel=1e-9)
    m = meta(result, "model_leaderboard")
    assert m["best_model"] == board["model"].iloc[0] and m["models_beating_baseline"] == len(ESTIMATORS)
    assert m["rmse_by_model"].startswith("![RMSE by model 2024-02](data:image/png;base64,")
    assert "data:image/png;base64," in m["best_model_residuals"]
    table = [r.data for r in m["leaderboard"].records]
    assert [row["model"] for row in table] == list(board["model"])
    assert {c.name for c in m["leaderboard"].schema.columns} >= {"model", "rmse", "beats_baseline", "train_seconds"}
    top = [r.data for r in m["top_features"].records]
    methods = {row["model"]: row["method"] for row in top}
    assert methods["xgboost"] == "shap" and methods["linear_regression"] == "coefficient"
    assert methods["random_forest"] == "impurity"
    assert {row["rank"] for row in top if row["model"] == "lasso"} == {1, 2, 3, 4, 5}
    assert any(row["feature"] == "trip_distance" for row in top)


def test_drift_and_previous_champion_performance(graph):
    result, io = graph["result"], graph["io"]
    drift = meta(result, "data_drift")
    assert 0 <= drift["psi_trip_distance"] < 0.1 and 0 <= drift["psi_duration"] < 0.1
    assert drift["unseen_pu_do_share"] == pytest.approx(0.0467, abs=0.001)
    assert drift["previous_champion"] == "none for 2024-01"
    # no champion to score: no figure at all, never a sentinel the UI would plot
    assert not any(key.startswith("previous_champion_") for key in drift)
    assert "data:image/png;base64," in drift["trip_distance_distribution"]
    # champion_model[2024-02] scored on 2024-02 itself would be in-sample for its choice: the
    # function refuses it (a month's previous champion was chosen before that month)
    cleaned = io.load(dg.AssetKey("cleaned_trips"), "2024-02")
    champion = io.load(dg.AssetKey("champion_model"), "2024-02")
    with pytest.raises(ValueError, match="trained on 2024-01"):
        previous_champion_performance(champion, "2024-01", "2024-01", cleaned, cleaned)
    perf = previous_champion_performance(champion, "2024-02", "2024-03", cleaned, cleaned)
    expected = regression_metrics(cleaned["duration"].to_numpy(), champion.predict(cleaned[["PULocationID", "DOLocationID", "trip_distance"]]))
    assert perf["previous_champion_rmse"] == pytest.approx(expected["rmse"], abs=1e-6)
    assert perf["previous_champion"] == f"{champion.name} (champion_model[2024-02], since 2024-02)"
    assert perf["previous_champion_selection_rmse"] == pytest.approx(champion.rmse, abs=1e-6)
    assert perf["previous_champion_rmse_gap"] == pytest.approx(expected["rmse"] - champion.rmse, abs=2e-6)
    assert perf["previous_champion_trained_months"] == "2024-01"


def test_champion_is_promoted_in_the_registry(graph):
    result, store = graph["result"], graph["store"]
    m = meta(result, "champion_model")
    board = graph["io"].load(dg.AssetKey("model_leaderboard"), "2024-02")
    assert m["promoted"] is True
    assert m["decision"] == f"promoted {m['challenger']}: no previous champion (no champion_model[2024-01])"
    assert m["challenger"] == board["model"].iloc[0] == m["champion"]
    assert m["previous_champion"] == "no champion_model[2024-01]" and "previous_champion_rmse" not in m
    assert m["champion_uri"] == f"models:/{champion_model_name('green')}@{CHAMPION_ALIAS}"
    assert m["serving"] == f"alias 'champion' set to version {m['champion_version']} (champion of 2024-02)"
    client = MlflowClient(tracking_uri=store["tracking_uri"])
    version = client.get_model_version_by_alias(champion_model_name("green"), CHAMPION_ALIAS)
    assert version.tags["estimator"] == m["champion"] and version.tags["champion_month"] == "2024-02"
    assert version.tags["won_month"] == "2024-02" and version.tags["trained_months"] == "2024-01"
    assert version.tags["decision"] == "promoted"
    assert float(version.tags["rmse"]) == pytest.approx(m["challenger_rmse"], abs=1e-6)
    # the backtest's check loads the version the alias points to, as serving does
    checks = {e.check_name: (e.passed, e.metadata["version"].value) for e in result.get_asset_check_evaluations()
              if e.asset_key.to_user_string() == "backtest"}  # fmt: skip
    assert checks == {"served_model_loads": (True, m["champion_version"])}


def test_champion_rerun_of_the_same_month_registers_a_new_decision(graph):
    again = dg.materialize(all_assets, selection=["champion_model"], partition_key="2024-02",
                           resources=graph["resources"], instance=graph["instance"])
    m = meta(again, "champion_model")
    # the month's decision reads champion_model[2024-01] (absent), never the alias: the same
    # decision again, as version 2 of the line, which the alias follows (same month, newer)
    assert m["previous_champion"] == "no champion_model[2024-01]" and m["promoted"] is True
    assert m["champion_version"] == 2 and m["serving"].startswith("alias 'champion' moved from version 1")


def test_decision_rule():
    assert decide(5.0, None, 0.0) == (True, "promoted: no previous champion")
    assert decide(5.0, 5.1, 0.0)[0] is True
    assert decide(5.1, 5.1, 0.0)[0] is True  # a tie goes to the newer model
    assert decide(5.2, 5.1, 0.0) == (False, "kept champion: challenger 5.2000 > champion 5.1000 + tolerance 0.0")
    assert decide(5.2, 5.1, 0.15)[0] is True
    assert decide(5.3, 5.1, 0.15)[0] is False


def test_no_model_beating_the_baseline_blocks_promotion(graph):
    """The blocking check is judged before anything is promoted or written: the alias, the
    registry and the stored champion_model[2024-02] stay as they were."""
    io = graph["io"]
    stored = io.path_for(dg.AssetKey("champion_model"), "2024-02")
    before = stored.read_bytes()
    board = io.load(dg.AssetKey("model_leaderboard"), "2024-02").assign(beats_baseline=False)
    io.write(dg.AssetKey("model_leaderboard"), "2024-02", board)
    client = MlflowClient(tracking_uri=graph["store"]["tracking_uri"])
    versions = len(client.search_model_versions(f"name='{champion_model_name('green')}'"))
    result = dg.materialize(all_assets, selection=["champion_model"], partition_key="2024-02",
                            instance=graph["instance"], resources=graph["resources"], raise_on_error=False)
    assert not result.success
    assert result.asset_materializations_for_node("champion_model") == []
    assert stored.read_bytes() == before
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("champion_model[2024-02] failed blocking check promotion_is_safe")
    assert "nothing was written, the previous champion_model[2024-02] is kept" in message
    assert len(client.search_model_versions(f"name='{champion_model_name('green')}'")) == versions  # unchanged


def test_batch_predictions(graph):
    result, io = graph["result"], graph["io"]
    frame = io.load(dg.AssetKey("trip_duration_predictions"), "2024-02")
    cleaned = io.load(dg.AssetKey("cleaned_trips"), "2024-02")
    assert len(frame) == len(cleaned) == 51_497
    assert list(frame.columns) == ["pickup_datetime", "PULocationID", "DOLocationID", "trip_distance", "duration", "predicted_duration"]
    m = meta(result, "trip_duration_predictions")
    assert m["dagster/row_count"] == 51_497
    assert m["mean_prediction"] == pytest.approx(float(frame["predicted_duration"].mean()), abs=1e-3)
    rmse = float(np.sqrt(np.mean((frame["duration"] - frame["predicted_duration"]) ** 2)))
    assert m["rmse"] == pytest.approx(rmse, abs=1e-5)
    assert pd.api.types.is_datetime64_any_dtype(frame["pickup_datetime"])
    # Dagster's own metadata bounds checks judged the month's figures
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["mean_prediction_bounds_check"].passed
    assert evaluations["best_rmse_bounds_check"].passed


def test_freshness_policies_are_evaluated_by_dagster(graph):
    """Dagster's freshness daemon sees the models and the training set as fresh right after
    materialization, the training set failing after its 600 s window, and the models failing
    after their one-day window (Mage's outdated-after settings)."""
    import time

    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.freshness import FreshnessDaemon

    instance = graph["instance"]
    keys = [dg.AssetKey("training_set"), dg.AssetKey("linear_regression"), dg.AssetKey("xgboost")]
    target = InProcessWorkspaceLoadTarget(
        [InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="taxi_assets.definitions", attribute="defs"),
                                     location_name="taxi_assets")]
    )

    def states():
        records = instance.get_freshness_state_records(keys)
        return {k.to_user_string(): records[k].freshness_state for k in keys}

    daemon = FreshnessDaemon()
    with create_test_daemon_workspace_context(target, instance) as workspace:
        list(daemon.run_iteration(workspace))
        assert states() == {"training_set": "PASS", "linear_regression": "PASS", "xgboost": "PASS"}
        with freeze_time(time.time() + 700):
            list(daemon.run_iteration(workspace))
        assert states() == {"training_set": "FAIL", "linear_regression": "PASS", "xgboost": "PASS"}
        with freeze_time(time.time() + 86_400 + 60):
            list(daemon.run_iteration(workspace))
        assert states() == {"training_set": "FAIL", "linear_regression": "FAIL", "xgboost": "FAIL"}
