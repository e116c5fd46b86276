"""The champion line over months, through Dagster and a real MLflow registry: the same champions
and the same served version whatever order the months are decided in, an alias that never moves
back to an older month, drift scoring each champion on the month after it, and the backtest.

Three trained months (2023-12, 2024-01, 2024-02; one evaluation per model) are decided in order,
then, after the champion line is erased, newest first with a backfill of the older months and
the re-decisions Dagster's own automation asks for.
"""

from __future__ import annotations

import dagster as dg
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from taxi_assets.definitions import load_defs
from taxi_assets.ml.champion import Champion
from taxi_assets.ml.estimators import ESTIMATORS
from taxi_assets.ml.metrics import baseline_rmse, regression_metrics
from taxi_assets.registry.names import CHAMPION_ALIAS, champion_model_name

DEFS = load_defs()
ALL = [*DEFS.assets, *DEFS.asset_checks]
DATA_MONTHS = ["2023-11", "2023-12", "2024-01", "2024-02"]
DECIDED = ["2023-12", "2024-01", "2024-02"]
QUICK = {
    "ops": {
        **{name: {"config": {"max_evaluations": 1, "random_state": 7}} for name in ESTIMATORS},
        "xgboost": {"config": {"max_evaluations": 1, "random_state": 7, "num_boost_round": 60, "max_depth": 6}},
    }
}
LINE = champion_model_name("green")
CHAMPION = dg.AssetKey("champion_model")


def meta(result, key: str) -> dict:
    (mat,) = result.asset_materializations_for_node(key)
    return {k: getattr(v, "value", getattr(v, "text", v)) for k, v in mat.metadata.items()}


class Deployment:
    """One data root, MLflow store and instance, with the months' models trained once."""

    def __init__(self, root, resources, instance, store):
        self.root, self.resources, self.instance, self.store = root, resources, instance, store
        self.client = MlflowClient(tracking_uri=store["tracking_uri"])
        self.io = resources["io_manager"]
        self.cursor = None

    def materialize(self, selection, month=None, **kwargs):
        return dg.materialize(ALL, selection=selection, partition_key=month, resources=self.resources,
                              instance=self.instance, **kwargs)  # fmt: skip

    def decide(self, month: str) -> dict:
        return meta(self.materialize(["champion_model"], month), "champion_model")

    def served(self) -> tuple[str, str]:
        """(champion_month, model source) of the version the alias points to."""
        version = self.client.get_model_version_by_alias(LINE, CHAMPION_ALIAS)
        return version.tags["champion_month"], version.source

    def line(self) -> dict[str, tuple]:
        """Every decided month's champion: (estimator, month it won, model URI, trained months)."""
        out = {}
        for month in DECIDED:
            champion = self.io.load(CHAMPION, month)
            out[month] = (champion.name, champion.won_month, champion.model_uri, tuple(champion.trained_months))
        return out

    def erase_line(self) -> None:
        """Forget every decision: the registry's champion line and the stored champion_model files."""
        self.client.delete_registered_model(LINE)
        for month in DECIDED:
            self.io.path_for(CHAMPION, month).unlink()

    def automation_requests(self, key: dg.AssetKey) -> list[str]:
        """What Dagster's automation would request for ``key`` now (one tick; the cursor is kept)."""
        evaluated = dg.Definitions(assets=DEFS.assets, asset_checks=DEFS.asset_checks, resources=self.resources)
        result = dg.evaluate_automation_conditions(defs=evaluated, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        return sorted(result.get_requested_partitions(key))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, shared_data):
    from taxi_assets.defs.resources.data_source import TlcDataSource
    from taxi_assets.defs.resources.io_manager import TaxiIOManager
    from taxi_assets.defs.resources.notifier import AlertNotifier
    from taxi_assets.defs.resources.tracking import MlflowTracking

    root = tmp_path_factory.mktemp("lifecycle")
    store = {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "artifact_location": (root / "artifacts").as_uri()}
    resources = {
        "io_manager": TaxiIOManager(data_root=str(root / "outputs")),
        "data_source": TlcDataSource(base=str(shared_data)),
        "mlflow": MlflowTracking(**store),
        "notifier": AlertNotifier(),
    }
    (root / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(root / "home")) as instance:
        d = Deployment(root, resources, instance, store)
        for month in DATA_MONTHS:
            d.materialize(["raw_trips", "cleaned_trips"], month)
        for month in DECIDED:
            d.materialize(["training_set", *ESTIMATORS, "model_leaderboard"], month, run_config=QUICK)
        yield d


@pytest.fixture(scope="module")
def in_order(deployment):
    """Months decided oldest first; the alias follows each newer month."""
    d = deployment
    for month in DECIDED:
        m = d.decide(month)
        assert d.served()[0] == month, f"after deciding {month} the alias serves {d.served()[0]}"
        assert m["serving_month"] == month
    return d.line(), d.served()


@pytest.fixture(scope="module")
def newest_first(deployment, in_order):
    """The same months decided newest first, then backfilled one month at a time, with an
    automation tick after every run (as the daemon ticks) deciding what it requests; the alias
    is checked after every decision."""
    d = deployment
    d.automation_requests(CHAMPION)  # a tick before: the cursor every later tick compares with
    d.erase_line()
    steps, requested = [], []

    def decide(month: str) -> None:
        m = d.decide(month)
        steps.append((month, m["serving"]))
        assert d.served()[0] == "2024-02", f"deciding {month} moved the alias to {d.served()[0]}"

    def settle() -> None:
        for _ in range(5):
            months = d.automation_requests(CHAMPION)
            requested.append(months)
            if not months:
                return
            for month in months:
                decide(month)
        raise AssertionError(f"automation kept requesting champion_model: {requested}")

    for month in ["2024-02", "2024-01", "2023-12"]:
        decide(month)
        settle()
    return {"line": d.line(), "served": d.served(), "requested": requested, "steps": steps}


