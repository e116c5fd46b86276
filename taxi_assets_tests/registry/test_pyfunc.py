"""``taxi_assets/registry/pyfunc.py`` as the scoring server runs it, in process: a model saved
with the project's pyfunc, loaded by MLflow, and fed JSON payloads through MLflow's own
``invocations`` (the function behind ``POST /invocations``). Property-based: any JSON payload
is scored (finite minutes, one per record) or refused as a bad request; never MLflow's
"unexpected error" (a 500 with a stack trace), never an exception MLflow does not turn into a
response."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST, INVALID_PARAMETER_VALUE, ErrorCode

from taxi_assets_tests.strategies import FIELD_VALUES, GOOD_RECORDS, JSON_VALUES, RECORDS

pytestmark = pytest.mark.fast

GOOD = {"PULocationID": 236, "DOLocationID": 239, "trip_distance": 1.98}


@pytest.fixture(scope="module")
def served(small_predictor, tmp_path_factory):
    """The small predictor saved as the project's pyfunc model and loaded back by MLflow."""
    import joblib
    import mlflow

    from taxi_assets.registry.pyfunc import MODEL_CODE, PREDICTOR_ARTIFACT

    folder = tmp_path_factory.mktemp("pyfunc")
    joblib.dump(small_predictor, folder / "predictor.joblib")
    (folder / "model.py").write_text(MODEL_CODE)
    mlflow.pyfunc.save_model(
        folder / "model", python_model=str(folder / "model.py"), artifacts={PREDICTOR_ARTIFACT: str(folder / "predictor.joblib")},
        signature=False, pip_requirements=[],
    )  # fmt: skip
    return mlflow.pyfunc.load_model(str(folder / "model"))


def invoke(model, payload) -> tuple[int, str]:
    """(status, body) as the scoring server answers ``payload`` (JSON text)."""
    from mlflow.pyfunc import scoring_server

    try:
        response = scoring_server.invocations(payload, "application/json", model, None)
    except MlflowException as error:
        return error.get_http_status_code(), json.dumps({"error_code": error.error_code, "message": error.message,
                                                         "stack_trace": getattr(error, "stack_trace", None)})  # fmt: skip
    return response.status, response.response


def test_a_good_record_is_scored_and_a_bad_one_is_a_400_naming_the_field(served):
    status, body = invoke(served, json.dumps({"dataframe_records": [GOOD, dict(GOOD, trip_distance=3.0)]}))
    minutes = json.loads(body)["predictions"]
    assert status == 200 and len(minutes) == 2 and minutes[1] > minutes[0] > 0
    status, body = invoke(served, json.dumps({"dataframe_records": [GOOD, dict(GOOD, PULocationID=300)]}))
    error = json.loads(body)
    assert status == 400 and error["error_code"] == ErrorCode.Name(INVALID_PARAMETER_VALUE)
    assert error["message"].endswith("field 'PULocationID' must be a TLC zone id between 1 and 265, got 300 in record 1")
    status, body = invoke(served, json.dumps({"inputs": {"PULocationID": [236], "DOLocationID": [239], "trip_distance": [101]}}))
    assert status == 400 and "field 'trip_distance' must be at most 100 miles" in json.loads(body)["message"]


PAYLOADS = st.one_of(
    st.fixed_dictionaries({"dataframe_records": st.one_of(st.lists(RECORDS, max_size=4), st.lists(GOOD_RECORDS, max_size=4), JSON_VALUES)}),
    st.fixed_dictionaries({"inputs": st.one_of(RECORDS, st.lists(RECORDS, max_size=3), JSON_VALUES,
                                               st.dictionaries(st.sampled_from(list(GOOD)), st.lists(FIELD_VALUES, max_size=3)))}),  # fmt: skip
    st.fixed_dictionaries({"instances": st.one_of(st.lists(RECORDS, max_size=3), JSON_VALUES)}),
    st.fixed_dictionaries({"dataframe_split": st.fixed_dictionaries({"columns": st.just(list(GOOD)), "data": st.lists(st.lists(FIELD_VALUES, min_size=3, max_size=3), max_size=3)})}),
    JSON_VALUES,
)  # fmt: skip


@given(payload=PAYLOADS)
def test_any_json_payload_is_scored_or_a_bad_request_never_an_unexpected_error(served, payload):
    status, body = invoke(served, json.dumps(payload))
    answer = json.loads(body)
    if status == 200:
        minutes = answer["predictions"]
        assert minutes and all(isinstance(m, float) and math.isfinite(m) for m in minutes)
        return
    assert status == 400, answer
    assert "unexpected error" not in answer["message"] and not answer["stack_trace"], answer
    assert answer["error_code"] in (ErrorCode.Name(INVALID_PARAMETER_VALUE), ErrorCode.Name(BAD_REQUEST)), answer
    if answer["error_code"] == ErrorCode.Name(INVALID_PARAMETER_VALUE):  # our refusal, as MLflow wraps it: last line
        ours = answer["message"].rsplit("Error: ", 1)[-1]
        assert "\n" not in ours and len(ours) <= 400, ours
