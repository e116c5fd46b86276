"""The ML core on the reference window (the real green 2024-01 and 2024-02 months): cleaning
matches the course's, the vectorizer equals scikit-learn's ``DictVectorizer`` (``ml/vectorize.py``)
and the training set reproduces the reference split and round-trips (``ml/dataset.py``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction import DictVectorizer

from support.data import cleaned_month
from taxi_assets.ml import dataset, vectorize


@pytest.fixture(scope="module")
def reference_window() -> pd.DataFrame:
    return pd.concat([cleaned_month("2024-01"), cleaned_month("2024-02")], ignore_index=True)


def test_clean_matches_the_course_on_real_data(shared_data):
    raw = pd.read_parquet(shared_data / "green_tripdata_2024-01.parquet")
    duration = (raw.lpep_dropoff_datetime - raw.lpep_pickup_datetime).apply(lambda td: td.total_seconds() / 60)
    expected = raw[(duration >= 1) & (duration <= 60)]
    ours = cleaned_month("2024-01")
    assert len(ours) == len(expected) == 54_373
    np.testing.assert_allclose(ours["duration"].to_numpy(), duration[expected.index].to_numpy())
    expected_pu_do = (expected.PULocationID.astype(str) + "_" + expected.DOLocationID.astype(str)).tolist()
    assert ours["PU_DO"].astype(str).tolist() == expected_pu_do


def test_vectorizer_equals_dictvectorizer_on_real_data(reference_window):
    frame = reference_window[["PU_DO", "trip_distance"]]
    ref = DictVectorizer()
    expected = ref.fit_transform(frame.astype({"PU_DO": str}).to_dict(orient="records"))
    ours, dv = vectorize.fit_transform(frame)
    assert ours.shape == expected.shape == (105_870, 7_027)
    assert dv.feature_names_ == list(ref.feature_names_)
    assert (ours != expected).nnz == 0
    assert ours.nnz == expected.nnz
    assert ours.indices.dtype == np.int32
    # Still a usable DictVectorizer for list-of-dicts callers.
    rec = [{"PU_DO": "74_75", "trip_distance": 2.5}, {"PU_DO": "never_seen", "trip_distance": 0.0}]
    assert (dv.transform(rec) != ref.transform(rec)).nnz == 0
    assert (vectorize.transform(pd.DataFrame(rec), dv) != ref.transform(rec)).nnz == 0


def test_training_set_reproduces_the_reference_split(reference_window, tmp_path):
    ts = dataset.build_training_set(reference_window, pd.Timestamp("2024-02-01"))
    assert ts.X_train.shape == (54_378, 5_094)
    assert ts.X_val.shape == (51_492, 5_094)
    assert len(ts.y_train) == 54_378 and len(ts.y_val) == 51_492
    path = tmp_path / "ts.npz"
    dataset.save_training_set(ts, path)
    back = dataset.load_training_set(path)
    assert (back.X_train != ts.X_train).nnz == 0 and (back.X_val != ts.X_val).nnz == 0
    np.testing.assert_array_equal(back.y_val, ts.y_val)
    assert back.feature_names == ts.feature_names
    assert back.info["boundary"] == "2024-02-01 00:00:00"
    with pytest.raises(ValueError, match="no validation rides picked up on or after 2024-03-01"):
        dataset.build_training_set(reference_window, pd.Timestamp("2024-03-01"))
