"""The jobs: the whole graph of a month, ingestion of a month, retraining of a month."""

import dagster as dg

from taxi_assets.defs.partitions import monthly_partitions

RAW = dg.AssetKey("raw_trips")
DRIFT = dg.AssetKey("data_drift")

# Runs that train models; the queued run coordinator (deploy/dagster.yaml) limits how many run at once.
TRAINING_TAGS = {"taxi/workload": "training"}

taxi_pipeline = dg.define_asset_job(
    "taxi_pipeline",
    selection=dg.AssetSelection.all(),
    partitions_def=monthly_partitions,
    description="Every asset of one month, from the TLC file to the champion model and its predictions.",
    tags=TRAINING_TAGS,
)

ingest_month_job = dg.define_asset_job(
    "ingest_month",
    selection=[RAW],
    partitions_def=monthly_partitions,
    description="Fetch one TLC month into raw_trips; automation carries it downstream.",
)

retrain_month_job = dg.define_asset_job(
    "retrain_month",
    selection=dg.AssetSelection.assets("training_set").downstream() - dg.AssetSelection.assets(DRIFT),
    partitions_def=monthly_partitions,
    description="Rebuild one month's training set and everything downstream of it (models, leaderboard, champion).",
    tags=TRAINING_TAGS,
)

prepare_month_job = dg.define_asset_job(
    "prepare_month",
    selection=[RAW, dg.AssetKey("cleaned_trips")],
    partitions_def=monthly_partitions,
    description="Fetch and clean one TLC month (raw_trips, cleaned_trips): what a training month needs.",
)
