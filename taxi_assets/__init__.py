"""taxi-assets: the NYC taxi trip-duration ML pipeline as a Dagster code location."""

from taxi_assets.definitions import defs

__all__ = ["defs"]
