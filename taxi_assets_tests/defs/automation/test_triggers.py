"""Sensors, schedule and declarative automation, driven by Dagster's own evaluation APIs
against a real instance."""

from __future__ import annotations

import shutil
import socket
from datetime import UTC, datetime

import dagster as dg

from taxi_assets.definitions import load_defs
from taxi_assets.defs import partitions
from taxi_assets.defs.automation import conditions, jobs, schedules, sensors
from taxi_assets.defs.ingestion.assets import raw_trips
from taxi_assets.defs.partitions import FIRST_TRAINABLE_MONTH, monthly_partitions
from taxi_assets.defs.preparation.assets import cleaned_trips
from taxi_assets.defs.resources.data_source import TlcDataSource

defs = load_defs()


def requested(result) -> list[str]:
    if isinstance(result, dg.SkipReason):
        return []
    return [r.partition_key for r in result]


def run_sensor(instance, source: TlcDataSource, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"data_source": source})
    result = sensors.new_month_sensor(context)
    return result, context.cursor


def test_new_month_sensor_requests_each_published_month_once(instance, shared_data, tmp_path, resources):
    result, cursor = run_sensor(instance, TlcDataSource(base=str(shared_data)))
    # First start: only the newest TAXI_BOOTSTRAP_MONTHS (3) published months, not all 13.
    assert requested(result) == ["2023-12", "2024-01", "2024-02"]
    assert cursor == "2024-02"
    again, cursor_again = run_sensor(instance, TlcDataSource(base=str(shared_data)), cursor)
    assert isinstance(again, dg.SkipReason) and cursor_again == "2024-02"

    # A folder that publishes 2024-03 later: the next tick requests exactly that month.
    folder = tmp_path / "mirror"
    folder.mkdir()
    shutil.copy(shared_data / "green_tripdata_2024-02.parquet", folder / "green_tripdata_2024-03.parquet")
    result, cursor = run_sensor(instance, TlcDataSource(base=str(folder)), "2024-02")
    assert requested(result) == ["2024-03"] and cursor == "2024-03"


def test_new_month_sensor_skips_months_already_ingested(instance, shared_data, resources):
    dg.materialize([raw_trips], partition_key="2024-01", resources=resources, instance=instance)
    result, _ = run_sensor(instance, TlcDataSource(base=str(shared_data)), "2023-12")
    assert requested(result) == ["2024-02"]


def test_new_month_sensor_survives_source_errors(instance):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result, cursor = run_sensor(instance, TlcDataSource(base=f"http://127.0.0.1:{port}/trip-data", timeout_seconds=2), "2024-01")
    assert isinstance(result, dg.SkipReason)
    assert cursor == "2024-01"


def test_monthly_schedule_targets_the_published_lag(instance, resources):
    dg.materialize([raw_trips], partition_key="2024-01", resources=resources, instance=instance)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=datetime(2024, 4, 25, 6, tzinfo=UTC))
    result = schedules.monthly_ingestion_schedule(context)
    # April 25th: February is out (two months back); January (three back) is already ingested.
    assert [r.partition_key for r in result] == ["2024-02"]


def materialize_raw(month, resources, instance, source=None):
    res = dict(resources, data_source=source) if source else resources
    return dg.materialize([raw_trips], partition_key=month, resources=res, instance=instance, raise_on_error=False)


def automation_requests(instance, resources, cursor=None):
    evaluated = dg.Definitions(assets=defs.assets, resources=resources)
    result = dg.evaluate_automation_conditions(defs=evaluated, instance=instance, cursor=cursor)
    out = {}
    for spec_key in defs.resolve_asset_graph().get_all_asset_keys():
        parts = result.get_requested_partitions(spec_key)
        if parts:
            out[spec_key.to_user_string()] = sorted(parts)
    return out, result.cursor


def test_automation_carries_new_months_downstream(instance, resources):
    # The automation sensor runs continuously: a first tick sees an empty deployment.
    requests, cursor = automation_requests(instance, resources)
    assert requests == {}
    for month in ("2024-01", "2024-02"):
        assert materialize_raw(month, resources, instance).success
    requests, cursor = automation_requests(instance, resources, cursor)
    assert requests == {"cleaned_trips": ["2024-01", "2024-02"]}
    # Downstream assets wait for the blocking checks of cleaned_trips, then follow.
    for month in requests["cleaned_trips"]:
        dg.materialize([raw_trips, cleaned_trips], selection=["cleaned_trips"], partition_key=month,
                       resources=resources, instance=instance)
    requests, cursor = automation_requests(instance, resources, cursor)
    # training_set[2024-01] would need cleaned 2023-12, which is missing, so it waits.
    assert requests == {"training_set": ["2024-02"], "data_drift": ["2024-02"]}
    # Requests are not repeated on the next tick while nothing new arrived.
    again, _ = automation_requests(instance, resources, cursor)
    assert again == {}


