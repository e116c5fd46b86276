"""Names in the MLflow registry, the champion alias and the promotion rule.

Registry layout: every estimator registers its own versions as
``taxi-trip-duration-{taxi}-{estimator}``; versions of one name are always comparable (same
estimator, same feature code). The champion line ``taxi-trip-duration-{taxi}`` holds the
models that won a month, and its alias ``champion`` is what serving loads:
``mlflow models serve -m "models:/taxi-trip-duration-green@champion"``, a URI that never
changes when another estimator wins.
"""

from __future__ import annotations

CHAMPION_ALIAS = "champion"

# Tags on MLflow runs and registered versions (Dagster's run id, asset key and partition).
RUN_ID_TAG = "dagster.run_id"
ASSET_KEY_TAG = "dagster.asset_key"
PARTITION_TAG = "dagster.partition"


def registered_model_name(taxi_type: str, estimator: str) -> str:
    """The registry name of ``estimator``'s models for ``taxi_type`` (one name per estimator)."""
    return f"taxi-trip-duration-{taxi_type}-{estimator}"


def champion_model_name(taxi_type: str) -> str:
    """The champion line of ``taxi_type``: each version won a month."""
    return f"taxi-trip-duration-{taxi_type}"


def champion_uri(taxi_type: str) -> str:
    """What serving loads: the alias ``champion`` of the champion line."""
    return f"models:/{champion_model_name(taxi_type)}@{CHAMPION_ALIAS}"


def decide(challenger_rmse: float, champion_rmse: float | None, tolerance: float) -> tuple[bool, str]:
    """The promotion rule: the month's best model replaces the champion unless it is worse
    on the same validation rides by more than ``tolerance`` minutes."""
    if champion_rmse is None:
        return True, "promoted: no champion yet"
    if challenger_rmse <= champion_rmse + tolerance:
        return True, f"promoted: {challenger_rmse:.4f} <= champion {champion_rmse:.4f} + tolerance {tolerance}"
    return False, f"kept champion: challenger {challenger_rmse:.4f} > champion {champion_rmse:.4f} + tolerance {tolerance}"
