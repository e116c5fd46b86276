"""Serving: the champion model of each month, promoted in the MLflow registry, and batch
predictions with it.

Promotion rule (:func:`taxi_assets.registry.names.decide`): the best model of month M by
validation RMSE, among the models that beat the baseline, replaces the current champion only
if it is not worse than that champion on the same validation rides, within
``TAXI_CHAMPION_TOLERANCE`` minutes. The blocking check ``promotion_is_safe`` is judged before
anything is promoted: a month where no model beats the baseline fails and the alias stays.
"""

import time

import dagster as dg
import numpy as np
import pandas as pd

from taxi_assets.defs.models.assets import MODEL_NAMES
from taxi_assets.defs.partitions import ML_TEAM, monthly_asset, months_of
from taxi_assets.defs.resources.tracking import MlflowTracking
from taxi_assets.ml.features import REQUEST_FIELDS
from taxi_assets.ml.metrics import regression_metrics
from taxi_assets.ml.trained import TrainedModel
from taxi_assets.registry.champion import current_champion, load_champion_predictor, promote
from taxi_assets.registry.names import PARTITION_TAG, RUN_ID_TAG, champion_uri, decide
from taxi_assets.settings import SETTINGS

CHAMPION = dg.AssetKey("champion_model")


def _pick(value, month):
    return value[month] if isinstance(value, dict) else value


def champion_of_month(context, mlflow: MlflowTracking, month: str, board: pd.DataFrame, ts, models: dict):
    """``(check result, TrainedModel or None, metadata)`` of month ``month``'s decision."""
    candidates = board[board["beats_baseline"]]
    if candidates.empty:
        check = dg.AssetCheckResult(
            check_name="promotion_is_safe",
            asset_key=CHAMPION,
            passed=False,
            metadata={"reason": "no model beats the baseline", "models": len(board)},
        )
        return check, None, {}
    best = candidates.iloc[0]
    challenger: TrainedModel = models[str(best["model"])]
    validation = ts.validation_rides()
    records, actual = validation[REQUEST_FIELDS], validation["duration"].to_numpy()
    challenger_rmse = regression_metrics(actual, challenger.predict(records))["rmse"]
    store = mlflow.reachable_store(context, f"champion_model[{month}]")
    holder = current_champion(store, SETTINGS.taxi_type)
    champion_rmse, holder_model = None, None
    if holder is not None:
        predictor = load_champion_predictor(store, SETTINGS.taxi_type)
        champion_rmse = regression_metrics(actual, predictor.predict(records))["rmse"]
        holder_model = TrainedModel(
            predictor=predictor,
            estimator=str(holder.tags.get("estimator", predictor.name)),
            month=str(holder.tags.get(PARTITION_TAG, "")),
            metrics={"rmse": champion_rmse},
            model_uri=str(holder.source),
            registered_model_name=holder.name,
            registered_model_version=int(holder.version),
        )
    promoted, decision = decide(challenger_rmse, champion_rmse, SETTINGS.champion_tolerance)
    check = dg.AssetCheckResult(
        check_name="promotion_is_safe",
        asset_key=CHAMPION,
        passed=True,
        metadata={"challenger": str(best["model"]), "challenger_rmse": challenger_rmse, "baseline_rmse": float(best["baseline_rmse"])},
    )
    if promoted:
        version = promote(
            store,
            SETTINGS.taxi_type,
            challenger.model_uri,
            challenger.mlflow_run_id or None,
            tags={"estimator": challenger.estimator, PARTITION_TAG: month, RUN_ID_TAG: context.run_id, "validation_rmse": f"{challenger_rmse:.6f}"},
        )
        output, version_number = challenger, int(version.version)
    else:
        output, version_number = holder_model, int(holder.version)
    context.log.info(f"champion_model[{month}]: {decision}")
    metadata = {
        "decision": decision,
        "promoted": promoted,
        "challenger": str(best["model"]),
        "challenger_rmse": round(challenger_rmse, 6),
        "previous_champion_rmse": round(champion_rmse, 6) if champion_rmse is not None else -1.0,
        "champion": output.name,
        "champion_version": version_number,
        "champion_uri": champion_uri(SETTINGS.taxi_type),
        "tolerance": SETTINGS.champion_tolerance,
        "validation_rows": len(validation),
    }
    return check, output, metadata


