"""``model_leaderboard[M]``: every model of month M side by side on the validation month."""

import dagster as dg

from taxi_assets.defs.metadata import frame_table, png_metadata
from taxi_assets.defs.models.assets import MODEL_NAMES
from taxi_assets.defs.partitions import ML_TEAM, monthly_asset, months_of
from taxi_assets.ml.leaderboard import leaderboard_frame, top_features_frame, validation_predictions


@dg.asset(
    name="model_leaderboard",
    **monthly_asset("monitoring", ML_TEAM, {"pandas"}),
    ins={"training_set": dg.AssetIn(), **{name: dg.AssetIn(key=name) for name in MODEL_NAMES}},
    description=(
        "Every model of month M side by side on the validation month, best first: rmse, mse, mae, "
        "r2, baseline, train seconds, trials, hyperparameters and MLflow ids; a chart of RMSE by "
        "model, each model's top features (SHAP contributions for XGBoost, coefficients for "
        "linear models, impurity importances for tree ensembles) and the residuals of the best."
    ),
)
def model_leaderboard(context: dg.AssetExecutionContext, training_set, **models):
    from taxi_assets.ml import charts

    months = months_of(context)
    boards = {}
    for month in months:
        ts = training_set[month] if isinstance(training_set, dict) else training_set
        month_models = {name: (m[month] if isinstance(m, dict) else m) for name, m in models.items()}
        # Each model scores the validation month once: the table and the residuals share it.
        predictions = {name: validation_predictions(m, ts) for name, m in month_models.items()}
        board = leaderboard_frame(month_models, predictions, ts)
        best = board.iloc[0]
        rmse_png = charts.bar_png(list(board["model"]), list(board["rmse"]), f"Validation RMSE, {month}", "minutes")
        residuals_png = charts.scatter_png(ts.y_val, predictions[best["model"]], f"{best['model']}: predicted vs actual, {month}")
        context.log.info(f"model_leaderboard[{month}]: best {best['model']} rmse={best['rmse']:.4f}")
        context.add_asset_metadata(
            {
                "best_model": str(best["model"]),
                "best_rmse": round(float(best["rmse"]), 6),
                "models": len(board),
                "models_beating_baseline": int(board["beats_baseline"].sum()),
                "leaderboard": frame_table(board.drop(columns=["best_params", "mlflow_run_id", "model_uri"])),
                "hyperparameters": frame_table(board[["model", "best_params", "mlflow_run_id"]]),
                "top_features": frame_table(top_features_frame(month_models, ts)),
                "rmse_by_model": png_metadata(rmse_png, f"RMSE by model {month}"),
                "best_model_residuals": png_metadata(residuals_png, f"residuals {month}"),
                "dagster/row_count": len(board),
            },
            partition_key=month,
        )
        boards[month] = board
    return dg.Output(boards)
