"""The ``predict`` job: in process against the registered champion, and launched through
Dagster's GraphQL API on a real ``dagster-webserver`` serving the project's code location."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from support.champion import EXAMPLE_RECORDS
from support.data import data_dir
from support.local import free_port
from taxi_assets.definitions import load_defs
from taxi_assets.defs.resources.model_registry import MODEL_REGISTRY_KEY
from taxi_assets.defs.serving.predict_job import (
    MAX_RECORDS,
    predict_job,
    predict_output_metadata,
    predictions_from_metadata,
    read_predictions,
)
from taxi_assets_tests.processes import wait_for_run, wait_for_webserver, webserver

REPO_ROOT = Path(__file__).resolve().parents[3]
# The code location the webserver loads: the project's own, as `dagster dev` would.
CODE_LOCATION = ["-m", "taxi_assets.definitions"]
BAD_DISTANCE = {"PULocationID": 236, "DOLocationID": 239, "trip_distance": -1.0}
# The job as the code location wires it (the model_registry resource is bound there).
PREDICT = load_defs().resolve_job_def("predict")


def run_config(records: list[dict], tracking_uri: str | None = None, **op_config) -> dict:
    config: dict = {"ops": {"score_rides": {"config": {"records": records, **op_config}}}}
    if tracking_uri:
        config["resources"] = {MODEL_REGISTRY_KEY: {"config": {"tracking_uri": tracking_uri}}}
    return config


def failure_message(result) -> str:
    """The step's ``dagster.Failure`` description (what the UI and the alerts show)."""
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    return failure.step_failure_data.user_failure_data.description


def test_predict_job_records_the_champions_predictions(champion, instance):
    result = PREDICT.execute_in_process(run_config=run_config(EXAMPLE_RECORDS, champion.tracking_uri), instance=instance)
    assert result.success
    expected = champion.predictor.predict(pd.DataFrame(EXAMPLE_RECORDS))
    metadata = predict_output_metadata(result.all_events)
    assert np.allclose(predictions_from_metadata(metadata), expected, rtol=1e-12, atol=0)
    assert metadata["records"].value == 4
    assert metadata["mean_prediction"].value == pytest.approx(float(expected.mean()), abs=1e-4)
    assert metadata["model_uri"].value == "models:/taxi-trip-duration-green@champion"
    assert metadata["model_version"].value == champion.version
    table = metadata["table"].value.splitlines()
    assert table[0] == "| # | PULocationID | DOLocationID | trip_distance | minutes |"
    assert table[2] == f"| 0 | 236 | 239 | 1.98 | {expected[0]:.2f} |"
    assert len(table) == 2 + 4
    # the same figures from the instance's event log, and one log line per prediction
    assert read_predictions(instance, result.run_id) == predictions_from_metadata(metadata)
    logs = [e.user_message for e in instance.all_logs(result.run_id) if e.dagster_event is None]
    assert f"record 0: PU 236 -> DO 239, 1.98 mi: {expected[0]:.2f} min" in logs
    assert f"record 3: PU 1 -> DO 265, 12.5 mi: {expected[3]:.2f} min" in logs


def test_predict_job_with_an_explicit_model_version(champion):
    config = run_config(EXAMPLE_RECORDS[:1], champion.tracking_uri, model_uri=f"models:/{champion.model_name}/1")
    result = PREDICT.execute_in_process(run_config=config)
    metadata = predict_output_metadata(result.all_events)
    assert metadata["model_uri"].value == "models:/taxi-trip-duration-green/1"
    assert predictions_from_metadata(metadata) == pytest.approx(champion.predictor.predict(pd.DataFrame(EXAMPLE_RECORDS[:1])).tolist(), abs=1e-12)


@pytest.mark.parametrize(
    "records, message",
    [
        ([EXAMPLE_RECORDS[0], BAD_DISTANCE], "predict: bad request: field 'trip_distance' must not be negative, got -1.0 in record 1"),
        ([dict(EXAMPLE_RECORDS[0], PULocationID=300)], "predict: bad request: field 'PULocationID' must be a TLC zone id between 1 and 265, got 300 in record 0"),
        ([dict(EXAMPLE_RECORDS[0], DOLocationID=0)], "predict: bad request: field 'DOLocationID' must be a TLC zone id between 1 and 265, got 0 in record 0"),
        ([], "predict: bad request: no records to score: send at least one {PULocationID, DOLocationID, trip_distance}"),
        ([dict(EXAMPLE_RECORDS[0], trip_distance=1e308)], "predict: bad request: field 'trip_distance' must be at most 100 miles (the models know rides of at most 60 minutes; farther would be over 100 mph), got 1e+308 in record 0"),
    ],
)  # fmt: skip
def test_bad_requests_fail_the_run_with_the_validation_message(champion, records, message):
    result = PREDICT.execute_in_process(run_config=run_config(records, champion.tracking_uri), raise_on_error=False)
    assert not result.success
    assert failure_message(result) == message


