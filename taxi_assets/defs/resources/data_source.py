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
    (``TAXI_TYPE``), not resource config. One attempt per fetch: a transient failure retries
    the step (``TAXI_MAX_RETRIES``, ``TAXI_RETRY_DELAY_SECONDS``), so with the defaults a source
    that stops answering fails after three attempts of ``timeout_seconds`` and 30 + 60 s of delays.
    """

    base: str = Field(default=SETTINGS.data_source, description="TLC base URL or local folder (TAXI_DATA_SOURCE).")
    timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600,
        description="Seconds without an answer, or with under 64 KiB of the file, before an attempt times out.",
    )  # fmt: skip

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
            log=log,
        )

    def is_published(self, month: str) -> bool:
        return download.month_available(self.base, self.taxi_type, month, timeout=min(self.timeout_seconds, 15.0))
