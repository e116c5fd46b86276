"""Monthly partitions keyed like the TLC file names (``2024-01``), shared by every asset."""

from __future__ import annotations

import dagster as dg

from taxi_assets.settings import SETTINGS

monthly_partitions = dg.MonthlyPartitionsDefinition(start_date=SETTINGS.start_month, fmt="%Y-%m")


def previous_months(month: str, count: int) -> list[str]:
    """The ``count`` month keys before ``month``, oldest first (``2024-02``, 1 -> ``[2024-01]``)."""
    year, mon = (int(p) for p in month.split("-"))
    index = year * 12 + (mon - 1)
    return [f"{(i) // 12:04d}-{(i) % 12 + 1:02d}" for i in range(index - count, index)]
