"""``data_drift[M]``: how month M differs from the months its models trained on, and the real
error of champion_model[M-1] on M (actual durations are known, and that champion was trained
and chosen on rides before M: its honest, out-of-sample figure), beside the mean baseline."""

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
from taxi_assets.defs.resources.io_manager import UnreadableInput
from taxi_assets.ml import charts
from taxi_assets.ml.champion import Champion, check_trained_before
from taxi_assets.ml.dataset import pool_months
from taxi_assets.ml.drift import drift_report
from taxi_assets.ml.features import REQUEST_FIELDS
from taxi_assets.ml.metrics import baseline_rmse, regression_metrics
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


def previous_champion_performance(champion, previous: str, month: str, train: pd.DataFrame, current: pd.DataFrame) -> dict:
    """``champion_model[previous]`` scored on ``month``'s rides: its honest, out-of-sample error
    beside the figure it was chosen on, the mean baseline on the same rides, and where it came
    from. No entry for a figure that does not exist (no sentinels)."""
    if isinstance(champion, UnreadableInput):
        return {"previous_champion": f"champion_model[{previous}] is unreadable: {champion.reason}"}
    if not isinstance(champion, Champion):  # absent (first month, never decided) or an older layout
        return {"previous_champion": f"none for {previous}"}
    check_trained_before(month, champion.model, "previous champion")
    predicted = champion.predict(current[REQUEST_FIELDS])
    actual = current["duration"].to_numpy()
    metrics = regression_metrics(actual, predicted)
    report = {
        "previous_champion": f"{champion.name} (champion_model[{previous}], since {champion.won_month})",
        "previous_champion_month": champion.month,
        "previous_champion_won_month": champion.won_month,
        "previous_champion_trained_months": ", ".join(champion.trained_months),
        **{f"previous_champion_{k}": round(float(v), 6) for k, v in metrics.items()},
        # The RMSE it was chosen on (its month's validation rides) beside its error on the month
        # after: the gap is what a month of ageing and the choice's optimism cost.
        "previous_champion_selection_rmse": round(champion.rmse, 6),
        "previous_champion_rmse_gap": round(float(metrics["rmse"]) - champion.rmse, 6),
        "previous_champion_baseline_rmse": round(baseline_rmse(train["duration"].to_numpy(), actual), 6),
        "previous_champion_mean_prediction": round(float(np.mean(predicted)), 4),
    }
    if champion.registry_version is not None:
        report["previous_champion_version"] = champion.registry_version
    return report


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
        champions = champions or {}
        report.update(previous_champion_performance(champions.get(previous), previous, month, train, current))
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
