"""Profiles and charts on a real TLC month (green 2024-01)."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest

from support.data import cleaned_month, data_dir
from taxi_assets.ml.charts import (
    PNG_SIGNATURE,
    bar_png,
    daily_counts_png,
    histogram_png,
    png_markdown,
    scatter_png,
)
from taxi_assets.ml.profile import (
    PROFILE_COLUMNS,
    pickups_per_day,
    profile_frame,
    profile_markdown,
)

EXPECTED_PIXELS = (280, 480)  # 6 x 3.5 in at 80 dpi -> (height, width)


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return pd.read_parquet(data_dir() / "green_tripdata_2024-01.parquet")


@pytest.fixture(scope="module")
def cleaned() -> pd.DataFrame:
    return cleaned_month("2024-01")


@pytest.fixture(scope="module")
def raw_profile(raw) -> pd.DataFrame:
    return profile_frame(raw)


def _row(profile: pd.DataFrame, column: str) -> dict:
    rows = profile[profile["column"] == column].to_dict("records")
    assert len(rows) == 1
    return rows[0]


# --------------------------------------------------------------------------- profile


def test_profile_has_one_row_per_column_in_order(raw, raw_profile):
    assert list(raw_profile.columns) == PROFILE_COLUMNS
    assert list(raw_profile["column"]) == list(raw.columns)
    assert list(raw_profile["dtype"]) == [str(t) for t in raw.dtypes]


def test_profile_counts_match_pandas_on_real_month(raw, raw_profile):
    n = len(raw)
    assert n == 56551
    ehail = _row(raw_profile, "ehail_fee")
    assert ehail["missing"] == n
    assert ehail["missing_pct"] == 100.0
    assert ehail["unique"] == 0
    assert ehail["top_values"] == ""
    assert ehail["min"] is None and ehail["max"] is None and ehail["mean"] is None

    vendor = _row(raw_profile, "VendorID")
    assert vendor["unique"] == raw["VendorID"].nunique() == 2
    assert vendor["missing"] == 0
    counts = raw["VendorID"].value_counts()
    assert vendor["top_values"] == f"2 ({counts[2]}), 1 ({counts[1]})"

    distance = _row(raw_profile, "trip_distance")
    assert distance["min"] == raw["trip_distance"].min()
    assert distance["max"] == raw["trip_distance"].max()
    assert distance["mean"] == pytest.approx(raw["trip_distance"].mean(), rel=1e-12)
    assert distance["median"] == raw["trip_distance"].median()

    flag = _row(raw_profile, "store_and_fwd_flag")
    assert flag["missing"] == int(raw["store_and_fwd_flag"].isna().sum())
    assert flag["missing_pct"] == pytest.approx(100 * flag["missing"] / n)
    assert flag["min"] is None and flag["median"] is None
    flag_counts = raw["store_and_fwd_flag"].value_counts()
    assert flag["top_values"] == f"N ({flag_counts['N']}), Y ({flag_counts['Y']})"

    pickup = _row(raw_profile, "lpep_pickup_datetime")
    assert pickup["min"] == raw["lpep_pickup_datetime"].min()
    assert pickup["max"] == raw["lpep_pickup_datetime"].max()
    assert pickup["unique"] == raw["lpep_pickup_datetime"].nunique()


def test_profile_top_values_break_ties_by_value_and_respect_top_n():
    df = pd.DataFrame({"route": ["b", "a", "c", "a", "b", "d"], "n": [3, 1, 2, 2, 2, np.nan]})
    profile = profile_frame(df, top_n=2)
    route = _row(profile, "route")
    assert route["top_values"] == "a (2), b (2)"
    n = _row(profile, "n")
    assert n["top_values"] == "2.0 (3), 1.0 (1)"
    assert (n["missing"], n["unique"], n["min"], n["max"], n["median"]) == (1, 3, 1.0, 3.0, 2.0)
    assert n["mean"] == pytest.approx(2.0)


def test_profile_of_cleaned_frame(cleaned):
    profile = profile_frame(cleaned)
    duration = _row(profile, "duration")
    assert duration["min"] == 1.0 and duration["max"] == 60.0
    route = _row(profile, "PU_DO")
    assert route["dtype"] == "category"  # the pipeline's PU_DO is a categorical of strings
    assert route["unique"] == cleaned["PU_DO"].nunique()
    assert route["mean"] is None


def test_profile_rejects_non_frames():
    with pytest.raises(TypeError, match="profile_frame expects a pandas DataFrame, got list"):
        profile_frame([1, 2, 3])


def test_profile_markdown_has_a_row_per_column(raw, raw_profile):
    markdown = profile_markdown(raw_profile)
    lines = markdown.strip().split("\n")
    assert lines[0] == "| " + " | ".join(PROFILE_COLUMNS) + " |"
    assert len(lines) == 2 + len(raw.columns)
    for line, column in zip(lines[2:], raw.columns):
        assert line.startswith(f"| {column} |")
        assert line.count(" | ") == len(PROFILE_COLUMNS) - 1
    ehail_line = next(line for line in lines if line.startswith("| ehail_fee |"))
    assert f"| {len(raw)} | 100.00% | 0 |" in ehail_line
    distance_line = next(line for line in lines if line.startswith("| trip_distance |"))
    assert "| 201421.68 |" in distance_line


def test_profile_markdown_escapes_pipes_and_validates_input():
    profile = profile_frame(pd.DataFrame({"odd": ["a|b", "a|b", "c"]}))
    markdown = profile_markdown(profile)
    assert "a\\|b (2), c (1)" in markdown
    with pytest.raises(ValueError, match=r"missing columns \['dtype'"):
        profile_markdown(pd.DataFrame({"column": ["x"]}))


def test_pickups_per_day_on_real_month(cleaned):
    daily = pickups_per_day(cleaned, "pickup_datetime")
    assert daily.sum() == len(cleaned)
    assert daily.index.name == "date"
    assert daily.index.is_monotonic_increasing
    day = pd.Timestamp("2024-01-15")
    expected = int((cleaned["pickup_datetime"].dt.normalize() == day).sum())
    assert daily[day] == expected
    # The real file has two stray pickups on 2023-12-31.
    assert daily.index[0] == pd.Timestamp("2023-12-31")
    assert len(daily) == 32


def test_pickups_per_day_fill_and_errors():
    df = pd.DataFrame(
        {"t": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:00", "2024-01-04 09:00", None])}
    )
    assert pickups_per_day(df, "t").to_dict() == {
        pd.Timestamp("2024-01-01"): 2,
        pd.Timestamp("2024-01-04"): 1,
    }
    filled = pickups_per_day(df, "t", fill_missing_days=True)
    assert filled.tolist() == [2, 0, 0, 1]
    with pytest.raises(KeyError, match="column 'pickup' not found"):
        pickups_per_day(df, "pickup")
    with pytest.raises(TypeError, match="column 'x' must be datetime64, got int64"):
        pickups_per_day(pd.DataFrame({"x": [1, 2]}), "x")


# ---------------------------------------------------------------------------- charts


def _decode(png: bytes) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(png), format="png")


def _check_png(png: bytes) -> None:
    assert png[:8] == PNG_SIGNATURE
    assert _decode(png).shape[:2] == EXPECTED_PIXELS
    assert len(png) < 60_000


def test_charts_render_small_deterministic_pngs(cleaned):
    daily = pickups_per_day(cleaned, "pickup_datetime")
    rng = np.random.default_rng(1)
    predicted = cleaned["duration"].to_numpy() * 0.8 + rng.normal(0, 3, len(cleaned))
    charts = {
        "histogram": lambda: histogram_png(
            cleaned["trip_distance"], "Trip distance 2024-01", "miles", upper_quantile=0.99
        ),
        "daily": lambda: daily_counts_png(daily, "Pickups per day 2024-01"),
        "bar": lambda: bar_png(["linear", "random_forest", "xgboost"], [8.1, 6.9, 6.2], "RMSE by model", "RMSE (min)"),
        "scatter": lambda: scatter_png(cleaned["duration"], predicted, "Predicted vs actual"),
    }
    for name, render in charts.items():
        first, second = render(), render()
        _check_png(first)
        assert first == second, f"{name} chart is not deterministic"


def test_scatter_subsample_depends_on_seed_and_draws_the_identity_line():
    rng = np.random.default_rng(0)
    actual = rng.uniform(0, 60, 20_000)
    predicted = actual + rng.normal(0, 5, actual.size)
    a = scatter_png(actual, predicted, "s", max_points=500, seed=0)
    b = scatter_png(actual, predicted, "s", max_points=500, seed=1)
    _check_png(a)
    assert a != b
    with pytest.raises(ValueError, match="actual has 3 values but predicted has 2"):
        scatter_png([1, 2, 3], [1, 2], "bad")


def test_histogram_drops_nan_and_handles_empty_input():
    with_nan = histogram_png([1.0, 2.0, np.nan, np.inf, 2.0], "h", "x", bins=3)
    clean = histogram_png([1.0, 2.0, 2.0], "h", "x", bins=3)
    assert with_nan == clean
    _check_png(histogram_png([np.nan], "empty", "x"))
    _check_png(daily_counts_png(pd.Series([], dtype="int64"), "empty"))
    with pytest.raises(ValueError, match="upper_quantile must be in"):
        histogram_png([1.0, 2.0], "h", "x", upper_quantile=1.5)


def test_bar_png_validates_lengths():
    with pytest.raises(ValueError, match="bar_png: 2 labels but 3 values"):
        bar_png(["a", "b"], [1, 2, 3], "t", "x")


def test_png_markdown_round_trips():
    png = bar_png(["a"], [1.0], "t", "x")
    markdown = png_markdown(png, "RMSE [by model]")
    prefix = "![RMSE \\[by model\\]](data:image/png;base64,"
    assert markdown.startswith(prefix) and markdown.endswith(")")
    assert base64.b64decode(markdown[len(prefix):-1]) == png
    with pytest.raises(ValueError, match="does not start with the PNG signature"):
        png_markdown(b"GIF89a", "x")
