"""Where TLC months come from: the TLC's HTTP address, another mirror, or a local folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg

from taxi_assets.io import download
from taxi_assets.settings import SETTINGS


class TlcDataSource(dg.ConfigurableResource):
    """Fetches ``{taxi_type}_tripdata_{YYYY-MM}.parquet`` from ``base`` (URL or folder).

    Defaults come from the settings (``TAXI_DATA_SOURCE``, ``TAXI_TYPE``); timeouts and retry
    counts are resource config so operators can tune them per deployment.
    """

    base: str = SETTINGS.data_source
    taxi_type: str = SETTINGS.taxi_type
    timeout_seconds: float = 60.0
    retries: int = 3
    backoff_seconds: float = 2.0

    def file_name(self, month: str) -> str:
        return download.month_file_name(self.taxi_type, month)

    def location(self, month: str) -> str:
        return f"{self.base.rstrip('/')}/{self.file_name(month)}"

    def fetch(self, month: str, dest_dir: Path, log: Callable[[str], None] | None = None) -> download.FetchedMonth:
        dest_dir.mkdir(parents=True, exist_ok=True)
        return download.fetch_month(
            self.base,
            self.taxi_type,
            month,
            dest_dir,
            timeout=self.timeout_seconds,
            retries=self.retries,
            backoff_seconds=self.backoff_seconds,
            log=log,
        )

    def is_published(self, month: str) -> bool:
        return download.month_available(self.base, self.taxi_type, month, timeout=min(self.timeout_seconds, 15.0))
