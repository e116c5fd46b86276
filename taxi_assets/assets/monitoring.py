"""Monitoring: data drift of each month against the training months, and real performance of
the previous month's champion on the new month (actual durations are known, so this is the
model's true error, not a proxy)."""

import dagster as dg
import numpy as np
import pandas as pd

from taxi_assets.assets.preparation import window_frames
from taxi_assets.ml.dataset import pool_months
from taxi_assets.ml.drift import drift_report
from taxi_assets.ml.metrics import regression_metrics
from taxi_assets.partitions import ONE_MONTH_PER_RUN, monthly_partitions, previous_months, training_window_mapping
from taxi_assets.resources.io_manager import NotMaterializedError, TaxiIOManager
from taxi_assets.settings import SETTINGS

DATA_DRIFT = dg.AssetKey("data_drift")
CHAMPION = dg.AssetKey("champion_model")

data_drift_check_specs = [
    dg.AssetCheckSpec(
        "distribution_stable",
        asset=DATA_DRIFT,
        description=f"PSI of trip_distance and duration stays below {SETTINGS.drift_psi_warn} (TAXI_DRIFT_PSI_WARN).",
    ),
    dg.AssetCheckSpec(
        "pu_do_pairs_known",
        asset=DATA_DRIFT,
        description=(
            f"At most {SETTINGS.drift_unseen_pu_do_warn:.0%} of rides have a pickup/dropoff pair unseen in "
            "training (TAXI_DRIFT_UNSEEN_PU_DO_WARN)."
        ),
    ),
]


def drift_checks(report: dict, psi_warn: float, unseen_warn: float) -> list[dg.AssetCheckResult]:
    """Thresholds turned into WARN results (drift is a reason to look, not to stop)."""
    psi = {k: report[k] for k in ("psi_trip_distance", "psi_duration")}
    return [
        dg.AssetCheckResult(
            check_name="distribution_stable",
            asset_key=DATA_DRIFT,
            passed=max(psi.values()) <= psi_warn,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={**{k: round(v, 6) for k, v in psi.items()}, "threshold": psi_warn},
        ),
        dg.AssetCheckResult(
            check_name="pu_do_pairs_known",
            asset_key=DATA_DRIFT,
            passed=report["unseen_pu_do_share"] <= unseen_warn,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"unseen_pu_do_share": round(report["unseen_pu_do_share"], 6), "threshold": unseen_warn},
        ),
    ]


def previous_champion_performance(io_manager: TaxiIOManager, month: str, current: pd.DataFrame) -> dict:
    """RMSE of the champion chosen for the month before ``month`` on ``month``'s rides."""
    (previous,) = previous_months(month, 1)
    try:
        champion = io_manager.load(CHAMPION, previous)
    except NotMaterializedError:
        return {"previous_champion": f"none for {previous}"}
    records = current[["PULocationID", "DOLocationID", "trip_distance"]]
    predicted = champion.predict(records)
    metrics = regression_metrics(current["duration"].to_numpy(), predicted)
    return {
        "previous_champion": f"{champion.name} (champion_model[{previous}])",
        **{f"previous_champion_{k}": round(float(v), 6) for k, v in metrics.items()},
        "previous_champion_mean_prediction": round(float(np.mean(predicted)), 4),
    }


@dg.asset(
    partitions_def=monthly_partitions,
    backfill_policy=ONE_MONTH_PER_RUN,
    group_name="monitoring",
    ins={
        "cleaned_trips": dg.AssetIn(partition_mapping=training_window_mapping())
    },
    check_specs=data_drift_check_specs,
    description=(
        "How month M differs from the months the model validated on M trained on: population "
        "stability index of trip_distance and duration, share of rides whose PU_DO pair was never "
        "seen in training, row-count change; and the previous month's champion scored on M "
        "(real performance monitoring). Threshold breaches are WARN checks."
    ),
)
def data_drift(
    context: dg.AssetExecutionContext, cleaned_trips, io_manager: dg.ResourceParam[TaxiIOManager]
) -> dg.Output[dict]:
    month = context.partition_key
    frames = window_frames(cleaned_trips, month, "data_drift")
    current = frames.pop(month)
    train_months = list(frames)
    train = pool_months(list(frames.values()))
    report = drift_report(train, current)
    mean_train_rows = len(train) / len(train_months)
    report["row_count_change_pct"] = 100.0 * (len(current) - mean_train_rows) / mean_train_rows
    report.update(previous_champion_performance(io_manager, month, current))
    report["compared_with"] = ", ".join(train_months)
    context.log.info(f"data_drift[{month}] vs {report['compared_with']}: {report}")
    metadata = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in report.items()}
    yield dg.Output(report, metadata=metadata)
    yield from drift_checks(report, SETTINGS.drift_psi_warn, SETTINGS.drift_unseen_pu_do_warn)


# --- model comparison -----------------------------------------------------------------------

