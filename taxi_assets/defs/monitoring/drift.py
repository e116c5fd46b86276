"""``data_drift[M]``: how month M differs from the months its models trained on, and the real
error of the previous month's champion on M (actual durations are known, so this is the
model's true performance on data it never saw: the honest figure)."""

import dagster as dg
import numpy as np
import pandas as pd

from taxi_assets import months as month_keys
from taxi_assets.defs.metadata import png_metadata, save_report
from taxi_assets.defs.partitions import (
    ML_TEAM,
    monthly_asset,
    months_of,
    previous_month_mapping,
    training_window_mapping,
)
from taxi_assets.defs.preparation.assets import window_frames
from taxi_assets.ml import charts
from taxi_assets.ml.dataset import pool_months
from taxi_assets.ml.drift import drift_report
from taxi_assets.ml.features import REQUEST_FIELDS
from taxi_assets.ml.metrics import regression_metrics
from taxi_assets.settings import SETTINGS

DATA_DRIFT = dg.AssetKey("data_drift")

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


def previous_champion_performance(champion, previous: str, current: pd.DataFrame) -> dict:
    """RMSE of ``champion_model[previous]`` on the rides of the month after it."""
    if champion is None:
        return {"previous_champion": f"none for {previous}"}
    predicted = champion.predict(current[REQUEST_FIELDS])
    metrics = regression_metrics(current["duration"].to_numpy(), predicted)
    # The RMSE it was chosen on (its own validation month, which also picked its hyperparameters)
    # beside the RMSE on the month after: the gap is the selection's optimism.
    selected_on = float(champion.metrics.get("rmse", float("nan")))
    return {
        "previous_champion": f"{champion.name} (champion_model[{previous}])",
        **{f"previous_champion_{k}": round(float(v), 6) for k, v in metrics.items()},
        "previous_champion_selection_rmse": round(selected_on, 6),
        "previous_champion_rmse_gap": round(float(metrics["rmse"]) - selected_on, 6),
        "previous_champion_mean_prediction": round(float(np.mean(predicted)), 4),
    }


@dg.asset(
    **monthly_asset("monitoring", ML_TEAM, {"pandas"}),
    ins={
        "cleaned_trips": dg.AssetIn(partition_mapping=training_window_mapping()),
        # An explicit edge to the previous month's champion; absent (first month, or its
        # champion not trained) it is None, and automation does not wait for it.
        "previous_champion": dg.AssetIn(
            key="champion_model", partition_mapping=previous_month_mapping(), metadata={"optional": True}
        ),
    },
    check_specs=data_drift_check_specs,
    description=(
        "How month M differs from the months the models validated on M trained on: population "
        "stability index of trip_distance and duration (with a picture of both distributions), "
        "share of rides whose PU_DO pair was never seen in training, row-count change; and the "
        "previous month's champion scored on M (its real error on unseen data). Threshold "
        "breaches are WARN checks."
    ),
)
def data_drift(context: dg.AssetExecutionContext, cleaned_trips, previous_champion):
    from taxi_assets.defs.checks import combine

    reports, checks = {}, {}
    for month in months_of(context):
        window = month_keys.previous_months(month, SETTINGS.train_months) + [month]
        by_month = cleaned_trips if isinstance(cleaned_trips, dict) else {month: cleaned_trips}
        frames = window_frames({m: by_month[m] for m in window if m in by_month}, month, "data_drift")
        current = frames.pop(month)
        train = pool_months(list(frames.values()))
        report = drift_report(train, current)
        mean_train_rows = len(train) / len(frames)
        report["row_count_change_pct"] = 100.0 * (len(current) - mean_train_rows) / mean_train_rows
        (previous,) = month_keys.previous_months(month, 1)
        champions = previous_champion if isinstance(previous_champion, dict) else {previous: previous_champion}
        report.update(previous_champion_performance(champions.get(previous), previous, current))
        report["compared_with"] = ", ".join(frames)
        context.log.info(f"data_drift[{month}] vs {report['compared_with']}: {report}")
        pictures = {
            f"{column}_distribution": charts.distributions_png(
                train[column], current[column], f"{column}: {month} vs {report['compared_with']}", unit
            )
            for column, unit in (("trip_distance", "miles"), ("duration", "minutes"))
        }
        for name, png in pictures.items():
            save_report("data_drift", month, name, png)
        context.add_asset_metadata(
            {
                **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in report.items()},
                **{name: png_metadata(png, f"data_drift {month} {name}") for name, png in pictures.items()},
            },
            partition_key=month,
        )
        reports[month] = report
        checks[month] = drift_checks(report, SETTINGS.drift_psi_warn, SETTINGS.drift_unseen_pu_do_warn)
    yield dg.Output(reports)
    yield from combine(checks).values()
