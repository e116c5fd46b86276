"""PSI, unseen-route share and the drift report, on hand examples and real months."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from support.data import cleaned_month
from taxi_assets.ml.drift import (
    PSI_EPSILON,
    drift_report,
    population_stability_index,
    unseen_category_share,
)


@pytest.fixture(scope="module")
def jan() -> pd.DataFrame:
    return cleaned_month("2024-01")


@pytest.fixture(scope="module")
def feb() -> pd.DataFrame:
    return cleaned_month("2024-02")


# ------------------------------------------------------------------------------- PSI


def test_psi_is_zero_for_identical_samples():
    sample = np.random.default_rng(0).normal(size=5000)
    assert population_stability_index(sample, sample.copy()) == pytest.approx(0.0, abs=1e-12)


def test_psi_grows_with_the_shift():
    rng = np.random.default_rng(42)
    reference = rng.normal(0.0, 1.0, 20_000)
    same = rng.normal(0.0, 1.0, 20_000)
    small = rng.normal(0.25, 1.0, 20_000)
    large = rng.normal(1.0, 1.0, 20_000)
    psi_same = population_stability_index(reference, same)
    psi_small = population_stability_index(reference, small)
    psi_large = population_stability_index(reference, large)
    assert 0 <= psi_same < 0.01
    assert psi_same < psi_small < psi_large
    assert 0.03 < psi_small < 0.1  # "no meaningful shift" .. "moderate" boundary
    assert psi_large > 0.25  # "large shift"


def test_psi_hand_computed_two_bins():
    # Median of 1..10 is 5.5 -> bins (-inf, 5.5], (5.5, inf): expected 50% / 50%.
    expected = np.arange(1, 11)
    actual = [1, 2, 6, 7, 8, 9, 10, 11, 12, 13]  # 20% / 80%
    # (0.2-0.5)ln(0.2/0.5) + (0.8-0.5)ln(0.8/0.5) = 0.3 ln 2.5 + 0.3 ln 1.6 = 0.3 ln 4
    assert population_stability_index(expected, actual, bins=2) == pytest.approx(0.3 * math.log(4))


def test_psi_uses_epsilon_for_empty_bins_and_open_outer_bins():
    expected = np.arange(1, 11)
    e = 0.5
    a_full, a_empty = 1.0, PSI_EPSILON
    by_hand = (a_full - e) * math.log(a_full / e) + (a_empty - e) * math.log(a_empty / e)
    # Everything far above the training range lands in the top bin.
    assert population_stability_index(expected, [100.0] * 10, bins=2) == pytest.approx(by_hand)
    # Right-closed bins: 5.5 itself belongs to the lower bin, NaN is ignored.
    assert population_stability_index(expected, [5.5, 5.5, np.nan], bins=2) == pytest.approx(by_hand)


def test_psi_collapses_tied_quantile_edges():
    expected = [0.0] * 90 + list(range(1, 11))  # deciles 1..8 are all 0
    assert population_stability_index(expected, expected, bins=10) == pytest.approx(0.0, abs=1e-12)
    assert population_stability_index(expected, [0.0] * 100, bins=10) > 0


def test_psi_rejects_empty_input():
    with pytest.raises(ValueError, match="actual sample has no finite values"):
        population_stability_index([1.0, 2.0], [np.nan])
    with pytest.raises(ValueError, match="bins must be >= 1, got 0"):
        population_stability_index([1.0], [1.0], bins=0)


# --------------------------------------------------------------------- unseen share


def test_unseen_share_counts_rows_not_distinct_values():
    assert unseen_category_share(["a", "b"], ["a", "c", "c", "d"]) == 0.75
    assert unseen_category_share(["74_75", "75_74"], ["74_75", "74_75", "75_74"]) == 0.0
    assert unseen_category_share([1, 2, 3], [4, 1, 2, 3, 5]) == 2 / 5
    with pytest.raises(ValueError, match="current sample is empty"):
        unseen_category_share(["a"], [])


def test_unseen_share_on_real_months(jan, feb):
    share = unseen_category_share(jan["PU_DO"], feb["PU_DO"])
    seen = set(jan["PU_DO"])
    by_hand = sum(route not in seen for route in feb["PU_DO"]) / len(feb)
    assert share == pytest.approx(by_hand, abs=1e-15)
    assert 0 < share < 0.2


# --------------------------------------------------------------------------- report


def test_drift_report_on_consecutive_real_months(jan, feb):
    report = drift_report(jan, feb)
    assert set(report) == {
        "psi_trip_distance",
        "psi_duration",
        "unseen_pu_do_share",
        "train_rows",
        "current_rows",
        "row_count_change_pct",
    }
    assert report["train_rows"] == len(jan)
    assert report["current_rows"] == len(feb)
    assert report["row_count_change_pct"] == pytest.approx(100 * (len(feb) - len(jan)) / len(jan))
    assert report["psi_trip_distance"] == pytest.approx(
        population_stability_index(jan["trip_distance"], feb["trip_distance"])
    )
    # Consecutive winter months: real but small drift.
    assert 0 < report["psi_trip_distance"] < 0.1
    assert 0 < report["psi_duration"] < 0.1
    assert 0 < report["unseen_pu_do_share"] < 0.2
    assert all(type(v) in (int, float) for v in report.values())


def test_drift_report_against_itself_is_flat(jan):
    report = drift_report(jan, jan)
    assert report["psi_trip_distance"] == pytest.approx(0.0, abs=1e-12)
    assert report["psi_duration"] == pytest.approx(0.0, abs=1e-12)
    assert report["unseen_pu_do_share"] == 0.0
    assert report["row_count_change_pct"] == 0.0


def test_drift_report_detects_a_shifted_month(jan):
    longer = jan.assign(duration=jan["duration"] * 1.5, trip_distance=jan["trip_distance"] + 2)
    report = drift_report(jan, longer)
    assert report["psi_duration"] > 0.25
    assert report["psi_trip_distance"] > 0.25


def test_drift_report_names_missing_columns(jan):
    with pytest.raises(KeyError, match=r"current frame is missing column\(s\) \['PU_DO'\]"):
        drift_report(jan, jan.drop(columns=["PU_DO"]))
    with pytest.raises(ValueError, match="current frame has no rows"):
        drift_report(jan, jan.iloc[:0])