LEADERBOARD_COLUMNS = [
    "model", "rmse", "mse", "mae", "r2", "baseline_rmse", "beats_baseline", "train_seconds", "trials",
    "best_params", "mlflow_run_id", "model_uri",
]
# Rows of the validation matrix explained by SHAP (pred_contribs is dense: rows x features).
EXPLAIN_ROWS = 2000


def _latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
    ).records
    if not records:
        return {}
    return {k: getattr(v, "value", getattr(v, "text", v)) for k, v in records[0].asset_materialization.metadata.items()}


def leaderboard_frame(predictions: dict[str, np.ndarray], ts, recorded: dict[str, dict]) -> pd.DataFrame:
    """Every model's validation metrics side by side, best RMSE first.

    ``predictions`` are each stored predictor's minutes on the stored validation matrix, so the
    table is the truth even if metadata was lost; tuning facts (seconds, trials, parameters,
    MLflow ids) come from each model's latest materialization.
    """
    from taxi_assets.ml.metrics import baseline_rmse

    baseline = baseline_rmse(ts.y_train, ts.y_val)
    rows = []
    for name, predicted in predictions.items():
        metrics = regression_metrics(ts.y_val, predicted)
        meta = recorded.get(name, {})
        rows.append(
            {
                "model": name,
                **{k: float(metrics[k]) for k in ("rmse", "mse", "mae", "r2")},
                "baseline_rmse": float(baseline),
                "beats_baseline": bool(metrics["rmse"] < baseline),
                "train_seconds": float(meta.get("train_seconds", np.nan)),
                "trials": int(meta.get("trials", 0) or 0),
                "best_params": str(meta.get("best_params", "")),
                "mlflow_run_id": str(meta.get("mlflow_run_id", "")),
                "model_uri": str(meta.get("model_uri", "")),
            }
        )
    return pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS).sort_values("rmse", kind="stable").reset_index(drop=True)


def explanations_markdown(models: dict, ts) -> str:
    """Top features of every model: SHAP for XGBoost, coefficients for linear, importances for trees."""
    from taxi_assets.ml.explain import top_features

    sample = ts.X_val[:EXPLAIN_ROWS]
    parts = []
    for name, predictor in models.items():
        top = top_features(predictor, ts.feature_names, X=sample, top_n=5)
        method = top["method"].iloc[0] if len(top) else "n/a"
        parts.append(f"**{name}** ({method})\n\n" + top[["feature", "importance", "value"]].to_markdown(index=False, floatfmt=".4f"))
    return "\n\n".join(parts)


def model_leaderboard_factory(model_names: list[str]) -> dg.AssetsDefinition:
    @dg.asset(
        name="model_leaderboard",
        partitions_def=monthly_partitions,
        backfill_policy=ONE_MONTH_PER_RUN,
        group_name="monitoring",
        kinds={"pandas"},
        ins={"training_set": dg.AssetIn(), **{name: dg.AssetIn(key=name) for name in model_names}},
        description=(
            "Every model of month M side by side on the validation month, best first: rmse, mse, mae, "
            "r2, baseline, train seconds, trials, hyperparameters and MLflow ids; a chart of RMSE by "
            "model, each model's top features (SHAP contributions for XGBoost, coefficients for "
            "linear models, impurity importances for tree ensembles) and the residuals of the best."
        ),
    )
    def model_leaderboard(context: dg.AssetExecutionContext, training_set, **models) -> dg.Output[pd.DataFrame]:
        from taxi_assets.ml import charts

        month = context.partition_key
        recorded = {name: _latest_metadata(context.instance, dg.AssetKey(name), month) for name in models}
        # Each model scores the validation month once: the table and the residuals share it.
        predictions = {name: p.predict_features(training_set.X_val) for name, p in models.items()}
        board = leaderboard_frame(predictions, training_set, recorded)
        best = board.iloc[0]
        best_predictions = predictions[best["model"]]
        rmse_png = charts.bar_png(list(board["model"]), list(board["rmse"]), f"Validation RMSE, {month}", "minutes")
        residuals_png = charts.scatter_png(
            training_set.y_val, best_predictions, f"{best['model']}: predicted vs actual, {month}"
        )
        context.log.info(f"model_leaderboard[{month}]: best {best['model']} rmse={best['rmse']:.4f}")
        shown = board.drop(columns=["best_params", "mlflow_run_id", "model_uri"])
        return dg.Output(
            board,
            metadata={
                "best_model": str(best["model"]),
                "best_rmse": round(float(best["rmse"]), 6),
                "models": len(board),
                "models_beating_baseline": int(board["beats_baseline"].sum()),
                "leaderboard": dg.MetadataValue.md(shown.to_markdown(index=False, floatfmt=".4f")),
                "hyperparameters": dg.MetadataValue.md(board[["model", "best_params"]].to_markdown(index=False)),
                "rmse_by_model": dg.MetadataValue.md(charts.png_markdown(rmse_png, f"RMSE by model {month}")),
                "best_model_residuals": dg.MetadataValue.md(charts.png_markdown(residuals_png, f"residuals {month}")),
                "explanations": dg.MetadataValue.md(explanations_markdown(models, training_set)),
            },
        )

    return model_leaderboard