@pytest.mark.parametrize(
    "record, message",
    [
        ({"PULocationID": 236, "DOLocationID": 239}, 'Missing required config entry "trip_distance" at path root:ops:score_rides:config:records[0]'),
        ({"PULocationID": "abc", "DOLocationID": 239, "trip_distance": 1.0}, 'Invalid scalar at path root:ops:score_rides:config:records[0]:PULocationID. Value "abc"'),
        ({"PULocationID": 236, "DOLocationID": 239, "trip_distance": "far"}, 'Invalid scalar at path root:ops:score_rides:config:records[0]:trip_distance. Value "far"'),
        ({"PULocationID": 236.5, "DOLocationID": 239, "trip_distance": 1.0}, "Invalid scalar at path root:ops:score_rides:config:records[0]:PULocationID. Value \"236.5\""),
    ],
)  # fmt: skip
def test_missing_or_non_numeric_fields_are_refused_before_a_run_starts(champion, record, message):
    with pytest.raises(dg.DagsterInvalidConfigError) as caught:
        PREDICT.execute_in_process(run_config=run_config([record], champion.tracking_uri))
    assert message in str(caught.value)


def test_no_champion_and_too_many_records_fail_with_actionable_messages(champion, tmp_path):
    absent = tmp_path / "no-store" / "mlflow.db"
    result = PREDICT.execute_in_process(run_config=run_config(EXAMPLE_RECORDS, f"sqlite:///{absent}"), raise_on_error=False)
    assert failure_message(result).startswith(f"predict: no MLflow store at {absent} ")
    assert "run the pipeline first" in failure_message(result)
    config = run_config(EXAMPLE_RECORDS, champion.tracking_uri, model_uri="models:/taxi-trip-duration-yellow@champion")
    result = PREDICT.execute_in_process(run_config=config, raise_on_error=False)
    assert "predict: no champion registered yet: models:/taxi-trip-duration-yellow@champion" in failure_message(result)
    too_many = [EXAMPLE_RECORDS[0]] * (MAX_RECORDS + 1)
    result = PREDICT.execute_in_process(run_config=run_config(too_many, champion.tracking_uri), raise_on_error=False)
    assert failure_message(result) == (
        "predict: 10,001 records is more than 10,000: score a whole month with the trip_duration_predictions asset instead"
    )


def test_predict_job_loads_in_the_project_code_location():
    """Beside every other definition (names are unique per code location: the op is not 'predict')."""
    from taxi_assets.settings import SETTINGS

    defs = load_defs()
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def(predict_job.name)
    assert [node.name for node in job.nodes] == ["score_rides"]
    assert job.executor_def.name == "in_process"
    registry = job.resource_defs[MODEL_REGISTRY_KEY].config_schema.config_type.fields
    assert registry["tracking_uri"].default_value == SETTINGS.mlflow_tracking_uri
    assert "taxi_type" not in registry  # one setting for the taxi type (TAXI_TYPE)


# --- through the GraphQL API of a running webserver ----------------------------------------------


def test_predict_job_launched_through_graphql(champion, tmp_path):
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    home = tmp_path / "dagster_home"
    home.mkdir()
    # No daemon here: the default QueuedRunCoordinator would leave the runs QUEUED, so runs are
    # launched straight away (by the default run launcher, in a subprocess of the code server).
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
    )
    port = free_port()
    env = dict(
        os.environ,
        DAGSTER_HOME=str(home),
        MLFLOW_TRACKING_URI=champion.tracking_uri,
        TAXI_DATA_ROOT=str(tmp_path / "data"),
        TAXI_DATA_SOURCE=str(data_dir()),
        PYTHONWARNINGS="ignore",
    )
    log_path = tmp_path / "webserver.log"
    with webserver(CODE_LOCATION, env, tmp_path, log_path, port) as process:
        wait_for_webserver(process, port)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        try:
            good = client.submit_job_execution("predict", run_config=run_config(EXAMPLE_RECORDS))
        except DagsterGraphQLClientError as exc:
            pytest.fail(
                f"cannot launch 'predict' in the code location {' '.join(CODE_LOCATION)} ({exc}): is predict_job "
                f"in its Definitions? Webserver log:\n{process.log_tail()}"
            )
        bad = client.submit_job_execution("predict", run_config=run_config([BAD_DISTANCE]))
        with pytest.raises(DagsterGraphQLClientError) as refused:
            client.submit_job_execution("predict", run_config=run_config([{"PULocationID": 236, "DOLocationID": 239}]))
        reason, errors = refused.value.args
        assert reason == "RunConfigValidationInvalid"
        assert [e["message"].split(". ")[0] for e in errors] == [
            'Missing required config entry "trip_distance" at path root:ops:score_rides:config:records[0]'
        ]

        from dagster import DagsterRunStatus

        assert wait_for_run(client, good) == DagsterRunStatus.SUCCESS, process.log_tail()
        assert wait_for_run(client, bad) == DagsterRunStatus.FAILURE

    with dg.DagsterInstance.from_config(str(home)) as instance:
        expected = champion.predictor.predict(pd.DataFrame(EXAMPLE_RECORDS))
        assert np.allclose(read_predictions(instance, good), expected, rtol=1e-12, atol=0)
        failures = instance.all_logs(bad, of_type=dg.DagsterEventType.STEP_FAILURE)
        assert [f.dagster_event.step_failure_data.user_failure_data.description for f in failures] == [
            "predict: bad request: field 'trip_distance' must not be negative, got -1.0 in record 0"
        ]
        assert instance.get_run_by_id(good).run_config["ops"]["score_rides"]["config"]["records"][0] == EXAMPLE_RECORDS[0]