@dg.asset(
    **monthly_asset("serving", ML_TEAM, {"mlflow"}),
    ins={
        "model_leaderboard": dg.AssetIn(),
        "training_set": dg.AssetIn(),
        **{name: dg.AssetIn(key=name) for name in MODEL_NAMES},
    },
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
        "current champion on the same validation rides (tolerance TAXI_CHAMPION_TOLERANCE). Stores "
        "the model that holds the alias after the decision."
    ),
)
def champion_model(context: dg.AssetExecutionContext, mlflow: MlflowTracking, model_leaderboard, training_set, **models):
    from taxi_assets.defs.checks import combine, gate

    months = months_of(context)
    # Judge every month before anything is promoted: a month without a qualifying model stops
    # the step with the alias untouched.
    qualifying = {
        month: dg.AssetCheckResult(
            check_name="promotion_is_safe",
            asset_key=CHAMPION,
            passed=bool(_pick(model_leaderboard, month)["beats_baseline"].any()),
            metadata={"reason": "no model beats the baseline", "models": len(_pick(model_leaderboard, month))},
        )
        for month in months
    }
    yield from gate("champion_model", {month: [check] for month, check in qualifying.items()})
    outputs, checks = {}, {}
    for month in months:
        month_models = {name: _pick(m, month) for name, m in models.items()}
        check, output, metadata = champion_of_month(
            context, mlflow, month, _pick(model_leaderboard, month), _pick(training_set, month), month_models
        )
        checks[month] = [check]
        outputs[month] = output
        context.add_asset_metadata(metadata, partition_key=month)
    yield dg.Output(outputs)
    yield from combine(checks).values()


@dg.asset(
    **monthly_asset("serving", ML_TEAM, {"parquet"}),
    description=(
        "Batch inference: every cleaned ride of month M scored by champion_model[M], stored beside "
        "the ride's key fields, with rows, mean prediction and RMSE against the actual durations."
    ),
)
def trip_duration_predictions(context: dg.AssetExecutionContext, champion_model, cleaned_trips):
    from taxi_assets.defs.metadata import table_metadata

    outputs = {}
    for month in months_of(context):
        champion, rides = _pick(champion_model, month), _pick(cleaned_trips, month)
        started = time.perf_counter()
        predicted = champion.predict(rides[REQUEST_FIELDS])
        frame = pd.DataFrame(
            {
                "pickup_datetime": rides["pickup_datetime"].to_numpy(),
                "PULocationID": rides["PULocationID"].to_numpy(),
                "DOLocationID": rides["DOLocationID"].to_numpy(),
                "trip_distance": rides["trip_distance"].to_numpy(),
                "duration": rides["duration"].to_numpy(),
                "predicted_duration": predicted,
            }
        )
        metrics = regression_metrics(frame["duration"].to_numpy(), predicted)
        context.log.info(
            f"trip_duration_predictions[{month}]: scored {len(frame):,} rides with {champion.name} in "
            f"{time.perf_counter() - started:.2f}s"
        )
        context.add_asset_metadata(
            {
                **table_metadata(frame),
                "model": champion.name,
                "model_uri": champion.model_uri,
                "mean_prediction": round(float(np.mean(predicted)), 4),
                "mean_actual": round(float(frame["duration"].mean()), 4),
                **{k: round(float(v), 6) for k, v in metrics.items()},
            },
            partition_key=month,
        )
        outputs[month] = frame
    return dg.Output(outputs)
