"""Monitoring: data drift of each month against the training months, and real performance of
the previous month's champion on the new month (actual durations are known, so this is the
model's true error, not a proxy)."""

import dagster as dg
import numpy as np
import pandas as pd

from taxi_assets.ml.drift import drift_report
from taxi_assets.ml.metrics import regression_metrics
from taxi_assets.partitions import monthly_partitions, previous_months
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
    group_name="monitoring",
    ins={
        "cleaned_trips": dg.AssetIn(
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-SETTINGS.train_months, end_offset=0, allow_nonexistent_upstream_partitions=True
            )
        )
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
    frames = cleaned_trips if isinstance(cleaned_trips, dict) else {month: cleaned_trips}
    train_months = [m for m in previous_months(month, SETTINGS.train_months) if m in frames]
    if not train_months:
        raise dg.Failure(
            description=f"data_drift[{month}] needs cleaned_trips of the month(s) before {month} to compare with",
            allow_retries=False,
        )
    current = frames[month]
    train = pd.concat([frames[m] for m in train_months], ignore_index=True)
    report = drift_report(train, current)
    mean_train_rows = len(train) / len(train_months)
    report["row_count_change_pct"] = 100.0 * (len(current) - mean_train_rows) / mean_train_rows
    report.update(previous_champion_performance(io_manager, month, current))
    report["compared_with"] = ", ".join(train_months)
    context.log.info(f"data_drift[{month}] vs {report['compared_with']}: {report}")
    metadata = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in report.items()}
    yield dg.Output(report, metadata=metadata)
    yield from drift_checks(report, SETTINGS.drift_psi_warn, SETTINGS.drift_unseen_pu_do_warn)
