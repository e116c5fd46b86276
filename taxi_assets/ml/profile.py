"""Column profiles of trip frames, rendered as tables for asset metadata and reports.

A profile is the cheapest drift detector there is: a column that suddenly becomes
all-null, a new vendor code, or a 100 000-mile trip shows up here before it ever
reaches a model. The output is a plain DataFrame so it can be stored, diffed between
partitions, or rendered as markdown in the Dagster UI.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

PROFILE_COLUMNS = [
    "column",
    "dtype",
    "missing",
    "missing_pct",
    "unique",
    "top_values",
    "min",
    "max",
    "mean",
    "median",
]


def _is_numeric(series: pd.Series) -> bool:
    # Booleans are numeric to pandas, but min/mean of a flag column is noise.
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _to_python(value: Any) -> Any:
    """Turn numpy/pandas scalars into plain Python values; NaN/NaT become None.

    Plain scalars keep the profile easy to store and compare; datetimes stay
    ``pd.Timestamp`` so they keep their resolution.
    """
    if value is None:
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else pd.Timestamp(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    return value


def _top_values(series: pd.Series, top_n: int) -> str:
    if top_n <= 0:
        return ""
    counts = series.value_counts(dropna=True)
    # value_counts orders ties arbitrarily across pandas versions; break them by value
    # text so the profile is stable between runs.
    ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return ", ".join(f"{value} ({count})" for value, count in ordered[:top_n])


def profile_frame(df: pd.DataFrame, top_n: int = 3) -> pd.DataFrame:
    """Profile every column of ``df``: one row per column, in the frame's column order.

    Columns of the result:
    ``column``, ``dtype``, ``missing`` (null count), ``missing_pct`` (0..100),
    ``unique`` (distinct non-null values), ``top_values`` (the ``top_n`` most
    frequent values as ``"value (count)"`` joined by ``", "``), and ``min``, ``max``,
    ``mean``, ``median`` for numeric and datetime columns (``None`` otherwise, and
    ``None`` when the column has no non-null values).
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"profile_frame expects a pandas DataFrame, got {type(df).__name__}")
    rows = []
    n_rows = len(df)
    for name in df.columns:
        series = df[name]
        missing = int(series.isna().sum())
        row: dict[str, Any] = {
            "column": str(name),
            "dtype": str(series.dtype),
            "missing": missing,
            "missing_pct": (100.0 * missing / n_rows) if n_rows else 0.0,
            "unique": int(series.nunique(dropna=True)),
            "top_values": _top_values(series, top_n),
            "min": None,
            "max": None,
            "mean": None,
            "median": None,
        }
        has_values = missing < n_rows
        if has_values and (_is_numeric(series) or pd.api.types.is_datetime64_any_dtype(series)):
            row["min"] = _to_python(series.min())
            row["max"] = _to_python(series.max())
            row["mean"] = _to_python(series.mean())
            row["median"] = _to_python(series.median())
        rows.append(row)
    profile = pd.DataFrame(rows, columns=PROFILE_COLUMNS)
    # Keep mixed float/Timestamp/None statistics as Python objects rather than letting
    # pandas coerce them (which would turn None into NaN and ints into floats).
    for column in ("min", "max", "mean", "median"):
        profile[column] = pd.Series([row[column] for row in rows], dtype=object)
    return profile


def _format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value == 0 or abs(value) >= 1e-3:
            # Fixed point keeps large values exact to the cent (201421.68, not 2.01e+05).
            return f"{value:.4f}".rstrip("0").rstrip(".")
        return f"{value:.4g}"
    if isinstance(value, pd.Timestamp):
        return value.isoformat(sep=" ")
    text = str(value)
    # A literal pipe would split the cell; newlines would end the row.
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def profile_markdown(profile: pd.DataFrame) -> str:
    """Render a profile (from :func:`profile_frame`) as a GitHub-flavoured markdown table.

    One header row, one separator row and one row per profiled column; ``missing_pct``
    is shown with two decimals and a percent sign.
    """
    missing_cols = [c for c in PROFILE_COLUMNS if c not in profile.columns]
    if missing_cols:
        raise ValueError(
            f"profile_markdown needs the output of profile_frame; missing columns {missing_cols}"
        )
    lines = [
        "| " + " | ".join(PROFILE_COLUMNS) + " |",
        "| " + " | ".join("---" for _ in PROFILE_COLUMNS) + " |",
    ]
    for record in profile[PROFILE_COLUMNS].to_dict("records"):
        cells = []
        for column in PROFILE_COLUMNS:
            value = record[column]
            if column == "missing_pct" and value is not None:
                cells.append(f"{float(value):.2f}%")
            else:
                cells.append(_format_cell(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pickups_per_day(
    df: pd.DataFrame, time_column: str, fill_missing_days: bool = False
) -> pd.Series:
    """Count rows per calendar day of ``time_column``.

    Returns an int64 Series indexed by midnight timestamps (index name ``"date"``),
    sorted by day. Null timestamps are not counted.

    Days without any pickup are absent unless ``fill_missing_days`` is true; filling is
    opt-in because raw TLC files contain stray timestamps years away from the month, and
    filling the gap would create thousands of empty days.
    """
    if time_column not in df.columns:
        raise KeyError(
            f"pickups_per_day: column {time_column!r} not found; available columns: "
            f"{list(df.columns)}"
        )
    times = df[time_column]
    if not pd.api.types.is_datetime64_any_dtype(times):
        raise TypeError(
            f"pickups_per_day: column {time_column!r} must be datetime64, got {times.dtype}"
        )
    days = times.dropna().dt.floor("D")
    counts = days.value_counts().sort_index().astype("int64")
    counts.index = pd.DatetimeIndex(counts.index, name="date")
    if fill_missing_days and len(counts):
        full = pd.date_range(counts.index.min(), counts.index.max(), freq="D", name="date")
        counts = counts.reindex(full, fill_value=0)
    counts.name = "pickups"
    return counts
