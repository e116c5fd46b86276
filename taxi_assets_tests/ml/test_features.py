"""``taxi_assets/ml/features.py``: request validation at each bound (zone ids 1..265 whole,
distances from 0 to the serving bound, finite numbers), the shapes a request may take, and the
words of each refusal; property-based, any JSON value given to :func:`validate_request` and to
the predictor is either scored (finite minutes, one per record) or one
:class:`InvalidRequestError` of one line, never another exception."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from taxi_assets.ml import cleaning, features
from taxi_assets.ml.features import InvalidRequestError, request_frame, validate_request
from taxi_assets_tests.strategies import GOOD_RECORDS, REQUESTS, ZONES, json_round_trip

pytestmark = pytest.mark.fast

GOOD = {"PULocationID": 236, "DOLocationID": 239, "trip_distance": 1.98}
SHAPE = "expected ride records {PULocationID, DOLocationID, trip_distance} (a list of objects, one object, or columns of values), got "


def refusal(records, max_distance_miles=None) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        validate_request(records, max_distance_miles)
    return str(caught.value)


# --- bounds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["PULocationID", "DOLocationID"])
def test_zone_ids_are_whole_numbers_from_1_to_265(field):
    ok = validate_request([dict(GOOD, **{field: 1}), dict(GOOD, **{field: 265}), dict(GOOD, **{field: 12.0})])
    assert ok[field].tolist() == [1, 265, 12] and ok[field].dtype == np.int64
    for value, shown in ((0, "0"), (266, "266"), (12.5, "12.5"), (-1, "-1"), (264.999, "264.999")):
        assert refusal([GOOD, dict(GOOD, **{field: value})]) == (
            f"field '{field}' must be a TLC zone id between 1 and 265, got {shown} in record 1"
        )


def test_distances_from_zero_to_the_bound_pass_and_the_first_bad_one_is_named():
    ok = validate_request([dict(GOOD, trip_distance=0), dict(GOOD, trip_distance=100)], max_distance_miles=100)
    assert ok["trip_distance"].tolist() == [0.0, 100.0] and ok["trip_distance"].dtype == np.float64
    assert refusal([GOOD, dict(GOOD, trip_distance=-0.01), dict(GOOD, trip_distance=-5)]) == (
        "field 'trip_distance' must not be negative, got -0.01 in record 1"
    )
    assert refusal([GOOD, GOOD, dict(GOOD, trip_distance=7.5), dict(GOOD, trip_distance=9)], max_distance_miles=7) == (
        "field 'trip_distance' must be at most 7 miles (the models know rides of at most 60 minutes; farther would be "
        "over 100 mph), got 7.5 in record 2"
    )
    assert validate_request([dict(GOOD, trip_distance=1e6)])["trip_distance"].tolist() == [1e6]  # no bound given
    # the first record breaking the rule is named, not the first at its edge
    assert refusal([dict(GOOD, trip_distance=0), dict(GOOD, trip_distance=0.5), dict(GOOD, trip_distance=-2)]) == (
        "field 'trip_distance' must not be negative, got -2.0 in record 2"
    )
    assert refusal([dict(GOOD, trip_distance=100), dict(GOOD, trip_distance=101)], max_distance_miles=100).endswith(
        "got 101 in record 1"
    )


@pytest.mark.parametrize(
    "value, shown",
    [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf"), (None, "nan"), ("abc", "'abc'"), ("x" * 50, "'" + "x" * 38 + "…")],
)
def test_values_that_are_not_finite_numbers_are_named_short(value, shown):
    assert refusal([GOOD, dict(GOOD, DOLocationID=value)]) == f"field 'DOLocationID' must be a finite number, got {shown} in record 1"


def test_fields_are_checked_in_order_and_the_first_bad_record_is_named():
    bad = [GOOD, {"PULocationID": 0, "DOLocationID": "x", "trip_distance": -1}, {"PULocationID": 999, "DOLocationID": 1, "trip_distance": 1}]
    assert refusal(bad) == "field 'DOLocationID' must be a finite number, got 'x' in record 1"
    bad[1]["DOLocationID"] = 5
    assert refusal(bad) == "field 'PULocationID' must be a TLC zone id between 1 and 265, got 0 in record 1"
    bad[1]["PULocationID"] = 5
    assert refusal(bad) == "field 'PULocationID' must be a TLC zone id between 1 and 265, got 999 in record 2"


def test_missing_fields_and_empty_requests():
    assert refusal([{"trip_distance": 1}]) == (
        "missing field(s) PULocationID, DOLocationID: each record needs PULocationID, DOLocationID, trip_distance"
    )
    assert refusal([]) == "no records to score: send at least one {PULocationID, DOLocationID, trip_distance}"
    assert refusal(pd.DataFrame(columns=["PULocationID", "DOLocationID", "trip_distance"])).startswith("no records")
    assert refusal(pd.DataFrame({0: [1], "x": [2]})) == "missing field(s) PULocationID, DOLocationID, trip_distance: each record needs PULocationID, DOLocationID, trip_distance"  # fmt: skip


# --- shapes ----------------------------------------------------------------------------------------


def test_request_frame_takes_frames_records_one_record_and_columns():
    frame = pd.DataFrame([GOOD])
    assert request_frame(frame) is frame
    assert request_frame((GOOD, GOOD)).shape == (2, 3)
    assert request_frame(GOOD).to_dict("records") == [GOOD]
    columns = request_frame({"PULocationID": np.array([[1], [2]]).ravel(), "DOLocationID": (3, 4), "trip_distance": pd.Series([1.0, 2.0])})
    assert columns["DOLocationID"].tolist() == [3, 4]
    zero_d = request_frame({"PULocationID": np.array([5]), "DOLocationID": np.array(7), "trip_distance": 1.0})
    assert zero_d["DOLocationID"].tolist() == [7] and zero_d["trip_distance"].tolist() == [1.0]


def test_columns_of_unequal_length_are_one_error():
    message = refusal({"PULocationID": [1, 2], "DOLocationID": [3], "trip_distance": [1.0, 2.0]})
    assert message.startswith("the request's fields have different numbers of values (") and "\n" not in message


class Xylophone:
    pass


@pytest.mark.parametrize(
    "records, got",
    [
        ([1.5, 2], "a list of numbers"), ([True], "a list of booleans"), ([None], "a list of None values"),
        ([[1]], "a list of lists"), ([GOOD, "x", 3], "a list of objects, strings and numbers"), ("x", "a string"),
        (b"x", "a string"), (3, "a number"), (np.float32(3), "a number"), (True, "a boolean"), (None, "None"),
        (np.array(5), "a number"), (np.array({"a": 1}, dtype=object), "an object"), (np.zeros((2, 3)), "an array of shape 2x3"),
        ([np.array([1])], "a list of lists"), ({1, 2}, "a list"), (object(), "an object"), ([pd.Timestamp(0)], "a list of Timestamp"),
        ([np.bool_(True)], "a list of booleans"), ([{1}], "a list of lists"), ([(1,)], "a list of lists"),
        (Xylophone(), "a Xylophone"),
    ],
)  # fmt: skip
def test_other_shapes_say_what_arrived(records, got):
    assert refusal(records) == SHAPE + got


def test_nested_values_and_booleans_are_refused_naming_field_and_record():
    assert refusal([GOOD, dict(GOOD, note=np.array([1, 2]))]) == (
        "field 'note' holds a nested list in record 1: each field of a ride is one plain value"
    )
    assert refusal([dict(GOOD, flag=True, note={"a": 1})]) == (  # a boolean extra field does not end the check
        "field 'note' holds a nested object in record 0: each field of a ride is one plain value"
    )
    assert refusal([GOOD, dict(GOOD, note=np.array({"a": 1}))]) == (
        "field 'note' holds a nested object in record 1: each field of a ride is one plain value"
    )
    assert validate_request([dict(GOOD, note=True), dict(GOOD, note=False)])["PULocationID"].tolist() == [236, 236]
    assert validate_request([dict(GOOD, note="x")])["DOLocationID"].tolist() == [239]
    frame = pd.DataFrame({"PULocationID": pd.array([None, True], dtype="boolean"), "DOLocationID": [1, 2], "trip_distance": [1.0, 2.0]})
    assert refusal(frame) == "field 'PULocationID' must be a number, not a boolean: got True in record 1"
    empty_bool = pd.DataFrame({"PULocationID": pd.array([None], dtype="boolean"), "DOLocationID": [1], "trip_distance": [1.0]})
    assert refusal(empty_bool) == "field 'PULocationID' must be a finite number, got <NA> in record 0"
    assert refusal([dict(GOOD, trip_distance=False), dict(GOOD, trip_distance=1)]) == (
        "field 'trip_distance' must be a number, not a boolean: got False in record 0"
    )
    mixed = pd.DataFrame({"PULocationID": [1, np.False_], "DOLocationID": [1, 2], "trip_distance": [1.0, 2.0]}, dtype=object)
    assert refusal(mixed) == "field 'PULocationID' must be a number, not a boolean: got False in record 1"


def test_numbers_of_every_dtype_are_read_as_numbers():
    frame = pd.DataFrame(
        {"PULocationID": pd.array([1, 2], dtype="Int64"), "DOLocationID": np.array([3, 4], dtype=np.uint16),
         "trip_distance": pd.array([1.5, None], dtype="Float64")}
    )  # fmt: skip
    assert refusal(frame) == "field 'trip_distance' must be a finite number, got <NA> in record 1"
    frame["trip_distance"] = pd.array([1.5, 2.0], dtype="Float32")
    got = validate_request(frame)
    assert got["PULocationID"].tolist() == [1, 2] and got["DOLocationID"].tolist() == [3, 4] and got["trip_distance"].tolist() == [1.5, 2.0]
    assert features._as_float(pd.Series(["1", "x", None])).tolist()[0] == 1.0
    assert np.isnan(features._as_float(pd.Series(["1", "x", None]))[1:]).all()


def test_show_keeps_values_short_and_never_nested():
    assert features._show("y" * 40) == repr("y" * 40)[:39] + "…"
    assert features._show("y" * 39) == repr("y" * 39)[:39] + "…"  # 41 characters with the quotes: cut
    assert features._show("y" * 38) == repr("y" * 38)  # 40 characters with the quotes: whole
    assert features._show(np.array(3.5)) == "3.5" and features._show(np.bool_(False)) == "False"
    assert features._show({"a": 1}) == "a nested object" and features._show(pd.Series([1])) == "a nested list"


# --- property: any JSON value (strategies in taxi_assets_tests/strategies.py) ----------------------

def assert_one_line_refusal(error: InvalidRequestError) -> None:
    message = str(error)
    assert message and "\n" not in message and len(message) <= 400, message


@given(request=REQUESTS.map(json_round_trip), bound=st.sampled_from([None, 100.0]))
def test_any_json_value_is_validated_or_refused_in_one_line(request, bound):
    try:
        values = validate_request(request, bound)
    except InvalidRequestError as error:
        assert_one_line_refusal(error)
        return
    n = len(values["trip_distance"])
    assert n >= 1 and all(len(values[f]) == n for f in features.REQUEST_FIELDS)
    for field in ("PULocationID", "DOLocationID"):
        assert values[field].dtype == np.int64 and ((values[field] >= 1) & (values[field] <= 265)).all()
    assert np.isfinite(values["trip_distance"]).all() and (values["trip_distance"] >= 0).all()
    if bound is not None:
        assert (values["trip_distance"] <= bound).all()


@given(
    records=st.lists(GOOD_RECORDS | st.fixed_dictionaries({"PULocationID": ZONES, "DOLocationID": ZONES,
                                                         "trip_distance": st.floats() | st.integers()}), min_size=1, max_size=4),
    bound=st.sampled_from([None, 100.0]),
)  # fmt: skip
def test_records_with_good_zones_and_any_distance_are_judged_on_the_distance(records, bound):
    records = json_round_trip(records)
    distances = pd.to_numeric(pd.Series([r["trip_distance"] for r in records], dtype=object), errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(distances)
    checks = [("must be a finite number", ~finite), ("must not be negative", finite & (distances < 0))]
    if bound is not None:
        checks.append((f"must be at most {bound:g} miles", finite & (distances > bound)))
    try:
        values = validate_request(records, bound)
    except InvalidRequestError as error:  # the first failing check, at its first record
        words, bad = next((words, bad) for words, bad in checks if bad.any())
        assert str(error).startswith(f"field 'trip_distance' {words}"), error
        assert str(error).endswith(f" in record {int(np.flatnonzero(bad)[0])}"), error
        return
    assert not any(bad.any() for _, bad in checks) and values["trip_distance"].tolist() == distances.tolist()


@given(request=REQUESTS.map(json_round_trip))
def test_the_predictor_scores_or_refuses_any_json_value(request, small_predictor):
    try:
        minutes = small_predictor.predict(request, max_distance_miles=100.0)
    except InvalidRequestError as error:
        assert_one_line_refusal(error)
        return
    assert minutes.dtype == np.float64 and minutes.ndim == 1 and len(minutes) >= 1
    assert all(math.isfinite(m) for m in minutes)


def test_the_strategy_reaches_scored_requests_of_several_records(small_predictor):
    """The properties above are not judged on refusals only."""

    def scored(request) -> bool:
        try:
            return len(small_predictor.predict(request, max_distance_miles=100.0)) >= 2
        except InvalidRequestError:
            return False

    unshrunk = settings(phases=[Phase.generate], max_examples=300, derandomize=True, database=None, deadline=None)
    assert len(request_frame(find(REQUESTS.map(json_round_trip), scored, settings=unshrunk))) >= 2


@given(records=st.lists(GOOD_RECORDS, min_size=1, max_size=6).map(json_round_trip))
def test_the_predictor_scores_good_zones_at_any_distance_or_names_the_distance(records, small_predictor):
    try:
        minutes = small_predictor.predict(records, max_distance_miles=100.0)
    except InvalidRequestError as error:
        assert str(error).startswith("field 'trip_distance' must "), error
        return
    assert minutes.shape == (len(records),) and np.isfinite(minutes).all()


def test_validate_request_checks_every_field():
    got = validate_request([{"PULocationID": 236, "DOLocationID": 239, "trip_distance": 1.98}])
    pairs = cleaning.pu_do(got["PULocationID"], got["DOLocationID"])
    assert pairs.astype(str).tolist() == ["236_239"] and got["trip_distance"].tolist() == [1.98]
    cases = [
        ([{"PULocationID": 1, "trip_distance": 1}], r"missing field\(s\) DOLocationID"),
        ([{"PULocationID": 1, "DOLocationID": 2, "trip_distance": -1}], "must not be negative, got -1.0 in record 0"),
        ([{"PULocationID": "abc", "DOLocationID": 2, "trip_distance": 1}], "'PULocationID' must be a finite number, got 'abc'"),
        ([{"PULocationID": 1, "DOLocationID": 999, "trip_distance": 1}], "TLC zone id between 1 and 265, got 999"),
        ([], "no records to score"),
    ]
    for records, message in cases:
        with pytest.raises(InvalidRequestError, match=message):
            validate_request(records)


def test_requests_come_as_records_one_record_or_columns():
    ride = {"PULocationID": 236, "DOLocationID": 239, "trip_distance": 1.98}
    two = [ride, {"PULocationID": 74.0, "DOLocationID": 75, "trip_distance": 3}]
    columns = {"PULocationID": np.array([236, 74]), "DOLocationID": [239, 75], "trip_distance": (1.98, 3)}
    for request in (two, columns, pd.DataFrame(two)):
        got = validate_request(request)
        assert got["PULocationID"].tolist() == [236, 74] and got["PULocationID"].dtype == np.int64
        assert got["DOLocationID"].tolist() == [239, 75] and got["trip_distance"].tolist() == [1.98, 3.0]
    assert validate_request(ride)["trip_distance"].tolist() == [1.98]
    with pytest.raises(InvalidRequestError, match=r"^the request's fields have different numbers of values \("):
        validate_request(dict(columns, trip_distance=[1.0]))
    for request, kind in (("236,239,1.98", "a string"), (np.zeros((1, 3)), "an array of shape 1x3"), ([236, 239], "a list of numbers")):
        with pytest.raises(InvalidRequestError) as caught:
            validate_request(request)
        assert str(caught.value) == (
            "expected ride records {PULocationID, DOLocationID, trip_distance} "
            f"(a list of objects, one object, or columns of values), got {kind}"
        )
