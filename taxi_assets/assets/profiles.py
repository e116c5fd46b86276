"""Data-profile metadata shared by the ingestion and preparation assets.

People look at the Dagster UI first, so each month's profile lands there: a per-column table
(missing, unique, top values, min/max/mean/median) and pictures (pickups per day and
histograms) embedded in markdown metadata. The same PNGs are written beside the data under
``<data root>/<taxi>/reports/<asset>/<month>/`` so they can be linked or archived.
"""

import dagster as dg
import pandas as pd

from taxi_assets.io.atomic import atomic_path
from taxi_assets.ml import charts
from taxi_assets.ml.profile import pickups_per_day, profile_frame, profile_markdown
from taxi_assets.settings import SETTINGS


def profile_metadata(
    frame: pd.DataFrame,
    asset: str,
    month: str,
    time_column: str,
    histograms: dict[str, str],
) -> dict[str, dg.MetadataValue]:
    """Profile table and charts of ``frame``; ``histograms`` maps column -> axis label."""
    report_dir = SETTINGS.type_root / "reports" / asset / month
    pictures = {"pickups_per_day": charts.daily_counts_png(pickups_per_day(frame, time_column), f"{asset}[{month}]: pickups per day")}
    for column, label in histograms.items():
        pictures[f"{column}_histogram"] = charts.histogram_png(
            frame[column], f"{asset}[{month}]: {column}", label, upper_quantile=0.99
        )
    metadata: dict[str, dg.MetadataValue] = {
        "profile": dg.MetadataValue.md(profile_markdown(profile_frame(frame))),
        "report_dir": dg.MetadataValue.path(str(report_dir)),
    }
    for name, png in pictures.items():
        with atomic_path(report_dir / f"{name}.png") as tmp:
            tmp.write_bytes(png)
        metadata[name] = dg.MetadataValue.md(charts.png_markdown(png, f"{asset} {month} {name}"))
    return metadata
