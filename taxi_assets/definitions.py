"""The code location: every asset, check, resource, job, schedule and sensor in one place."""

import dagster as dg

from taxi_assets.assets import ingestion, monitoring, preparation, serving
from taxi_assets.assets.models import model_assets
from taxi_assets.automation import triggers
from taxi_assets.automation.alerts import alert_sensors
from taxi_assets.executors import executor_from_settings
from taxi_assets.partitions import monthly_partitions
from taxi_assets.resources.data_source import TlcDataSource
from taxi_assets.resources.io_manager import TaxiIOManager
from taxi_assets.resources.mlflow import MLFLOW_RESOURCE_KEY, mlflow_resource
from taxi_assets.resources.notifications import notifier_from_env
from taxi_assets.serving.jobs import predict_job
from taxi_assets.settings import SETTINGS

# The whole graph for one month: ingestion -> preparation -> models -> serving/monitoring.
taxi_pipeline = dg.define_asset_job(
    "taxi_pipeline",
    selection=dg.AssetSelection.all(),
    partitions_def=monthly_partitions,
    description="Every asset of one month, from the TLC file to the champion model.",
    tags=triggers.TRAINING_TAGS,
)


def build_resources() -> dict:
    """Resources on the embedded defaults; every field is overridable per deployment."""
    return {
        "io_manager": TaxiIOManager(base_dir=str(SETTINGS.type_root)),
        "data_source": TlcDataSource(),
        MLFLOW_RESOURCE_KEY: mlflow_resource,
        "notifier": notifier_from_env(),
    }


def with_automation(assets: list) -> list:
    """Every asset downstream of raw_trips retrains on its own when its inputs change."""
    condition = triggers.retrain_condition()
    return [
        a.map_asset_specs(lambda spec: spec if spec.key == triggers.RAW else spec.replace_attributes(automation_condition=condition))
        for a in assets
    ]


all_assets = with_automation(
    [
        *dg.load_assets_from_modules([ingestion, preparation, monitoring, serving]),
        *model_assets,
        monitoring.model_leaderboard_factory([a.key.to_user_string() for a in model_assets]),
    ]
)

defs = dg.Definitions(
    assets=all_assets,
    jobs=[taxi_pipeline, triggers.ingest_month_job, triggers.retrain_month_job, predict_job],
    schedules=[triggers.monthly_ingestion_schedule],
    sensors=[triggers.new_month_sensor, triggers.drift_retraining_sensor, triggers.automation_sensor, *alert_sensors],
    resources=build_resources(),
    executor=executor_from_settings(),
)
