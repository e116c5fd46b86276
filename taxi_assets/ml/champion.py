"""The champion line: which model serves after month M, decided from M's data and champion[M-1].

champion[M] is the better, on month M's validation rides, of M's challenger (the leaderboard's
best model among those beating the baseline, trained on the months before M) and champion[M-1]
(trained before M-1, or carried over from earlier); the challenger also wins when it is worse by
at most ``tolerance`` minutes. Both were trained on rides before M, so the comparison is out of
sample for both, and the line is a fold over the months' data: whatever order months are run in,
re-deciding a month after its predecessor changed gives the same champion. Plain Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from taxi_assets.ml.features import REQUEST_FIELDS, TARGET
from taxi_assets.ml.metrics import regression_metrics
from taxi_assets.ml.trained import TrainedModel


@dataclass
class Champion:
    """``champion_model[month]``: the model that serves after ``month``'s decision."""

    month: str  # the decision month M
    model: TrainedModel  # the winner
    won_month: str  # the month whose decision first made this model champion
    rmse: float  # the winner's RMSE on M's validation rides
    decision: str
    promoted: bool  # M's challenger won; False: champion[M-1] carried over
    challenger: str
    challenger_rmse: float
    previous_rmse: float | None = None  # champion[M-1] on M's validation rides (None: there was none)
    registry_version: int | None = None  # its version on the registry's champion line

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def trained_months(self) -> list[str]:
        return list(getattr(self.model, "trained_months", []) or [])

    @property
    def model_uri(self) -> str:
        return self.model.model_uri

    def predict(self, records) -> np.ndarray:
        return self.model.predict(records)


def decide(challenger_rmse: float, previous_rmse: float | None, tolerance: float) -> tuple[bool, str]:
    """The promotion rule: the challenger replaces the champion unless it is worse on the same
    validation rides by more than ``tolerance`` minutes."""
    if previous_rmse is None:
        return True, "promoted: no previous champion"
    if challenger_rmse <= previous_rmse + tolerance:
        return True, f"promoted: challenger {challenger_rmse:.4f} <= champion {previous_rmse:.4f} + tolerance {tolerance}"
    return False, f"kept champion: challenger {challenger_rmse:.4f} > champion {previous_rmse:.4f} + tolerance {tolerance}"


def check_trained_before(month: str, model: Any, role: str) -> None:
    """Refuse a decision for ``month`` that would see a model trained on ``month``'s own rides
    (or later ones): every model a month's decision sees was trained on rides before it."""
    late = [m for m in getattr(model, "trained_months", []) or [] if m >= month]
    if late:
        raise ValueError(f"champion decision for {month}: the {role} {model.name} was trained on {', '.join(late)}")


def choose_champion(
    month: str,
    challenger: TrainedModel,
    previous: Champion | None,
    rides: pd.DataFrame,
    tolerance: float,
    absent_reason: str = "",
) -> Champion:
    """Decide ``champion[month]`` from ``month``'s validation ``rides`` (request fields and
    ``duration``), its ``challenger`` and ``previous`` (champion[month-1], or None with
    ``absent_reason`` saying why)."""
    check_trained_before(month, challenger, "challenger")
    if previous is not None:
        if previous.month >= month:
            raise ValueError(f"champion decision for {month}: the previous champion is champion_model[{previous.month}]")
        check_trained_before(month, previous.model, "previous champion")
    records, actual = rides[REQUEST_FIELDS], rides[TARGET].to_numpy()
    challenger_rmse = float(regression_metrics(actual, challenger.predict(records))["rmse"])
    previous_rmse = None
    if previous is not None:
        previous_rmse = float(regression_metrics(actual, previous.predict(records))["rmse"])
    promoted, decision = decide(challenger_rmse, previous_rmse, tolerance)
    if previous is None:
        decision += f" ({absent_reason})" if absent_reason else ""
        decision = decision.replace("promoted:", f"promoted {challenger.name}:", 1)
    elif promoted:
        decision = decision.replace("promoted:", f"promoted {challenger.name} over {previous.name} (champion since {previous.won_month}):", 1)
    else:
        decision = decision.replace("kept champion:", f"kept {previous.name} (champion since {previous.won_month}) over {challenger.name}:", 1)
    return Champion(
        month=month,
        model=challenger if promoted else previous.model,
        won_month=month if promoted else previous.won_month,
        rmse=challenger_rmse if promoted else previous_rmse,
        decision=decision,
        promoted=promoted,
        challenger=challenger.name,
        challenger_rmse=challenger_rmse,
        previous_rmse=previous_rmse,
    )
