"""Names in the MLflow registry, the champion alias and the promotion rule.

Registry layout: every estimator registers its own versions as
``taxi-trip-duration-{taxi}-{estimator}``; versions of one name are always comparable (same
estimator, same feature code). The champion line ``taxi-trip-duration-{taxi}`` holds one version
per month's decision (tagged with that month), and its alias ``champion`` is what serving loads:
``mlflow models serve -m "models:/taxi-trip-duration-green@champion"``, a URI that never
changes when another estimator wins. The alias only moves forward in time
(:mod:`taxi_assets.registry.champion`).
"""

from __future__ import annotations

CHAMPION_ALIAS = "champion"

# Tags on MLflow runs and registered versions (Dagster's run id, asset key and partition).
RUN_ID_TAG = "dagster.run_id"
ASSET_KEY_TAG = "dagster.asset_key"
PARTITION_TAG = "dagster.partition"

# Tags of a version of the champion line: the month whose decision it records, the month the
# model first won, the months it was trained on, and whether that month promoted or kept it.
CHAMPION_MONTH_TAG = "champion_month"
WON_MONTH_TAG = "won_month"
TRAINED_MONTHS_TAG = "trained_months"
DECISION_TAG = "decision"


def registered_model_name(taxi_type: str, estimator: str) -> str:
    """The registry name of ``estimator``'s models for ``taxi_type`` (one name per estimator)."""
    return f"taxi-trip-duration-{taxi_type}-{estimator}"


def champion_model_name(taxi_type: str) -> str:
    """The champion line of ``taxi_type``: each version won a month."""
    return f"taxi-trip-duration-{taxi_type}"


def champion_uri(taxi_type: str) -> str:
    """What serving loads: the alias ``champion`` of the champion line."""
    return f"models:/{champion_model_name(taxi_type)}@{CHAMPION_ALIAS}"
