"""Prediction requests that are not ride records: booleans, nested values, deep nesting and any
other shape are one clear :class:`InvalidRequestError`, never scored and never a crash.

Plain core, in process: :func:`validate_request` / :func:`request_frame` (what the predictor,
the pyfunc model and the CLI use) and :func:`records_from_json` (the CLI's JSON shapes). The same
requests over HTTP against ``mlflow models serve`` are in ``registry/test_serving.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from taxi_assets.ml.features import InvalidRequestError, request_frame, validate_request
from taxi_assets.registry.serving import records_from_json, records_from_json_text

pytestmark = pytest.mark.fast

GOOD = {"PULocationID": 236, "DOLocationID": 239, "trip_distance": 1.98}


def nested_list(depth: int, leaf=1):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def nested_dict(depth: int, leaf=1):
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def rejected(records) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(records)
    message = str(caught.value)
    assert len(message) < 300, message  # one line, whatever was sent
    return message


# --- booleans -----------------------------------------------------------------------------------

BOOLEANS = {
    "true zone": ([dict(GOOD, PULocationID=True)], "field 'PULocationID' must be a number, not a boolean: got True in record 0"),
    "false zone after a good ride": (
        [GOOD, dict(GOOD, DOLocationID=False)],
        "field 'DOLocationID' must be a number, not a boolean: got False in record 1",
    ),
    "true distance": ([dict(GOOD, trip_distance=True)], "field 'trip_distance' must be a number, not a boolean: got True in record 0"),
    "one record": (dict(GOOD, PULocationID=True), "field 'PULocationID' must be a number, not a boolean: got True in record 0"),
    "columns": (
        {"PULocationID": [True], "DOLocationID": [239], "trip_distance": [1.0]},
        "field 'PULocationID' must be a number, not a boolean: got True in record 0",
    ),
    "numpy bool column": (
        {"PULocationID": np.array([236, 74]), "DOLocationID": np.array([239, 75]), "trip_distance": np.array([True, False])},
        "field 'trip_distance' must be a number, not a boolean: got True in record 0",
    ),
    "nullable boolean frame": (
        pd.DataFrame({"PULocationID": [236], "DOLocationID": pd.array([True], dtype="boolean"), "trip_distance": [1.0]}),
        "field 'DOLocationID' must be a number, not a boolean: got True in record 0",
    ),
    "numpy bool scalar": ([dict(GOOD, PULocationID=np.bool_(True))], "field 'PULocationID' must be a number, not a boolean: got True in record 0"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BOOLEANS))
def test_booleans_are_not_zones_or_distances(case):
    records, message = BOOLEANS[case]
    assert rejected(records) == message


def test_a_boolean_is_never_scored_as_zone_one():
    """Today's bug: ``true`` became zone 1 (and a distance of 1 mile)."""
    frame = pd.DataFrame([dict(GOOD, PULocationID=True)])
    assert frame["PULocationID"].dtype == bool
    with pytest.raises(InvalidRequestError, match="not a boolean"):
        validate_request(frame)


# --- nested values and other shapes ----------------------------------------------------------------

