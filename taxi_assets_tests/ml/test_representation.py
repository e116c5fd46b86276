"""``taxi_assets/ml/representation.py``: the distance clip (the training rides' 99.9th
percentile, never the validation rides') and where each feature step applies it: the one-hot
matrix's distance column only, the compact steps' fourth column only, idempotent, never
modifying the training set's matrices."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from taxi_assets.ml.representation import CompactFeatures, OneHotFeatures, distance_clip, fit_representation

pytestmark = pytest.mark.fast


def test_the_clip_is_the_999th_permille_of_the_training_distances():
    distance = np.arange(1, 1001, dtype=np.float64)  # 1..1000
    assert distance_clip(distance) == pytest.approx(np.quantile(distance, 0.999)) == pytest.approx(999.001)
    assert distance_clip([2.0]) == 2.0 and distance_clip(np.array([1, 3])) == pytest.approx(2.998)
    with pytest.raises(ValueError) as caught:
        distance_clip(np.array([]))
    assert str(caught.value) == "cannot fit the distance clip: no training rides"


def test_every_step_fits_its_clip_on_the_training_rides_only(small_training_set):
    ts = small_training_set
    far_val = dataclasses.replace(ts, val_rides=ts.val_rides.assign(trip_distance=1e6))
    expected = np.quantile(ts.train_rides["trip_distance"], 0.999)
    for kind in ("onehot", "ordinal", "categorical"):
        step = fit_representation(kind, far_val)
        assert step.clip == pytest.approx(expected) and step.kind == kind and step.extended is False
    assert fit_representation("categorical", ts).categorical and not fit_representation("ordinal", ts).categorical
    assert fit_representation("ordinal", ts, extended=True).extended
    assert fit_representation("onehot", dataclasses.replace(ts, info={"extended_features": True})).extended
    assert not fit_representation("onehot", dataclasses.replace(ts, info={})).extended  # older sets: not extended
    older = dataclasses.replace(ts, train_rides=None)  # a set stored before the rides: its distance column
    column = ts.X_train[:, ts.vectorizer.vocabulary_["trip_distance"]].toarray().ravel()
    assert fit_representation("onehot", older).clip == pytest.approx(np.quantile(column, 0.999))
    with pytest.raises(ValueError) as caught:
        fit_representation("dense", ts)
    assert str(caught.value) == "unknown representation 'dense': expected one of onehot, ordinal, categorical"


def onehot(ts, clip):
    return OneHotFeatures(ts.vectorizer, clip=clip)


def test_onehot_clips_the_distance_column_only_and_leaves_the_input_alone(small_training_set):
    ts = small_training_set
    column = ts.vectorizer.vocabulary_["trip_distance"]
    X = ts.X_train.copy()
    X[0, column] = 500.0
    before = X.copy()
    clipped = onehot(ts, 5.0).transform(X)
    assert (X != before).nnz == 0  # the input is not modified
    distance = clipped[:, column].toarray().ravel()
    np.testing.assert_array_equal(distance, np.minimum(before[:, column].toarray().ravel(), 5.0))
    assert distance.max() == 5.0
    others = np.arange(X.shape[1]) != column
    assert (clipped[:, others] != before[:, others]).nnz == 0
    assert sp.isspmatrix_csr(clipped) or sp.issparse(clipped)


def test_onehot_returns_its_input_when_nothing_needs_clipping(small_training_set):
    ts = small_training_set
    X = ts.X_train
    assert onehot(ts, None).transform(X) is X and onehot(ts, 1e9).transform(X) is X
    assert onehot(ts, 5.0).transform(X[:, :3]) is not None and onehot(ts, 5.0).transform(X[:, :3]).shape == (600, 3)
    narrow = X[:, :3]
    assert onehot(ts, 0.0).transform(narrow) is narrow  # another width: the caller's check names it


def test_onehot_clips_dense_and_csc_inputs_and_requests(small_training_set):
    ts = small_training_set
    column = ts.vectorizer.vocabulary_["trip_distance"]
    dense = ts.X_train[:4].toarray()
    dense[:, column] = [1.0, 7.0, 3.0, 70.0]
    out = onehot(ts, 5.0).transform(dense)
    assert out[:, column].tolist() == [1.0, 5.0, 3.0, 5.0] and dense[:, column].tolist() == [1.0, 7.0, 3.0, 70.0]
    csc = sp.csc_matrix(dense)
    assert onehot(ts, 5.0).transform(csc)[:, column].toarray().ravel().tolist() == [1.0, 5.0, 3.0, 5.0]
    values = {"PULocationID": np.array([10, 11]), "DOLocationID": np.array([12, 13]), "trip_distance": np.array([2.0, 900.0])}
    request = onehot(ts, 5.0).from_request(values)
    assert request[:, column].toarray().ravel().tolist() == [2.0, 5.0]
    unclipped = OneHotFeatures(ts.vectorizer).from_request(values)
    assert unclipped[:, column].toarray().ravel().tolist() == [2.0, 900.0]
    from_set = onehot(ts, 5.0).from_training_set(ts, "val")
    assert from_set[:, column].max() <= 5.0 and from_set.shape == ts.X_val.shape


def compact(categorical: bool) -> CompactFeatures:
    return CompactFeatures.fit([10, 11, 10], [20, 21, 22], [1.0, 2.0, 3.0], categorical=categorical)


@pytest.mark.parametrize("categorical", [True, False])
def test_compact_steps_clip_the_fourth_column_only(categorical):
    step = compact(categorical)
    assert step.clip == pytest.approx(np.quantile([1.0, 2.0, 3.0], 0.999))
    X = step.encode([10, 11, 12], [20, 21, 22], [0.5, 2.5, 1e6])
    assert X.dtype == np.float32 and X[:, 3].tolist() == pytest.approx([0.5, 2.5, step.clip])
    assert X.shape == (3, 4)
    raw = np.array([[1, 2, 3, 9.0], [1, 2, 3, 0.25]], dtype=np.float32)
    out = step.transform(raw)
    assert out[:, 3].tolist() == pytest.approx([step.clip, 0.25]) and out[:, :3].tolist() == raw[:, :3].tolist()
    assert raw[0, 3] == 9.0  # the input is not modified
    inside = np.array([[1, 2, 3, 0.5]], dtype=np.float32)
    assert step.transform(inside) is inside
    wide = np.array([[1, 2, 3, 9.0, 1.0]], dtype=np.float32)
    assert step.transform(wide) is wide  # another width: left for the caller's check
    assert step.transform(sp.csr_matrix(raw)) is not None and step.transform(sp.csr_matrix(raw)).nnz == 8
    at_clip = np.array([[1, 2, 3, step.clip]], dtype=np.float32)
    assert step.transform(at_clip) is at_clip
    doubles = step.transform(np.array([[1, 2, 3, 9.0]], dtype=np.float64))
    assert doubles.dtype == np.float32 and doubles[0, 3] == pytest.approx(step.clip)


def test_compact_codes_and_the_pickup_requirement():
    categorical = compact(True).encode([10, 11, 99], [20, 21, 22], [1.0, 1.0, 1.0])
    assert categorical[:, 0].tolist()[:2] == [0.0, 1.0] and np.isnan(categorical[2, 0])
    assert categorical[:, 1].tolist() == [0.0, 1.0, 2.0]
    assert categorical[:2, 2].tolist() == [0.0, 2.0] and np.isnan(categorical[2, 2])  # pairs 10_20, 10_22, 11_21; 99_22 unseen
    ordinal = compact(False).encode([10, 10, 11], [20, 21, 21], [1.0, 1.0, 1.0])
    assert ordinal[:, 0].tolist() == [10, 10, 11] and ordinal[:, 2].tolist() == [0.0, 0.5, 2.0]  # (10, 21) unseen: half-way
    assert ordinal[:, 1].tolist() == [20, 21, 21]
    extended = CompactFeatures.fit([10], [20], [1.0], categorical=True, extended=True)
    with pytest.raises(ValueError) as caught:
        extended.encode([10], [20], [1.0])
    assert str(caught.value) == "this feature step uses pickup times: pass them"
    X = extended.encode([10], [20], [1.0], pickups=np.array([pd.Timestamp("2024-01-03 17:30")], dtype="datetime64[us]"))
    assert X[0, 4:].tolist() == [17.0, 2.0]


def hand_vectorizer(names):
    from sklearn.feature_extraction import DictVectorizer

    return DictVectorizer().fit([dict.fromkeys(names, 1.0)])


def test_onehot_finds_the_distance_column_wherever_it_is():
    first = hand_vectorizer(["trip_distance", "z"])  # column 0
    X = sp.csr_matrix(np.array([[9.0, 1.0], [2.0, 0.0]]))
    assert OneHotFeatures(first, clip=5.0).transform(X).toarray().tolist() == [[5.0, 1.0], [2.0, 0.0]]
    middle = hand_vectorizer(["a", "trip_distance", "z"])  # the last column empty in these rows
    X = sp.csr_matrix(np.array([[1.0, 9.0, 0.0], [0.0, 0.25, 0.0]]))
    out = OneHotFeatures(middle, clip=0.5).transform(X)
    assert out.shape == (2, 3) and out.toarray().tolist() == [[1.0, 0.5, 0.0], [0.0, 0.25, 0.0]]  # flags of 1.0 stay 1.0
    assert OneHotFeatures(hand_vectorizer(["a", "z"]), clip=0.5).transform(X[:, :2]) is not None  # no distance column
    dense = np.array([[1, 7, 0]])
    assert OneHotFeatures(middle, clip=5.5).transform(dense).tolist() == [[1.0, 5.5, 0.0]]  # clipped in floats


def test_onehot_at_the_clip_is_left_as_it_is(small_training_set):
    ts = small_training_set
    column = ts.vectorizer.vocabulary_["trip_distance"]
    top = float(ts.X_train[:, column].max())
    assert onehot(ts, top).transform(ts.X_train) is ts.X_train
