"""The champion line in the MLflow registry: who holds the alias, loading it, promoting a model.

Plain MLflow (no Dagster): ``champion_model`` calls these, the CLI and the ``predict`` job
load what they promote. The promotion rule itself is :func:`taxi_assets.registry.names.decide`.
"""

from __future__ import annotations

from taxi_assets.registry.names import CHAMPION_ALIAS, champion_model_name, champion_uri
from taxi_assets.registry.tracking import TrackingStore, tracking_uri_set


def current_champion(store: TrackingStore, taxi_type: str):
    """The model version behind the ``champion`` alias, or None before the first promotion."""
    from mlflow.exceptions import MlflowException

    try:
        return store.client.get_model_version_by_alias(champion_model_name(taxi_type), CHAMPION_ALIAS)
    except MlflowException:
        return None


def load_champion_predictor(store: TrackingStore, taxi_type: str):
    """The :class:`~taxi_assets.ml.predictor.TripDurationPredictor` the alias points to."""
    import mlflow

    with tracking_uri_set(store.tracking_uri):
        return mlflow.pyfunc.load_model(champion_uri(taxi_type)).unwrap_python_model().predictor


def promote(store: TrackingStore, taxi_type: str, model_uri: str, run_id: str | None, tags: dict[str, str]):
    """Register ``model_uri`` on the champion line and move the alias to it; returns the version."""
    name = champion_model_name(taxi_type)
    version = store.register(
        name,
        model_uri,
        run_id,
        tags=tags,
        description="Champion line: each version won a month; the 'champion' alias is what serving loads.",
    )
    store.client.set_registered_model_alias(name, CHAMPION_ALIAS, version.version)
    return version