def test_decision_order_does_not_change_the_champions_or_the_served_model(in_order, newest_first):
    line, served = in_order
    # after each backfilled month, automation re-decided the months after it, in order
    assert newest_first["requested"] == [[], ["2024-02"], [], ["2024-01"], ["2024-02"], []]
    assert newest_first["line"] == line
    assert newest_first["served"] == served and served[0] == "2024-02"
    # a backfilled month never moved the alias; a newer one did
    first, backfilled = newest_first["steps"][0], newest_first["steps"][1]
    assert first[0] == "2024-02" and first[1].startswith("alias 'champion' set to version")
    assert backfilled[0] == "2024-01" and backfilled[1].startswith("alias 'champion' stays on version")
    assert "(champion of 2024-02)" in backfilled[1]


def test_every_model_a_decision_sees_was_trained_before_its_month(deployment, newest_first):
    d = deployment
    for month in DECIDED:
        champion = d.io.load(CHAMPION, month)
        assert isinstance(champion, Champion) and champion.month == month
        assert champion.trained_months and max(champion.trained_months) < month
        assert champion.model.month <= month and champion.won_month <= month
    versions = d.client.search_model_versions(f"name='{LINE}'")
    latest = {}
    for version in versions:
        month = version.tags["champion_month"]
        if int(version.version) > int(latest.get(month, version).version) or month not in latest:
            latest[month] = version
    for month, version in latest.items():
        champion = d.io.load(CHAMPION, month)
        assert version.tags["won_month"] == champion.won_month
        assert version.tags["trained_months"] == ",".join(champion.trained_months)
        assert int(version.version) == champion.registry_version


def test_rerunning_an_old_month_keeps_serving_the_newest(deployment, newest_first):
    d = deployment
    before = d.line()
    m = d.decide("2023-12")
    assert m["serving"].startswith("alias 'champion' stays on version") and d.served() == newest_first["served"]
    assert d.line() == before


def test_drift_scores_each_champion_on_the_month_after_it(deployment, newest_first):
    d = deployment
    for month in ("2024-01", "2024-02"):
        d.materialize(["data_drift"], month)
        report = d.io.load(dg.AssetKey("data_drift"), month)
        (previous,) = [m for m in DECIDED if m < month][-1:]
        champion = d.io.load(CHAMPION, previous)
        assert report["previous_champion_month"] == previous < month
        assert report["previous_champion_trained_months"] and max(report["previous_champion_trained_months"].split(", ")) < month
        assert report["previous_champion_version"] == champion.registry_version
        rides = d.io.load(dg.AssetKey("cleaned_trips"), month)
        honest = regression_metrics(rides["duration"], champion.predict(rides[["PULocationID", "DOLocationID", "trip_distance"]]))
        assert report["previous_champion_rmse"] == pytest.approx(honest["rmse"], abs=1e-6)
        assert report["previous_champion_selection_rmse"] == pytest.approx(champion.rmse, abs=1e-6)
        train = d.io.load(dg.AssetKey("cleaned_trips"), previous)
        assert report["previous_champion_baseline_rmse"] == pytest.approx(baseline_rmse(train["duration"], rides["duration"]), abs=1e-6)


def test_backtest_tables_every_champion_and_its_next_month(deployment, newest_first):
    d = deployment
    test_drift_scores_each_champion_on_the_month_after_it(deployment, newest_first)
    result = d.materialize(["backtest"])
    frame = d.io.load(dg.AssetKey("backtest"), None)
    assert list(frame["month"]) == DECIDED and list(frame["next_month"]) == ["2024-01", "2024-02", "2024-03"]
    for _, row in frame.iterrows():
        champion = d.io.load(CHAMPION, row["month"])
        assert row["champion"] == champion.name and row["won_month"] == champion.won_month
        assert row["selection_rmse"] == pytest.approx(champion.rmse)
        assert row["registry_version"] == champion.registry_version
    for month, following in (("2023-12", "2024-01"), ("2024-01", "2024-02")):
        report = d.io.load(dg.AssetKey("data_drift"), following)
        row = frame[frame["month"] == month].iloc[0]
        assert row["next_month_rmse"] == pytest.approx(report["previous_champion_rmse"])
        assert row["next_month_baseline_rmse"] == pytest.approx(report["previous_champion_baseline_rmse"])
        assert row["next_month_rmse"] < row["next_month_baseline_rmse"]
    assert np.isnan(frame[frame["month"] == "2024-02"].iloc[0]["next_month_rmse"])  # 2024-03 is not here
    m = meta(result, "backtest")
    assert m["months"] == 3 and m["months_scored_on_the_next_month"] == 2 and m["dagster/row_count"] == 3
    assert m["honest_rmse_by_month"].startswith("![champion RMSE by month](data:image/png;base64,")
    assert [r.data["month"] for r in m["backtest"].records] == DECIDED
    described = {c.name: c.description for c in m["dagster/column_schema"].columns}
    assert list(described) == list(frame.columns) and all(described.values())  # the UI says what each column means
    assert described["next_month_rmse"].endswith("the figure to quote")