NESTED = {
    "object as zone": ([dict(GOOD, PULocationID={"id": 236})], "field 'PULocationID' holds a nested object in record 0: each field of a ride is one plain value"),
    "list as distance": ([GOOD, dict(GOOD, trip_distance=[1.98])], "field 'trip_distance' holds a nested list in record 1: each field of a ride is one plain value"),
    "deep list": ([dict(GOOD, PULocationID=nested_list(5000))], "field 'PULocationID' holds a nested list in record 0: each field of a ride is one plain value"),
    "deep object": ([dict(GOOD, DOLocationID=nested_dict(5000))], "field 'DOLocationID' holds a nested object in record 0: each field of a ride is one plain value"),
    "nested extra field": ([dict(GOOD, note={"a": [1, {"b": 2}]})], "field 'note' holds a nested object in record 0: each field of a ride is one plain value"),
    "tuple": ([dict(GOOD, PULocationID=(236,))], "field 'PULocationID' holds a nested list in record 0: each field of a ride is one plain value"),
    "columns of nested lists (MLflow's instances/inputs)": (
        {"PULocationID": np.array([[236]]), "DOLocationID": np.array([239]), "trip_distance": np.array([1.98])},
        "field 'PULocationID' holds nested lists (an array of shape 1x1): give one plain value per ride",
    ),
    "columns holding lists": (
        {"PULocationID": [[236, 74]], "DOLocationID": [239], "trip_distance": [1.0]},
        "field 'PULocationID' holds a nested list in record 0: each field of a ride is one plain value",
    ),
    "list of lists": ([[236, 239, 1.98]], "expected ride records {PULocationID, DOLocationID, trip_distance} (a list of objects, one object, or columns of values), got a list of lists"),
    "list of strings": (["236", "239"], "expected ride records {PULocationID, DOLocationID, trip_distance} (a list of objects, one object, or columns of values), got a list of strings"),
    "records mixed with a list": ([GOOD, [1, 2, 3]], "expected ride records {PULocationID, DOLocationID, trip_distance} (a list of objects, one object, or columns of values), got a list of objects and lists"),
    "a string": ("PULocationID=236", "expected ride records {PULocationID, DOLocationID, trip_distance} (a list of objects, one object, or columns of values), got a string"),
    "a number": (236, "expected ride records {PULocationID, DOLocationID, trip_distance} (a list of objects, one object, or columns of values), got a number"),
    "nothing": (None, "expected ride records {PULocationID, DOLocationID, trip_distance} (a list of objects, one object, or columns of values), got None"),
    "a 2-d array": (np.array([[236, 239, 1.98]]), "expected ride records {PULocationID, DOLocationID, trip_distance} (a list of objects, one object, or columns of values), got an array of shape 1x3"),
    "frame without field names (MLflow's records of lists)": (
        pd.DataFrame([[236, 239, 1.98]]),
        "expected ride records {PULocationID, DOLocationID, trip_distance} (objects with named fields), got values without field names (a list of lists or of plain values)",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(NESTED))
def test_non_record_shapes_are_one_clear_error(case):
    records, message = NESTED[case]
    assert rejected(records) == message


def test_the_message_never_carries_the_nested_value():
    message = rejected([dict(GOOD, PULocationID={"secret": "x" * 1000})])
    assert "secret" not in message and "xxx" not in message


def test_good_requests_still_pass():
    values = validate_request([GOOD, dict(GOOD, PULocationID=74.0, trip_distance=0)])
    assert values["PULocationID"].tolist() == [236, 74]
    assert values["PULocationID"].dtype == np.int64 and values["trip_distance"].dtype == np.float64
    # one record as 0-d arrays (how MLflow's inputs layout hands over a single object)
    single = {k: np.array(v) for k, v in GOOD.items()}
    assert validate_request(single)["DOLocationID"].tolist() == [239]
    # strings of numbers (the CLI's flags) and extra plain fields are fine
    assert validate_request([{"PULocationID": "236", "DOLocationID": "239", "trip_distance": "1.98", "note": "x"}])[
        "trip_distance"
    ].tolist() == [1.98]
    assert len(request_frame([GOOD, GOOD])) == 2


# --- the CLI's JSON shapes -----------------------------------------------------------------------

SHAPE_ERROR = 'expected {"dataframe_records": [{...}, ...]}, a list of records or one record {PULocationID, DOLocationID, trip_distance}'


@pytest.mark.parametrize(
    "document",
    [
        [[236, 239, 1.98]],
        ["a", "b"],
        "abc",
        5,
        None,
        True,
        {"dataframe_records": "abc"},
        {"dataframe_records": [[1, 2, 3]]},
        {"dataframe_records": {"dataframe_records": [GOOD]}},
    ],
)
def test_records_from_json_refuses_other_shapes(document):
    with pytest.raises(ValueError) as caught:
        records_from_json(document)
    assert str(caught.value) == SHAPE_ERROR


def test_records_from_json_text_refuses_deep_nesting():
    assert records_from_json_text(json.dumps({"dataframe_records": [GOOD]})) == [GOOD]
    assert records_from_json_text(json.dumps(GOOD).encode()) == [GOOD]
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(RecursionError):  # what json.loads, and so a caller of records_from_json, meets
        json.loads(deep)
    with pytest.raises(ValueError) as caught:
        records_from_json_text(deep)
    assert str(caught.value) == "the JSON is nested too deeply to be ride records"
    with pytest.raises(ValueError) as caught:
        records_from_json_text("{not json")
    assert str(caught.value).startswith("not valid JSON: ")
    with pytest.raises(ValueError) as caught:
        records_from_json_text('"abc"')
    assert str(caught.value) == SHAPE_ERROR
    # records that parse come back as they are: validate_request then names the bad field
    records = records_from_json_text(json.dumps([dict(GOOD, PULocationID=True)]))
    assert rejected(records) == "field 'PULocationID' must be a number, not a boolean: got True in record 0"


# --- the distance bound of requests ------------------------------------------------------------

FAR = "must be at most 100 miles (the models know rides of at most 60 minutes; farther would be over 100 mph)"


def test_requests_farther_than_100_miles_are_refused_naming_field_and_record():
    """Before: 1e308 miles scored "17.74 min" (the models clip distances at their training p99.9)."""
    from taxi_assets.ml.cleaning import IMPOSSIBLE_DISTANCE_MILES

    assert IMPOSSIBLE_DISTANCE_MILES == 100
    for value, shown in ((1e308, "1e+308"), ("1e308", "'1e308'"), (100.01, "100.01"), (201421.68, "201421.68")):
        with pytest.raises(InvalidRequestError) as caught:
            validate_request([GOOD, dict(GOOD, trip_distance=value)], max_distance_miles=IMPOSSIBLE_DISTANCE_MILES)
        assert str(caught.value) == f"field 'trip_distance' {FAR}, got {shown} in record 1"
    bounded = validate_request([dict(GOOD, trip_distance=100), dict(GOOD, trip_distance="99.5")], IMPOSSIBLE_DISTANCE_MILES)
    assert bounded["trip_distance"].tolist() == [100.0, 99.5]
    # batch scoring of cleaned rides passes no bound: the course keeps 25-42 such rides a month
    assert validate_request([dict(GOOD, trip_distance=201421.68)])["trip_distance"].tolist() == [201421.68]


def test_numbers_as_text_are_read_as_the_numbers_they_spell():
    values = validate_request([{"PULocationID": "236", "DOLocationID": " 239 ", "trip_distance": "1.98"}])
    assert (values["PULocationID"].tolist(), values["DOLocationID"].tolist(), values["trip_distance"].tolist()) == (
        [236], [239], [1.98]
    )
    assert values["PULocationID"].dtype == np.int64
    assert rejected([dict(GOOD, PULocationID="236.5")]) == (
        "field 'PULocationID' must be a TLC zone id between 1 and 265, got '236.5' in record 0"
    )
    assert rejected([dict(GOOD, DOLocationID="0x10")]) == "field 'DOLocationID' must be a finite number, got '0x10' in record 0"
    assert rejected([dict(GOOD, trip_distance="")]) == "field 'trip_distance' must be a finite number, got '' in record 0"
