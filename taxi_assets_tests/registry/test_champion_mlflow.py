"""The champion line's registry logic on a real MLflow store (no Dagster, no training): the alias
belongs to the newest month's latest decision, moves forward only, and two processes deciding
months at the same time still leave it on the newest month."""

from __future__ import annotations

import multiprocessing
from types import SimpleNamespace

import pytest

from taxi_assets.ml.champion import Champion, choose_champion, decide
from taxi_assets.ml.trained import TrainedModel
from taxi_assets.registry.champion import alias_target, current_champion, register_champion, serve_newest
from taxi_assets.registry.tracking import TrackingStore


def _version(number: int, month: str | None):
    return SimpleNamespace(version=str(number), tags={"champion_month": month} if month else {})


@pytest.mark.fast
def test_alias_target_is_the_newest_month_then_the_latest_decision():
    versions = [_version(1, "2024-02"), _version(2, "2024-01"), _version(3, "2023-12"), _version(4, None)]
    assert alias_target(versions).version == "1"  # backfilled months registered later never win
    assert alias_target([*versions, _version(5, "2024-02")]).version == "5"  # a re-run of the newest month does
    assert alias_target([*versions, _version(6, "2024-03")]).version == "6"
    assert alias_target([_version(7, None)]) is None and alias_target([]) is None


def _champion(month: str, source: str) -> Champion:
    model = TrainedModel(predictor=None, estimator="lightgbm", month=month, model_uri=source, trained_months=["x"])
    return Champion(month=month, model=model, won_month=month, rmse=5.0, decision="promoted", promoted=True,
                    challenger="lightgbm", challenger_rmse=5.0)  # fmt: skip


@pytest.fixture
def store(tmp_path):
    return TrackingStore(f"sqlite:///{tmp_path / 'mlflow.db'}", "registry-test", (tmp_path / "artifacts").as_uri())


def test_the_alias_only_moves_forward(store, tmp_path):
    assert serve_newest(store, "green") is None  # nothing registered yet
    register_champion(store, "green", _champion("2024-01", (tmp_path / "a").as_uri()), "run-a")
    first = serve_newest(store, "green")
    assert (first.version, first.month, first.previous_version, first.moved) == (1, "2024-01", None, True)
    register_champion(store, "green", _champion("2023-12", (tmp_path / "b").as_uri()), "run-b")  # a backfill
    kept = serve_newest(store, "green")
    assert (kept.version, kept.month, kept.moved) == (1, "2024-01", False)
    assert kept.describe("2023-12") == "alias 'champion' stays on version 1 (champion of 2024-01)"
    register_champion(store, "green", _champion("2024-02", (tmp_path / "c").as_uri()), "run-c")
    moved = serve_newest(store, "green")
    assert (moved.version, moved.month, moved.previous_version, moved.previous_month) == (3, "2024-02", 1, "2024-01")
    assert moved.describe("2024-02") == "alias 'champion' moved from version 1 (champion of 2024-01) to version 3 (champion of 2024-02)"
    holder = current_champion(store, "green")
    assert int(holder.version) == 3 and holder.tags["won_month"] == "2024-02" and holder.tags["decision"] == "promoted"


def _decide_months(uri: str, artifacts: str, months: list[str], start, results) -> None:
    store = TrackingStore(uri, "registry-test", artifacts)
    start.wait()
    for month in months:
        register_champion(store, "green", _champion(month, f"{artifacts}/{month}"), f"run-{month}")
        results.put((month, serve_newest(store, "green").month))


def test_two_processes_deciding_at_once_leave_the_newest_month_serving(store, tmp_path):
    uri, artifacts = store.tracking_uri, store.artifact_location
    serve_newest(store, "green")  # creates the store's tables before the race
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    older = ["2023-06", "2023-07", "2023-08", "2023-09", "2023-10"]
    newer = ["2024-01", "2023-11", "2024-02", "2023-12"]
    workers = [context.Process(target=_decide_months, args=(uri, artifacts, m, start, results)) for m in (older, newer)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(timeout=180)
        assert worker.exitcode == 0
    served = [results.get(timeout=5) for _ in range(len(older) + len(newer))]
    assert len(served) == 9
    holder = current_champion(store, "green")
    assert holder.tags["champion_month"] == "2024-02"
    # once 2024-02 served, no later decision took it back
    after = [month for _, month in served[[m for m, _ in served].index("2024-02") :]]
    assert set(after) == {"2024-02"}


def test_a_newer_decision_landing_while_the_alias_is_set_wins(store, tmp_path, monkeypatch):
    """The interleaving that set-then-return gets wrong: this process picks its target, another
    registers a newer month and serves it, then this process sets its (older) target. The
    re-read after setting puts the alias back on the newer month."""
    from mlflow.tracking import MlflowClient

    register_champion(store, "green", _champion("2023-12", (tmp_path / "old").as_uri()), "run-old")
    original = MlflowClient.set_registered_model_alias
    interleaved = []

    def set_alias(client, name, alias, version):
        if not interleaved:  # the other process runs between this one's choice and its write
            interleaved.append(version)
            other = TrackingStore(store.tracking_uri, "registry-test", store.artifact_location)
            register_champion(other, "green", _champion("2024-02", (tmp_path / "new").as_uri()), "run-new")
            assert serve_newest(other, "green").month == "2024-02"
        return original(client, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", set_alias)
    serving = serve_newest(store, "green")
    assert [str(v) for v in interleaved] == ["1"]  # it had picked the 2023-12 version
    assert serving.month == "2024-02" and current_champion(store, "green").tags["champion_month"] == "2024-02"


@pytest.mark.fast
def test_choose_champion_refuses_models_trained_on_the_month_it_decides():
    import pandas as pd

    rides = pd.DataFrame({"PULocationID": [1], "DOLocationID": [2], "trip_distance": [1.0], "duration": [5.0]})
    inside = TrainedModel(predictor=None, estimator="xgboost", month="2024-02", trained_months=["2024-02"])
    with pytest.raises(ValueError, match="the challenger xgboost was trained on 2024-02"):
        choose_champion("2024-02", inside, None, rides, 0.0)
    later = Champion(month="2024-02", model=TrainedModel(predictor=None, estimator="lasso", month="2024-02", trained_months=["2024-01"]),
                     won_month="2024-02", rmse=5.0, decision="", promoted=True, challenger="lasso", challenger_rmse=5.0)  # fmt: skip
    ok = TrainedModel(predictor=None, estimator="xgboost", month="2024-02", trained_months=["2024-01"])
    with pytest.raises(ValueError, match=r"the previous champion is champion_model\[2024-02\]"):
        choose_champion("2024-02", ok, later, rides, 0.0)
    assert decide(4.9, 5.0, 0.0)[0] and not decide(5.1, 5.0, 0.0)[0]
