"""taxi-assets: the NYC taxi trip-duration ML pipeline as a Dagster code location."""

import warnings

import dagster as dg

# The project deliberately uses two beta parameters (BackfillPolicy on assets and
# allow_nonexistent_upstream_partitions on the training-window mapping); their warnings would
# repeat on every CLI call and step process without telling the user anything actionable.
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from taxi_assets.definitions import defs  # noqa: E402

__all__ = ["defs"]
