"""``taxi_assets/registry/champion.py`` against an in-memory registry (the MLflow client's four
calls the module makes; the same logic on a real MLflow store is in
``test_champion_mlflow.py``): the alias goes to the newest month's latest decision, never
back; a decision registered while the alias is being set is seen on the re-read; an alias that
never settles is one error; and each version carries the month, lineage and decision tags."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException

from taxi_assets.ml.champion import Champion
from taxi_assets.ml.trained import TrainedModel
from taxi_assets.registry.champion import Serving, alias_target, register_champion, serve_newest

pytestmark = pytest.mark.fast

NAME = "taxi-trip-duration-green"


def version(number: int, month: str | None, **tags):
    return SimpleNamespace(version=number, tags={"champion_month": month, **tags} if month else tags or None)


class Registry:
    """The registry calls :func:`serve_newest` makes; ``on_set`` runs after each alias write
    (another process registering meanwhile)."""

    def __init__(self, versions, alias: int | None = None, on_set=None):
        self.versions = list(versions)
        self.alias = alias
        self.on_set = on_set
        self.searches: list[str] = []
        self.sets: list[tuple[str, str, int]] = []

    def search_model_versions(self, filter_string):
        self.searches.append(filter_string)
        return list(self.versions)

    def get_model_version_by_alias(self, name, alias):
        assert (name, alias) == (NAME, "champion")
        held = [v for v in self.versions if v.version == self.alias]
        if not held:
            raise MlflowException(f"alias {alias} not found")
        return held[0]

    def set_registered_model_alias(self, name, alias, number):
        self.sets.append((name, alias, number))
        self.alias = number
        if self.on_set is not None:
            self.on_set(self)


def store(registry: Registry):
    return SimpleNamespace(client=registry)


def test_alias_target_is_the_newest_month_then_the_latest_version():
    assert alias_target([]) is None and alias_target([version(1, None), version(2, "")]) is None
    versions = [version(3, "2024-01"), version(1, "2024-02"), version(2, "2023-12"), version(9, None)]
    assert alias_target(versions).version == 1
    assert alias_target([*versions, version(4, "2024-02")]).version == 4
    assert alias_target([version(10, "2024-02"), version(9, "2024-02")]).version == 10  # numbers, not text: 10 > 9


def test_the_first_decision_sets_the_alias():
    registry = Registry([version(1, "2024-01")])
    serving = serve_newest(store(registry), "green")
    assert serving == Serving(version=1, month="2024-01", previous_version=None, previous_month=None)
    assert registry.sets == [(NAME, "champion", 1)] and registry.searches[0] == f"name='{NAME}'"
    assert serving.moved and serving.describe("2024-01") == "alias 'champion' set to version 1 (champion of 2024-01)"


def test_an_older_month_leaves_the_alias_and_a_newer_one_moves_it():
    registry = Registry([version(1, "2024-02"), version(2, "2024-01")], alias=1)
    kept = serve_newest(store(registry), "green")
    assert kept == Serving(1, "2024-02", 1, "2024-02") and registry.sets == [] and not kept.moved
    assert kept.describe("2024-01") == "alias 'champion' stays on version 1 (champion of 2024-02)"
    registry.versions.append(version(3, "2024-03"))
    moved = serve_newest(store(registry), "green")
    assert moved == Serving(3, "2024-03", 1, "2024-02") and registry.sets == [(NAME, "champion", 3)]
    assert moved.describe("2024-03") == "alias 'champion' moved from version 1 (champion of 2024-02) to version 3 (champion of 2024-03)"
    assert moved.describe("2024-01") == moved.describe("2024-03") + ", newer than 2024-01"


def test_a_decision_landing_while_the_alias_is_set_is_served():
    def newer_lands(registry):
        if len(registry.sets) == 1:
            registry.versions.append(version(5, "2024-04"))

    registry = Registry([version(1, "2024-02"), version(4, "2024-03")], alias=1, on_set=newer_lands)
    serving = serve_newest(store(registry), "green")
    assert [number for _, _, number in registry.sets] == [4, 5]
    assert serving == Serving(5, "2024-04", 1, "2024-02")


def test_a_line_without_versions_serves_nothing_and_an_alias_that_never_settles_is_one_error():
    assert serve_newest(store(Registry([])), "green") is None
    assert serve_newest(store(Registry([version(1, None)])), "green") is None

    def taken_back(registry):  # another process keeps pointing it elsewhere
        registry.alias = 99

    registry = Registry([version(1, "2024-02")], on_set=taken_back)
    with pytest.raises(RuntimeError) as caught:
        serve_newest(store(registry), "green", attempts=3)
    assert str(caught.value) == f"the 'champion' alias of {NAME} did not settle after 3 attempts"
    assert len(registry.sets) == 3
    with pytest.raises(RuntimeError, match="after 10 attempts"):
        serve_newest(store(Registry([version(1, "2024-02")], on_set=taken_back)), "green")


def test_a_previous_holder_without_tags_is_reported_without_a_month():
    registry = Registry([version(1, None), version(2, "2024-02")], alias=1)
    assert serve_newest(store(registry), "green") == Serving(2, "2024-02", 1, None)


class Store:
    def __init__(self):
        self.calls = []

    def register(self, name, model_uri, run_id, tags, description=""):
        self.calls.append((name, model_uri, run_id, tags, description))
        return "version"


def champion(promoted: bool, run_id: str) -> Champion:
    trained = TrainedModel(predictor=None, estimator="lightgbm", month="2024-01", model_uri="models:/m-abc",
                           mlflow_run_id=run_id, trained_months=["2023-11", "2023-12"])  # fmt: skip
    return Champion(month="2024-03", model=trained, won_month="2024-01", rmse=5.123456789, decision="", promoted=promoted,
                    challenger="xgboost", challenger_rmse=6.0)  # fmt: skip


def test_each_version_carries_its_month_lineage_and_decision():
    registry = Store()
    assert register_champion(registry, "yellow", champion(False, "mlflow-run"), "dagster-run") == "version"
    (name, uri, run_id, tags, description), = registry.calls  # fmt: skip
    assert (name, uri, run_id) == ("taxi-trip-duration-yellow", "models:/m-abc", "mlflow-run")
    assert tags == {
        "champion_month": "2024-03", "won_month": "2024-01", "trained_months": "2023-11,2023-12", "decision": "kept",
        "estimator": "lightgbm", "validation_month": "2024-01", "rmse": "5.123457", "dagster.partition": "2024-03",
        "dagster.run_id": "dagster-run",
    }  # fmt: skip
    assert description == "Champion line: one version per month's decision; the 'champion' alias is the newest month's."
    register_champion(registry, "green", champion(True, ""), "r")
    assert registry.calls[1][2] is None and registry.calls[1][3]["decision"] == "promoted"
