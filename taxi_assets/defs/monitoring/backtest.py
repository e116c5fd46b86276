"""``backtest``: one table of every month's champion and its honest error on the next month.

Unpartitioned: it reads every month of ``champion_model`` and ``data_drift`` (absent months are
skipped) and updates when either changes (its automation condition waits until no upstream
month is in progress). The table and a picture of the honest RMSE over months are metadata.
Its check ``served_model_loads`` loads the registry version the alias ``champion`` points to:
a damaged artifact there is named (and alerted) even though batch predictions keep working
from their own copy of the model.
"""

import dagster as dg

from taxi_assets.defs.metadata import frame_table, png_metadata, table_metadata
from taxi_assets.defs.partitions import ML_TEAM
from taxi_assets.defs.resources.io_manager import UnreadableInput
from taxi_assets.defs.resources.tracking import MlflowTracking
from taxi_assets.ml import charts
from taxi_assets.ml.backtest import BACKTEST_COLUMN_DESCRIPTIONS, backtest_frame, summary
from taxi_assets.ml.champion import Champion
from taxi_assets.registry.champion import current_champion
from taxi_assets.registry.names import champion_model_name, champion_uri
from taxi_assets.settings import SETTINGS

BACKTEST = dg.AssetKey("backtest")


def _by_month(value, kind) -> dict:
    if not isinstance(value, dict):
        return {}
    return {month: v for month, v in value.items() if isinstance(v, kind) and not isinstance(v, UnreadableInput)}


@dg.asset(
    group_name="monitoring",
    tags={"layer": "monitoring"},
    owners=[ML_TEAM],
    kinds={"pandas"},
    ins={
        "champion_model": dg.AssetIn(metadata={"optional": True}),
        "data_drift": dg.AssetIn(metadata={"optional": True}),
    },
    check_specs=[
        dg.AssetCheckSpec(
            "served_model_loads",
            asset=BACKTEST,
            description="The registry version the alias 'champion' points to loads (what serving and the CLI load).",
        )
    ],
    description=(
        "Every month with a champion: the champion, the months it trained on, the RMSE it was chosen on "
        "(its month's validation rides), its RMSE on the following month (data_drift: rides it never saw) "
        "and the mean baseline there, and the decision; with a chart of the honest RMSE over months."
    ),
)
def backtest(context: dg.AssetExecutionContext, mlflow: MlflowTracking, champion_model, data_drift):
    frame = backtest_frame(_by_month(champion_model, Champion), _by_month(data_drift, dict))
    chart = charts.lines_png(
        list(frame["month"]),
        {
            "next month (honest)": list(frame["next_month_rmse"]),
            "mean baseline, next month": list(frame["next_month_baseline_rmse"]),
            "chosen on (own month)": list(frame["selection_rmse"]),
        },
        "Champion RMSE by month",
        "RMSE (minutes)",
    )
    context.log.info(f"backtest: {len(frame)} month(s) with a champion: {summary(frame)}")
    yield dg.Output(
        frame,
        metadata={
            **table_metadata(frame, BACKTEST_COLUMN_DESCRIPTIONS),
            **summary(frame),
            "backtest": frame_table(frame),
            "honest_rmse_by_month": png_metadata(chart, "champion RMSE by month"),
        },
    )
    loads = served_model_check(mlflow.reachable_store(context, "backtest"), SETTINGS.taxi_type)
    if not loads.passed:
        context.log.error(loads.description)
    yield loads


def served_model_check(store, taxi_type: str) -> dg.AssetCheckResult:
    """Whether the version behind the alias loads; the failure names model, version, artifact
    and what to do (from :class:`taxi_assets.registry.serving.ModelLoadError`)."""
    from taxi_assets.registry.serving import ModelLoadError, load_model

    holder = current_champion(store, taxi_type)
    name = champion_model_name(taxi_type)
    if holder is None:
        return dg.AssetCheckResult(check_name="served_model_loads", passed=True, metadata={"model": name, "version": "none yet"})
    metadata = {"model": name, "version": int(holder.version), "champion_month": (holder.tags or {}).get("champion_month", "")}
    try:
        load_model(champion_uri(taxi_type), store.tracking_uri)
    except ModelLoadError as exc:
        return dg.AssetCheckResult(
            check_name="served_model_loads", passed=False, severity=dg.AssetCheckSeverity.ERROR,
            metadata={**metadata, "artifact": exc.artifact}, description=str(exc),
        )  # fmt: skip
    return dg.AssetCheckResult(check_name="served_model_loads", passed=True, metadata=metadata)
