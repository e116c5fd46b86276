"""The code location: every asset, check, resource, job, schedule and sensor in one place."""

from __future__ import annotations

import dagster as dg

from taxi_assets.assets import ingestion, preparation
from taxi_assets.partitions import monthly_partitions
from taxi_assets.resources.data_source import TlcDataSource
from taxi_assets.resources.io_manager import TaxiIOManager
from taxi_assets.settings import SETTINGS

# The whole graph for one month: ingestion -> preparation -> models -> serving/monitoring.
taxi_pipeline = dg.define_asset_job(
    "taxi_pipeline",
    selection=dg.AssetSelection.all(),
    partitions_def=monthly_partitions,
    description="Every asset of one month, from the TLC file to the champion model.",
)


def build_resources() -> dict:
    """Resources on the embedded defaults; every field is overridable per deployment."""
    return {
        "io_manager": TaxiIOManager(base_dir=str(SETTINGS.type_root)),
        "data_source": TlcDataSource(),
    }


defs = dg.Definitions(
    assets=dg.load_assets_from_modules([ingestion, preparation]),
    jobs=[taxi_pipeline],
    resources=build_resources(),
)
