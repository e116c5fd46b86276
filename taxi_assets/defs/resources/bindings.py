"""The resources every asset, sensor and job uses, bound once on the embedded defaults.

Every field is overridable per deployment (run config in the launchpad, or environment
variables declared in ``taxi_assets.settings``); credentials are ``dg.EnvVar``s, never values.
"""

import dagster as dg

from taxi_assets.defs.resources.data_source import TlcDataSource
from taxi_assets.defs.resources.io_manager import TaxiIOManager
from taxi_assets.defs.resources.model_registry import MODEL_REGISTRY_KEY, ModelRegistry
from taxi_assets.defs.resources.notifier import notifier_from_env
from taxi_assets.defs.resources.tracking import MLFLOW_RESOURCE_KEY, MlflowTracking
from taxi_assets.settings import SETTINGS, Settings


def tracking_resource(settings: Settings = SETTINGS) -> MlflowTracking:
    """The MLflow resource; a server login, when set, is bound as EnvVars (never a value)."""
    credentials = {
        field: dg.EnvVar(variable)
        for field, variable in (("username", "MLFLOW_TRACKING_USERNAME"), ("password", "MLFLOW_TRACKING_PASSWORD"))
        if getattr(settings, variable.lower()) is not None
    }
    return MlflowTracking(**credentials)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "io_manager": TaxiIOManager(),
            "data_source": TlcDataSource(),
            MLFLOW_RESOURCE_KEY: tracking_resource(),
            "notifier": notifier_from_env(),
            MODEL_REGISTRY_KEY: ModelRegistry(),
        }
    )
