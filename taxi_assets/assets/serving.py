"""Serving: the champion model of each month, promoted in the MLflow registry, and batch
predictions with it.

Registry layout for serving: every model asset registers its own versions under
``taxi-trip-duration-{taxi}-{estimator}``; the champion line is one more registered model,
``taxi-trip-duration-{taxi}`` (:func:`champion_model_name`), whose versions are the models that
won a month, and whose alias ``champion`` is what serving loads:
``mlflow models serve -m "models:/taxi-trip-duration-green@champion"``. The URI never changes
when the winning estimator does.

Promotion rule: the best model of month M by validation RMSE, among the models that beat the
baseline (their own ``beats_baseline`` check), replaces the current champion only if it is not
worse than that champion on the same validation rides, within ``TAXI_CHAMPION_TOLERANCE``
minutes. The decision and both scores are metadata; the blocking check ``promotion_is_safe``
fails, and nothing is promoted, when no model of the month passed its checks.
"""

import time

import dagster as dg
import numpy as np
import pandas as pd

from taxi_assets.assets.preparation import window_frames
from taxi_assets.ml.dataset import pool_months, split_on_time
from taxi_assets.ml.features import REQUEST_FIELDS
from taxi_assets.ml.metrics import regression_metrics
from taxi_assets.partitions import NETWORK_RETRY, ONE_MONTH_PER_RUN, monthly_partitions, training_window_mapping
from taxi_assets.resources.io_manager import TaxiIOManager
from taxi_assets.resources.mlflow import MLFLOW_RESOURCE_KEY, PARTITION_TAG, RUN_ID_TAG
from taxi_assets.settings import SETTINGS

CHAMPION_ALIAS = "champion"
CHAMPION = dg.AssetKey("champion_model")


def champion_model_name(taxi_type: str) -> str:
    return f"taxi-trip-duration-{taxi_type}"


def champion_uri(taxi_type: str) -> str:
    return f"models:/{champion_model_name(taxi_type)}@{CHAMPION_ALIAS}"


