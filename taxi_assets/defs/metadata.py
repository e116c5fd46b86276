"""Asset metadata in Dagster's native types, so the UI renders it inline.

Tables (profiles, leaderboards, hyperparameters, top features) are ``MetadataValue.table``
with a typed schema; data assets carry ``dagster/row_count`` and ``dagster/column_schema``;
numbers stay numbers (plotted across partitions in the asset's *Insights* tab); pictures are
small PNGs (480 x 280 px) embedded as markdown, which fit the metadata dialog, and are also
written under ``<data root>/<taxi>/reports/<asset>/<month>/``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from taxi_assets.io.atomic import atomic_path
from taxi_assets.ml import charts
from taxi_assets.ml.profile import pickups_per_day, profile_frame
from taxi_assets.settings import SETTINGS


def _column_type(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    return "string"


def column_schema(frame: pd.DataFrame, descriptions: Mapping[str, str] | None = None) -> dg.TableSchema:
    """The frame's columns and types (and what each means, when given), for ``dagster/column_schema``."""
    described = descriptions or {}
    return dg.TableSchema(
        columns=[dg.TableColumn(str(c), _column_type(frame[c].dtype), described.get(str(c))) for c in frame.columns]
    )


def table_metadata(frame: pd.DataFrame, descriptions: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``dagster/row_count`` and ``dagster/column_schema`` of a data asset's frame."""
    return {
        "dagster/row_count": dg.MetadataValue.int(len(frame)),
        "dagster/column_schema": dg.MetadataValue.table_schema(column_schema(frame, descriptions)),
    }


def _cell(value: Any) -> Any:
    """A value a ``TableRecord`` accepts (str, int, float, bool or None)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) else round(value, 6)
    if isinstance(value, pd.Timestamp):
        return value.isoformat(sep=" ")
    return str(value)


def frame_table(frame: pd.DataFrame, max_rows: int = 200) -> dg.MetadataValue:
    """A pandas frame as a native metadata table (typed columns; at most ``max_rows`` rows)."""
    shown = frame.head(max_rows)
    types = {c: _column_type(shown[c].dtype) for c in shown.columns}
    # Object columns holding numbers and text alike (a profile's min/max) are shown as text.
    records = [
        dg.TableRecord(
            {str(c): (_cell(row[c]) if types[c] != "string" else (None if row[c] is None else str(_cell(row[c]))))
             for c in shown.columns}
        )
        for _, row in shown.iterrows()
    ]  # fmt: skip
    return dg.MetadataValue.table(records=records, schema=column_schema(shown))


def png_metadata(png: bytes, alt: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(charts.png_markdown(png, alt))


def report_dir(asset: str, month: str):
    return SETTINGS.type_root / "reports" / asset / month


def save_report(asset: str, month: str, name: str, png: bytes) -> None:
    """Write a chart beside the data (``reports/<asset>/<month>/<name>.png``), atomically. A
    full or read-only data root fails the step at once, naming the folder (no retry: it
    stays full until someone frees space)."""
    folder = report_dir(asset, month)
    try:
        with atomic_path(folder / f"{name}.png") as tmp:
            tmp.write_bytes(png)
    except OSError as exc:
        raise dg.Failure(
            description=f"{asset}[{month}]: cannot write {folder}: {exc.strerror or type(exc).__name__}; "
            "nothing was replaced",
            allow_retries=False,
        ) from None


def compact_profile(profile: pd.DataFrame, top_width: int = 40) -> pd.DataFrame:
    """The profile as the UI shows it: statistics first, then the top values (shortened, and
    left out for timestamps, where the most frequent instants say nothing), so the table stays
    one line per column."""
    shown = profile[["column", "dtype", "missing", "missing_pct", "unique", "min", "max", "mean", "median", "top_values"]].copy()
    shown["missing_pct"] = shown["missing_pct"].astype(float).round(4)
    timestamps = shown["dtype"].str.startswith("datetime")
    shown.loc[timestamps, "top_values"] = ""
    shown["top_values"] = [v if len(v) <= top_width else v[: top_width - 1] + "…" for v in shown["top_values"].astype(str)]
    return shown


def profile_metadata(
    frame: pd.DataFrame,
    asset: str,
    month: str,
    time_column: str,
    histograms: dict[str, str],
) -> dict[str, Any]:
    """Profile table, row count, column schema and charts of ``frame``.

    ``histograms`` maps column -> axis label. The charts are written under the report folder.
    """
    pictures = {"pickups_per_day": charts.daily_counts_png(pickups_per_day(frame, time_column), f"{asset}[{month}]: pickups per day")}
    for column, label in histograms.items():
        pictures[f"{column}_histogram"] = charts.histogram_png(
            frame[column], f"{asset}[{month}]: {column}", label, upper_quantile=0.99
        )
    profile = compact_profile(profile_frame(frame))
    metadata: dict[str, Any] = {
        **table_metadata(frame),
        "profile": frame_table(profile),
        "report_dir": dg.MetadataValue.path(str(report_dir(asset, month))),
    }
    for name, png in pictures.items():
        save_report(asset, month, name, png)
        metadata[name] = png_metadata(png, f"{asset} {month} {name}")
    return metadata