def test_blocking_check_failure_stops_automation(instance, resources, shared_data, tmp_path):
    folder = tmp_path / "wrong"
    folder.mkdir()
    shutil.copy(shared_data / "green_tripdata_2023-12.parquet", folder / "green_tripdata_2024-01.parquet")
    _, cursor = automation_requests(instance, resources)
    materialize_raw("2024-01", resources, instance, TlcDataSource(base=str(folder)))  # pickups_in_month fails
    assert materialize_raw("2024-02", resources, instance).success
    requests, _ = automation_requests(instance, resources, cursor)
    assert requests["cleaned_trips"] == ["2024-02"]


def test_every_downstream_asset_has_the_retrain_condition():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        condition = graph.get(key).automation_condition
        if key == conditions.RAW:
            assert condition is None
        elif key == conditions.BACKTEST:
            assert condition.get_label() == "update_after_any_month"
        else:
            assert condition.get_label() == "retrain_on_new_upstream_data", key
    sensor = defs.resolve_sensor_def("taxi_automation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def _drift_run(instance, passed: bool):
    """A real data_drift[2024-02] materialization whose distribution check passes or warns."""

    @dg.asset(
        name="data_drift",
        partitions_def=monthly_partitions,
        check_specs=[dg.AssetCheckSpec("distribution_stable", asset="data_drift")],
    )
    def fake_drift():
        yield dg.Output({"psi_duration": 0.05 if passed else 0.9})
        yield dg.AssetCheckResult(check_name="distribution_stable", passed=passed, severity=dg.AssetCheckSeverity.WARN)

    result = dg.materialize([fake_drift], partition_key="2024-02", instance=instance)
    (record,) = instance.fetch_materializations(dg.AssetKey("data_drift"), limit=1).records
    return result, record.event_log_entry


def test_drift_warning_requests_retraining_of_that_month(instance):
    _drift_run(instance, passed=True)
    (result,) = list(sensors.drift_retraining_sensor(dg.build_sensor_context(instance=instance)))
    assert isinstance(result, dg.SkipReason) and "passed its checks" in result.skip_message
    run, _ = _drift_run(instance, passed=False)
    (request,) = list(sensors.drift_retraining_sensor(dg.build_sensor_context(instance=instance)))
    assert request.partition_key == "2024-02"
    assert request.tags["taxi/reason"] == "drift: distribution_stable"
    assert request.run_key == f"drift-retrain:2024-02:{run.run_id}"
    job = defs.resolve_job_def(jobs.retrain_month_job.name)
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} >= {"training_set", "xgboost", "champion_model"}


def test_automation_never_requests_a_month_that_cannot_train(instance):
    """Months before the first trainable month are never requested for the training tier, even
    when their data arrives; the data tier still flows. (Before: training_set[first month] was
    requested and failed, "needs cleaned_trips for 2022-12".)"""
    first = monthly_partitions.get_first_partition_key()
    assert FIRST_TRAINABLE_MONTH == "2023-02" and first == "2023-01"
    mapping = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=0, allow_nonexistent_upstream_partitions=True)

    @dg.asset(name="raw_trips", partitions_def=monthly_partitions)
    def fake_raw():
        return 1

    @dg.asset(name="cleaned_trips", partitions_def=monthly_partitions, deps=[fake_raw],
              automation_condition=conditions.condition_for(dg.AssetKey("cleaned_trips")))
    def fake_cleaned():
        return 1

    @dg.asset(name="training_set", partitions_def=monthly_partitions,
              deps=[dg.AssetDep(fake_cleaned, partition_mapping=mapping)],
              automation_condition=conditions.condition_for(dg.AssetKey("training_set")))
    def fake_training_set():
        return 1

    small = dg.Definitions(assets=[fake_raw, fake_cleaned, fake_training_set])
    result = dg.evaluate_automation_conditions(defs=small, instance=instance)
    for month in ("2023-01", "2023-02"):
        dg.materialize([fake_raw], partition_key=month, instance=instance)
    result = dg.evaluate_automation_conditions(defs=small, instance=instance, cursor=result.cursor)
    assert sorted(result.get_requested_partitions(dg.AssetKey("cleaned_trips"))) == ["2023-01", "2023-02"]
    # In the same tick (the same run as its inputs) for the trainable month only.
    assert sorted(result.get_requested_partitions(dg.AssetKey("training_set"))) == ["2023-02"]
    for month in ("2023-01", "2023-02"):
        dg.materialize([fake_raw, fake_cleaned], selection=["cleaned_trips"], partition_key=month, instance=instance)
    dg.materialize([fake_cleaned, fake_training_set], selection=["training_set"], partition_key="2023-02", instance=instance)
    result = dg.evaluate_automation_conditions(defs=small, instance=instance, cursor=result.cursor)
    assert result.get_requested_partitions(dg.AssetKey("training_set")) == set()


class Nothing(dg.IOManager):
    """Stores nothing: automation judges materialization records, not values."""

    def handle_output(self, context, obj):
        pass

    def load_input(self, context):
        return None