def current_champion(client, name: str):
    """The model version behind the ``champion`` alias, or None before the first promotion."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None


def load_champion_predictor(uri: str):
    """The TripDurationPredictor inside a registered pyfunc model."""
    import mlflow

    return mlflow.pyfunc.load_model(uri).unwrap_python_model().predictor


def decide(challenger_rmse: float, champion_rmse: float | None, tolerance: float) -> tuple[bool, str]:
    if champion_rmse is None:
        return True, "promoted: no champion yet"
    if challenger_rmse <= champion_rmse + tolerance:
        return True, f"promoted: {challenger_rmse:.4f} <= champion {champion_rmse:.4f} + tolerance {tolerance}"
    return False, f"kept champion: challenger {challenger_rmse:.4f} > champion {champion_rmse:.4f} + tolerance {tolerance}"


@dg.asset(
    partitions_def=monthly_partitions,
    backfill_policy=ONE_MONTH_PER_RUN,
    retry_policy=NETWORK_RETRY,
    group_name="serving",
    kinds={"mlflow"},
    ins={"model_leaderboard": dg.AssetIn(), "cleaned_trips": dg.AssetIn(partition_mapping=training_window_mapping())},
    required_resource_keys={MLFLOW_RESOURCE_KEY, "io_manager"},
    check_specs=[
        dg.AssetCheckSpec(
            "promotion_is_safe",
            asset=CHAMPION,
            blocking=True,
            description="The champion chosen for the month beat the baseline (passed its model checks).",
        )
    ],
    description=(
        "The month's champion: the best model by validation RMSE among those beating the baseline, "
        "promoted to the MLflow alias 'champion' of the champion line unless it is worse than the "
        "current champion on the same validation rides (tolerance TAXI_CHAMPION_TOLERANCE). Outputs "
        "the predictor that holds the alias after the decision."
    ),
)
def champion_model(context: dg.AssetExecutionContext, model_leaderboard: pd.DataFrame, cleaned_trips):
    month = context.partition_key
    io_manager: TaxiIOManager = context.resources.io_manager
    tracker = getattr(context.resources, MLFLOW_RESOURCE_KEY)
    client = tracker.client
    name = champion_model_name(SETTINGS.taxi_type)
    candidates = model_leaderboard[model_leaderboard["beats_baseline"]]
    if candidates.empty:
        yield dg.AssetCheckResult(
            check_name="promotion_is_safe", asset_key=CHAMPION, passed=False,
            metadata={"reason": "no model beats the baseline", "models": len(model_leaderboard)},
        )
        raise dg.Failure(
            description=f"champion_model[{month}]: no model of {month} beats the baseline; the champion is unchanged",
            allow_retries=False,
        )
    best = candidates.iloc[0]
    challenger = io_manager.load(dg.AssetKey(str(best["model"])), month)
    frames = window_frames(cleaned_trips, month, "champion_model")
    _, validation = split_on_time(pool_months(list(frames.values())), pd.Timestamp(f"{month}-01"))
    records, actual = validation[REQUEST_FIELDS], validation["duration"].to_numpy()
    challenger_rmse = regression_metrics(actual, challenger.predict(records))["rmse"]

    holder = current_champion(client, name)
    champion_rmse, champion_predictor = None, None
    if holder is not None:
        champion_predictor = load_champion_predictor(champion_uri(SETTINGS.taxi_type))
        champion_rmse = regression_metrics(actual, champion_predictor.predict(records))["rmse"]
    promote, decision = decide(challenger_rmse, champion_rmse, SETTINGS.champion_tolerance)
    yield dg.AssetCheckResult(
        check_name="promotion_is_safe", asset_key=CHAMPION, passed=True,
        metadata={"challenger": str(best["model"]), "challenger_rmse": challenger_rmse, "baseline_rmse": float(best["baseline_rmse"])},
    )
    if promote:
        import mlflow

        _ensure_registered(client, name)
        version = mlflow.register_model(
            str(best["model_uri"]),
            name,
            tags={
                "estimator": str(best["model"]),
                PARTITION_TAG: month,
                RUN_ID_TAG: context.run_id,
                "validation_rmse": f"{challenger_rmse:.6f}",
            },
        )
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version.version)
        holder, output = client.get_model_version(name, version.version), challenger
    else:
        output = champion_predictor
    context.log.info(f"champion_model[{month}]: {decision}")
    yield dg.Output(
        output,
        metadata={
            "decision": decision,
            "promoted": promote,
            "challenger": str(best["model"]),
            "challenger_rmse": round(challenger_rmse, 6),
            "previous_champion_rmse": round(champion_rmse, 6) if champion_rmse is not None else -1.0,
            "champion": output.name,
            "champion_version": int(holder.version),
            "champion_uri": champion_uri(SETTINGS.taxi_type),
            "tolerance": SETTINGS.champion_tolerance,
            "validation_rows": len(validation),
        },
    )


def _ensure_registered(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="Champion line: each version won a month; the 'champion' alias is what serving loads."
        )


@dg.asset(
    partitions_def=monthly_partitions,
    backfill_policy=ONE_MONTH_PER_RUN,
    group_name="serving",
    kinds={"parquet"},
    description=(
        "Batch inference: every cleaned ride of month M scored by champion_model[M], stored beside "
        "the ride's key fields, with rows, mean prediction and RMSE against the actual durations."
    ),
)
def trip_duration_predictions(context: dg.AssetExecutionContext, champion_model, cleaned_trips: pd.DataFrame) -> dg.Output[pd.DataFrame]:
    started = time.perf_counter()
    predicted = champion_model.predict(cleaned_trips[REQUEST_FIELDS])
    frame = pd.DataFrame(
        {
            "pickup_datetime": cleaned_trips["pickup_datetime"].to_numpy(),
            "PULocationID": cleaned_trips["PULocationID"].to_numpy(),
            "DOLocationID": cleaned_trips["DOLocationID"].to_numpy(),
            "trip_distance": cleaned_trips["trip_distance"].to_numpy(),
            "duration": cleaned_trips["duration"].to_numpy(),
            "predicted_duration": predicted,
        }
    )
    metrics = regression_metrics(frame["duration"].to_numpy(), predicted)
    context.log.info(f"scored {len(frame):,} rides with {champion_model.name} in {time.perf_counter() - started:.2f}s")
    return dg.Output(
        frame,
        metadata={
            "rows": len(frame),
            "model": champion_model.name,
            "mean_prediction": round(float(np.mean(predicted)), 4),
            "mean_actual": round(float(frame["duration"].mean()), 4),
            **{k: round(float(v), 6) for k, v in metrics.items()},
        },
    )
