"""Where TLC months come from: the TLC's HTTP address, another mirror, or a local folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
from pydantic import Field

from taxi_assets.io import download
from taxi_assets.settings import SETTINGS


class TlcDataSource(dg.ConfigurableResource):
    """Fetches ``{taxi type}_tripdata_{YYYY-MM}.parquet`` from ``base`` (URL or folder).

    ``base`` defaults to ``TAXI_DATA_SOURCE``; the taxi type is the deployment's one setting
    (``TAXI_TYPE``), not resource config. Timeouts and retry counts are resource config so
    operators can tune them per deployment. A source that stops answering fails an attempt
    after ``timeout_seconds`` without progress; with the defaults a hanging source is reported
    as a timeout after about 95 s (three attempts of 30 s, 2 + 4 s apart).
    """

    base: str = Field(default=SETTINGS.data_source, description="TLC base URL or local folder (TAXI_DATA_SOURCE).")
    timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds without any progress (connect, headers, body) before an attempt times out."
    )
    retries: int = Field(default=2, ge=0, le=10, description="Retries after the first attempt (HTTP only).")
    backoff_seconds: float = Field(default=2.0, ge=0, le=300, description="First retry delay, doubled each retry.")

    @property
    def taxi_type(self) -> str:
        return SETTINGS.taxi_type

    def file_name(self, month: str) -> str:
        return download.month_file_name(self.taxi_type, month)

    def location(self, month: str) -> str:
        return f"{self.base.rstrip('/')}/{self.file_name(month)}"

    def fetch(self, month: str, dest_dir: Path, log: Callable[[str], None] | None = None) -> download.FetchedMonth:
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
