"""``taxi_assets/ml/dataset.py`` ``selection_mask``: the slice hyperparameter trials are compared
on is the training window's last week, taken as the newest fifth when a week is under 5% or over
50% of the rides, and never the whole window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from taxi_assets.ml.dataset import selection_mask

pytestmark = pytest.mark.fast

DAY = np.timedelta64(1, "D")
NEWEST = np.datetime64("2024-01-31T12:00:00", "us")


def times(*days_before_newest: float) -> np.ndarray:
    return NEWEST - (np.asarray(days_before_newest) * 86_400_000_000).astype("timedelta64[us]")


def test_the_last_seven_days_exclusive_of_the_boundary():
    # 10 rides: 3 inside the last week (30%), one exactly 7 days before the newest (outside)
    pickups = times(0, 1, 6.99, 7, 8, 9, 10, 11, 12, 13)
    assert selection_mask(pickups).tolist() == [True, True, True] + [False] * 7
    assert selection_mask(pd.Series(pickups[::-1])).tolist() == [False] * 7 + [True, True, True]
    assert selection_mask(pickups, days=9).tolist() == [True] * 5 + [False] * 5
    assert selection_mask(pickups.astype("datetime64[ns]")).sum() == 3


def test_a_week_of_exactly_5_or_50_percent_is_kept():
    five = times(0, *range(8, 27))  # 1 of 20 in the last week
    assert selection_mask(five).tolist() == [True] + [False] * 19
    half = times(0, 1, 2, 3, 4, 10, 11, 12, 13, 14)
    assert selection_mask(half).tolist() == [True] * 5 + [False] * 5


def test_too_small_or_too_large_a_week_falls_back_to_the_newest_fifth():
    small = times(0, *range(8, 29))  # 1 of 22 in the last week: 4.5%
    assert selection_mask(small).tolist() == [True] * 4 + [False] * 18  # round(22 * 0.2) = 4, the newest four
    large = times(0, 1, 2, 3, 4, 5, 10, 11, 12, 13)  # 6 of 10: 60%
    assert selection_mask(large).tolist() == [True, True] + [False] * 8
    same_time = np.full(10, NEWEST)  # everything in the last week: the last fifth in row order
    assert selection_mask(same_time).tolist() == [False] * 8 + [True, True]
    many = selection_mask(np.full(100, NEWEST))  # ties stay in row order however many (a stable sort)
    assert many.dtype == bool and many.tolist() == [False] * 80 + [True] * 20


def test_two_rides_give_one_and_fewer_is_an_error():
    assert selection_mask(times(0, 1)).tolist() == [True, False]
    assert selection_mask(times(0, 30)).tolist() == [True, False]  # 50%: the week itself
    assert selection_mask(times(0, 0)).tolist() == [False, True]  # 100%: the newest of two, never both
    assert selection_mask(np.full(3, NEWEST)).tolist() == [False, False, True]  # round(0.6) = 1
    for n in (0, 1):
        with pytest.raises(ValueError) as caught:
            selection_mask(times(*range(n)))
        assert str(caught.value) == f"cannot take a selection slice from {n} training ride(s)"
