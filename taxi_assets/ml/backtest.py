"""The backtest: every month's champion beside its honest error on the month that followed.

For month M: the champion after M's decision, the months it trained on, the RMSE it was chosen
on (M's validation rides), and, from ``data_drift[M+1]``, its RMSE on M+1 (rides it never saw:
the figure to quote) with the mean baseline on the same rides. A drift report scored against
an earlier decision for M (a different registry version) is not used: its figures belong to a
champion that no longer holds the month. Plain pandas.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from taxi_assets import months

# Each column and what it means (the UI shows these beside the column schema).
BACKTEST_COLUMN_DESCRIPTIONS = {
    "month": "the month decided (champion_model[month])",
    "champion": "the estimator holding the month after its decision",
    "won_month": "the month whose decision first promoted that model",
    "trained_months": "the months the champion was trained on (all before month)",
    "decision": "promoted (the month's challenger won) or kept (the previous champion held)",
    "selection_rmse": "RMSE the champion was chosen on: the month's validation rides (minutes)",
    "next_month": "the month after: rides the champion never saw",
    "next_month_rmse": "the champion's RMSE on next_month, from data_drift[next_month]: the figure to quote",
    "next_month_baseline_rmse": "RMSE of predicting the training mean on the same rides",
    "registry_version": "the registered model version (taxi-trip-duration-<taxi>)",
}
BACKTEST_COLUMNS = list(BACKTEST_COLUMN_DESCRIPTIONS)


def backtest_frame(champions: Mapping[str, object], drift: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per month with a champion (``champions``: month -> Champion), oldest first;
    ``drift``: month -> data_drift report. Figures that do not exist are NaN, never sentinels."""
    rows = []
    for month in sorted(champions):
        champion = champions[month]
        following = months.add(month, 1)
        report = drift.get(following) or {}
        version = getattr(champion, "registry_version", None)
        same = report.get("previous_champion_month") == month and report.get("previous_champion_version") == version
        rows.append(
            {
                "month": month,
                "champion": champion.name,
                "won_month": champion.won_month,
                "trained_months": ", ".join(champion.trained_months),
                "decision": "promoted" if champion.promoted else "kept",
                "selection_rmse": float(champion.rmse),
                "next_month": following,
                "next_month_rmse": float(report["previous_champion_rmse"]) if same else np.nan,
                "next_month_baseline_rmse": float(report["previous_champion_baseline_rmse"]) if same else np.nan,
                "registry_version": version,
            }
        )
    return pd.DataFrame(rows, columns=BACKTEST_COLUMNS)


def summary(frame: pd.DataFrame) -> dict[str, float | int]:
    """Months, months with an honest figure, and its mean beside the baseline's (when any)."""
    scored = frame.dropna(subset=["next_month_rmse"])
    out: dict[str, float | int] = {"months": len(frame), "months_scored_on_the_next_month": len(scored)}
    if len(scored):
        out["mean_next_month_rmse"] = round(float(scored["next_month_rmse"].mean()), 6)
        out["mean_next_month_baseline_rmse"] = round(float(scored["next_month_baseline_rmse"].mean()), 6)
    return out
