"""Checks Dagster already provides, on the metadata the serving assets record: a month's batch
predictions must average a plausible trip (1 to 60 minutes, the cleaning bounds), and the
month's best model must explain something (validation RMSE above 0 and below the 15 minutes a
constant guess already comes close to). WARN severity: a reason to look, not to stop."""

import dagster as dg

prediction_bounds = dg.build_metadata_bounds_checks(
    assets=["trip_duration_predictions"], metadata_key="mean_prediction", min_value=1.0, max_value=60.0
)
leaderboard_bounds = dg.build_metadata_bounds_checks(
    assets=["model_leaderboard"], metadata_key="best_rmse", min_value=0.0, max_value=15.0, exclusive_min=True
)
