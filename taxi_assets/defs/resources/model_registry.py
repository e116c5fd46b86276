"""The ``model_registry`` resource: read-only access to the MLflow model registry that serving
loads models from (the ``predict`` job; it starts no MLflow run, unlike ``mlflow``)."""

import dagster as dg
from pydantic import Field

from taxi_assets.registry.names import champion_uri
from taxi_assets.settings import SETTINGS

MODEL_REGISTRY_KEY = "model_registry"


class ModelRegistry(dg.ConfigurableResource):
    """Read-only access to the MLflow model registry serving loads models from; the store is
    ``MLFLOW_TRACKING_URI`` unless a run sets ``resources: {model_registry: {config:
    {tracking_uri: ...}}}``."""

    tracking_uri: str = Field(
        default=SETTINGS.mlflow_tracking_uri,
        description="MLflow tracking store holding the registry (sqlite URI or server URL).",
    )

    def champion_uri(self) -> str:
        """The champion of this deployment's taxi type (the one setting, TAXI_TYPE)."""
        return champion_uri(SETTINGS.taxi_type)

    def load(self, model_uri: str | None = None):
        """The :class:`~taxi_assets.registry.serving.LoadedModel` for ``model_uri`` (default: the champion)."""
        from taxi_assets.registry.serving import load_model

        return load_model(model_uri or self.champion_uri(), self.tracking_uri)