def champion_line_assets():
    """A stand-in leaderboard and champion_model with the real champion line's edge (the previous
    month's champion, optional) and automation condition."""

    @dg.asset(name="model_leaderboard", partitions_def=monthly_partitions)
    def fake_board():
        return 1

    @dg.asset(name="champion_model", partitions_def=monthly_partitions,
              ins={"model_leaderboard": dg.AssetIn(),
                   "previous_champion": dg.AssetIn(key="champion_model", partition_mapping=partitions.previous_month_mapping(),
                                                   metadata={"optional": True})},
              automation_condition=conditions.condition_for(dg.AssetKey("champion_model")))
    def fake_champion(model_leaderboard, previous_champion):
        return 1

    return fake_board, fake_champion


def test_champion_line_is_decided_month_after_month(instance):
    """champion_model[M] reads champion_model[M-1]: when both months' inputs change in the same
    tick, automation requests M-1 first and M on the tick after M-1 was decided again; an
    absent previous champion (the first month) holds nothing back."""

    fake_board, fake_champion = champion_line_assets()

    small = dg.Definitions(assets=[fake_board, fake_champion])
    resources = {"io_manager": Nothing()}
    champion = dg.AssetKey("champion_model")

    def tick(cursor):
        result = dg.evaluate_automation_conditions(defs=small, instance=instance, cursor=cursor)
        return sorted(result.get_requested_partitions(champion)), result.cursor

    _, cursor = tick(None)
    for month in ("2024-01", "2024-02"):
        dg.materialize([fake_board], partition_key=month, instance=instance, resources=resources)
    requested, cursor = tick(cursor)
    assert requested == ["2024-01"]  # 2024-02 waits for its previous month's decision
    dg.materialize([fake_board, fake_champion], selection=["champion_model"], partition_key="2024-01",
                   instance=instance, resources=resources)
    requested, cursor = tick(cursor)
    assert requested == ["2024-02"]
    dg.materialize([fake_board, fake_champion], selection=["champion_model"], partition_key="2024-02",
                   instance=instance, resources=resources)
    assert tick(cursor)[0] == []


def test_backtest_follows_every_month_even_when_it_ran_beside_one(instance):
    """The unpartitioned backtest follows every month of champion_model. When a month's champion
    and the backtest land between the same two ticks (they ran side by side), the backtest is
    behind that month and is requested again. (Before: Dagster's ``since_last_handled`` let the
    backtest's own update reset the champion's in that tick, the backtest stayed a month behind,
    and the system test waited for it in vain.)"""

    fake_board, fake_champion = champion_line_assets()

    @dg.asset(name="backtest", deps=[fake_champion], automation_condition=conditions.condition_for(conditions.BACKTEST))
    def fake_backtest():
        return 1

    small = dg.Definitions(assets=[fake_board, fake_champion, fake_backtest], resources={"io_manager": Nothing()})

    def tick(cursor):
        result = dg.evaluate_automation_conditions(defs=small, instance=instance, cursor=cursor)
        backtest = result.get_num_requested(dg.AssetKey("backtest"))
        return sorted(result.get_requested_partitions(dg.AssetKey("champion_model"))), backtest, result.cursor

    def decide(month):
        dg.materialize([fake_board, fake_champion], selection=["champion_model"], partition_key=month,
                       instance=instance, resources={"io_manager": Nothing()})  # fmt: skip

    def summarize():
        dg.materialize([fake_board, fake_champion, fake_backtest], selection=["backtest"], instance=instance,
                       resources={"io_manager": Nothing()})  # fmt: skip

    *_, cursor = tick(None)
    for month in ("2024-01", "2024-02"):
        dg.materialize([fake_board], partition_key=month, instance=instance, resources={"io_manager": Nothing()})
    champions, backtests, cursor = tick(cursor)
    assert (champions, backtests) == (["2024-01"], 0)
    decide("2024-01")
    champions, backtests, cursor = tick(cursor)
    assert (champions, backtests) == (["2024-02"], 1)  # launched side by side
    summarize()  # the backtest finishes first,
    decide("2024-02")  # then the month's champion: both between the same two ticks
    champions, backtests, cursor = tick(cursor)
    assert (champions, backtests) == ([], 1)  # the backtest is behind 2024-02: again
    summarize()
    assert tick(cursor)[:2] == ([], 0)


def test_first_start_with_zero_bootstrap_months_ingests_nothing():
    """TAXI_BOOTSTRAP_MONTHS=0: the newest published month is found (the cursor starts there)
    but nothing is requested (before, the newest month was requested anyway)."""
    published = {"2023-12", "2024-01", "2024-02"}
    all_months = ["2023-11", "2023-12", "2024-01", "2024-02", "2024-03"]
    assert sensors.newest_published(all_months, published.__contains__, 0) == ([], "2024-02")
    assert sensors.newest_published(all_months, published.__contains__, 2) == (["2024-01", "2024-02"], "2024-02")
    assert sensors.newest_published(all_months, published.__contains__, 5) == (["2023-12", "2024-01", "2024-02"], "2024-02")
    assert sensors.newest_published(all_months, set().__contains__, 3) == ([], None)
