"""Serving: the champion line, month by month, kept in the MLflow registry, and batch predictions.

``champion_model[M]`` reads month M's leaderboard, models and validation rides and
``champion_model[M-1]`` (an edge of the graph: the previous-month partition mapping, optional
for the first month) and holds the better of M's challenger and that champion on M's
validation rides (:func:`taxi_assets.ml.champion.choose_champion`). It registers the winner as
M's version of the champion line; the alias ``champion`` that serving loads points to the newest
month's version, so a backfill never moves it back (:mod:`taxi_assets.registry.champion`).
``promotion_is_safe`` is judged before anything is registered (a month without a model that
beats the baseline fails, naming it); the backtest checks that the served version loads.
"""

import time

import dagster as dg
import numpy as np
import pandas as pd

from taxi_assets import months as month_keys
from taxi_assets.defs.models.assets import MODEL_NAMES
from taxi_assets.defs.partitions import ML_TEAM, monthly_asset, months_of, previous_month_mapping
from taxi_assets.defs.resources.io_manager import UnreadableInput
from taxi_assets.defs.resources.tracking import MlflowTracking
from taxi_assets.ml.champion import Champion, choose_champion
from taxi_assets.ml.features import REQUEST_FIELDS
from taxi_assets.ml.metrics import regression_metrics
from taxi_assets.registry.champion import register_champion, serve_newest
from taxi_assets.registry.names import champion_uri
from taxi_assets.settings import SETTINGS

CHAMPION = dg.AssetKey("champion_model")


def _pick(value, month):
    return value[month] if isinstance(value, dict) else value


def previous_champion_of(month: str, stored, decided: dict) -> tuple[Champion | None, str]:
    """``(champion_model[month-1] or None, why it is absent)``: decided earlier in this run, or
    stored (the input, absent or unreadable for a first month or a month never decided)."""
    (previous,) = month_keys.previous_months(month, 1)
    if previous in decided:
        return decided[previous], ""
    value = stored.get(previous) if isinstance(stored, dict) else stored
    if isinstance(value, UnreadableInput):
        return None, f"champion_model[{previous}] is unreadable, decided without it: {value.reason}"
    if not isinstance(value, Champion):  # None, or an object stored by an older version
        return None, f"no champion_model[{previous}]"
    return value, ""


def champion_metadata(champion: Champion, previous: Champion | None, absent_reason: str, rides: int) -> dict:
    """What the UI shows for one month's decision: no sentinels, absent values are absent."""
    metadata = {
        "decision": champion.decision,
        "promoted": champion.promoted,
        "challenger": champion.challenger,
        "challenger_rmse": round(champion.challenger_rmse, 6),
        "previous_champion": (
            f"{previous.name} (champion_model[{previous.month}], since {previous.won_month})" if previous else absent_reason
        ),
        "champion": champion.name,
        "champion_rmse": round(champion.rmse, 6),
        "champion_won_month": champion.won_month,
        "champion_trained_months": ", ".join(champion.trained_months),
        "champion_model_uri": champion.model_uri,
        "tolerance": SETTINGS.champion_tolerance,
        "validation_rows": rides,
    }
    if champion.previous_rmse is not None:
        metadata["previous_champion_rmse"] = round(champion.previous_rmse, 6)
    return metadata


@dg.asset(
    **monthly_asset("serving", ML_TEAM, {"mlflow"}),
    ins={
        "model_leaderboard": dg.AssetIn(),
        "training_set": dg.AssetIn(),
        **{name: dg.AssetIn(key=name) for name in MODEL_NAMES},
        # champion_model[M-1]: the line is a fold over the months (absent for a first month).
        "previous_champion": dg.AssetIn(
            key="champion_model", partition_mapping=previous_month_mapping(), metadata={"optional": True}
        ),
    },
    description=(
        "The champion after month M: the better, on M's validation rides, of M's challenger (its best model "
        "beating the baseline) and champion_model[M-1] (tolerance TAXI_CHAMPION_TOLERANCE). Registered as M's "
        "version of the MLflow champion line; the alias 'champion' serves the newest month's version, so a "
        "backfill never moves it back."
    ),
)
def champion_model(
    context: dg.AssetExecutionContext, mlflow: MlflowTracking, model_leaderboard, training_set, previous_champion, **models
):
    from taxi_assets.defs.checks import refusal

    months = months_of(context)
    # promotion_is_safe, judged for every month before anything is registered: a month without
    # a qualifying model stops the step with the registry untouched. (A gate in the step, not a
    # check spec: Dagster's automation maps a self-dependent asset's check executions onto the
    # previous month and would request champion_model[M-1] with every M.)
    unsafe = {
        month: [
            dg.AssetCheckResult(
                check_name="promotion_is_safe", asset_key=CHAMPION, passed=False,
                metadata={"reason": "no model beats the baseline", "models": len(_pick(model_leaderboard, month))},
            )
        ]
        for month in months
        if not _pick(model_leaderboard, month)["beats_baseline"].any()
    }  # fmt: skip
    if unsafe:
        raise refusal("champion_model", unsafe, months)
    store = mlflow.reachable_store(context, f"champion_model[{', '.join(months)}]")
    decided: dict[str, Champion] = {}
    for month in months:
        board = _pick(model_leaderboard, month)
        best = board[board["beats_baseline"]].iloc[0]
        challenger = _pick(models[str(best["model"])], month)
        rides = _pick(training_set, month).validation_rides()
        previous, absent_reason = previous_champion_of(month, previous_champion, decided)
        champion = choose_champion(month, challenger, previous, rides, SETTINGS.champion_tolerance, absent_reason)
        version = register_champion(store, SETTINGS.taxi_type, champion, context.run_id)
        champion.registry_version = int(version.version)
        decided[month] = champion
        context.log.info(f"champion_model[{month}]: {champion.decision}; registered version {version.version}")
        context.add_asset_metadata(
            {**champion_metadata(champion, previous, absent_reason, len(rides)), "champion_version": champion.registry_version,
             "baseline_rmse": round(float(best["baseline_rmse"]), 6)},
            partition_key=month,
        )  # fmt: skip
    serving = serve_newest(store, SETTINGS.taxi_type)
    context.log.info(f"champion_model[{', '.join(months)}]: {serving.describe(months[-1])}")
    for month in months:
        context.add_asset_metadata(
            {"serving": serving.describe(month), "serving_version": serving.version, "serving_month": serving.month,
             "champion_uri": champion_uri(SETTINGS.taxi_type)},
            partition_key=month,
        )  # fmt: skip
    return dg.Output(decided)


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
