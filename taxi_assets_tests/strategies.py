"""Hypothesis strategies for what users send: JSON values of any shape, and ride records whose
fields hold anything from a good zone id to a nested object (``ml/test_features.py``,
``registry/test_pyfunc.py``)."""

from __future__ import annotations

import json

from hypothesis import strategies as st

JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-300, 300), st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 150), st.text(max_size=30), st.sampled_from(["236", "1.5", " 12 ", "1e308", "nan", "-inf", "", "0x10"]),
)  # fmt: skip
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
FIELD_VALUES = st.one_of(st.integers(1, 265), st.floats(0, 120), JSON_VALUES)
RECORDS = st.fixed_dictionaries(
    {"PULocationID": FIELD_VALUES, "DOLocationID": FIELD_VALUES, "trip_distance": FIELD_VALUES},
    optional={"pickup_datetime": JSON_SCALARS, "note": JSON_VALUES},
)
# Records a model scores (zone ids as numbers or text, distances 0..100 miles), or would if
# not for an extreme distance.
ZONES = st.one_of(st.integers(1, 265), st.integers(1, 265).map(float), st.integers(1, 265).map(str))
DISTANCES = st.one_of(
    st.floats(0, 100), st.integers(0, 100),
    st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e308, -1e-300, 100.000001, 0.0, -0.0, "inf", "NaN"]),
)  # fmt: skip
GOOD_RECORDS = st.fixed_dictionaries(
    {"PULocationID": ZONES, "DOLocationID": ZONES, "trip_distance": DISTANCES}, optional={"note": JSON_SCALARS}
)
REQUESTS = st.one_of(
    st.lists(GOOD_RECORDS, min_size=1, max_size=5),
    st.lists(st.one_of(GOOD_RECORDS, RECORDS), min_size=1, max_size=5),
    JSON_VALUES,
    RECORDS,
    st.lists(RECORDS, max_size=5),
    st.lists(st.one_of(RECORDS, JSON_VALUES), max_size=4),
    st.dictionaries(st.sampled_from(["PULocationID", "DOLocationID", "trip_distance", "x"]), st.lists(FIELD_VALUES, max_size=4)),
)


def json_round_trip(value):
    """``value`` as a scoring client sends it: through JSON text (NaN and Infinity included)."""
    return json.loads(json.dumps(value))


