"""``taxi_assets/ml/champion.py``: the promotion rule at its edge (a challenger worse by exactly
the tolerance still wins), the lineage it records (who won, since when, on which RMSE) and the
refusal of any model trained on the month being decided. Models here are fixed predictions on
four hand-made rides, so every RMSE is known exactly."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from taxi_assets.ml.champion import Champion, check_trained_before, choose_champion, decide
from taxi_assets.ml.trained import TrainedModel

pytestmark = pytest.mark.fast

RIDES = pd.DataFrame(
    {"PULocationID": [1, 2, 3, 4], "DOLocationID": [5, 6, 7, 8], "trip_distance": [1.0, 2.0, 3.0, 4.0],
     "duration": [10.0, 10.0, 10.0, 10.0], "pickup_datetime": pd.Timestamp("2024-02-01")}
)  # fmt: skip


class Offset:
    """A predictor that answers ``duration + error`` for the four rides above (RMSE = |error|),
    and records the columns it was handed."""

    def __init__(self, error: float):
        self.error = error
        self.seen: list[list[str]] = []

    def predict(self, records):
        self.seen.append(list(records.columns))
        return np.full(len(records), 10.0 + self.error)


def model(name: str, error: float, trained: list[str], month: str = "2024-02") -> TrainedModel:
    return TrainedModel(predictor=Offset(error), estimator=name, month=month, model_uri=f"models:/m-{name}", trained_months=trained)


def champion_of(month: str, trained: TrainedModel, won: str) -> Champion:
    return Champion(month=month, model=trained, won_month=won, rmse=1.0, decision="", promoted=True,
                    challenger=trained.name, challenger_rmse=1.0)  # fmt: skip


def test_decide_promotes_within_the_tolerance_and_keeps_beyond_it():
    assert decide(5.0, None, 0.1) == (True, "promoted: no previous champion")
    assert decide(5.1, 5.0, 0.1) == (True, "promoted: challenger 5.1000 <= champion 5.0000 + tolerance 0.1")
    assert decide(5.0, 5.0, 0.0)[0] and decide(4.0, 5.0, 0.0)[0]
    assert decide(5.0625, 5.0, 0.0625)[0]  # worse by exactly the tolerance: still promoted
    assert decide(5.0626, 5.0, 0.0625) == (False, "kept champion: challenger 5.0626 > champion 5.0000 + tolerance 0.0625")


def test_a_first_month_promotes_its_challenger_saying_why():
    challenger = model("xgboost", 2.0, ["2024-01"])
    got = choose_champion("2024-02", challenger, None, RIDES, tolerance=0.5, absent_reason="first month")
    assert got.decision == "promoted xgboost: no previous champion (first month)"
    assert (got.month, got.model, got.won_month, got.promoted, got.challenger) == ("2024-02", challenger, "2024-02", True, "xgboost")
    assert (got.rmse, got.challenger_rmse, got.previous_rmse) == (2.0, 2.0, None)
    assert challenger.predictor.seen == [["PULocationID", "DOLocationID", "trip_distance"]]  # request fields only
    assert choose_champion("2024-02", challenger, None, RIDES, 0.5).decision == "promoted xgboost: no previous champion"


def test_a_better_challenger_replaces_the_champion_and_a_worse_one_does_not():
    previous = champion_of("2024-01", model("lasso", 3.0, ["2023-11", "2023-12"], "2024-01"), won="2023-12")
    better = choose_champion("2024-02", model("xgboost", 2.0, ["2024-01"]), previous, RIDES, tolerance=0.0)
    assert better.decision == (
        "promoted xgboost over lasso (champion since 2023-12): challenger 2.0000 <= champion 3.0000 + tolerance 0.0"
    )
    assert (better.name, better.won_month, better.rmse, better.previous_rmse, better.promoted) == ("xgboost", "2024-02", 2.0, 3.0, True)
    worse = choose_champion("2024-02", model("lightgbm", 3.5, ["2024-01"]), previous, RIDES, tolerance=0.25)
    assert worse.decision == (
        "kept lasso (champion since 2023-12) over lightgbm: challenger 3.5000 > champion 3.0000 + tolerance 0.25"
    )
    assert (worse.name, worse.model, worse.won_month, worse.rmse) == ("lasso", previous.model, "2023-12", 3.0)
    assert (worse.promoted, worse.challenger, worse.challenger_rmse, worse.previous_rmse) == (False, "lightgbm", 3.5, 3.0)
    assert worse.trained_months == ["2023-11", "2023-12"] and worse.model_uri == "models:/m-lasso"
    assert worse.predict(RIDES).tolist() == [13.0] * 4
    tie = choose_champion("2024-02", model("lightgbm", 3.25, ["2024-01"]), previous, RIDES, tolerance=0.25)
    assert tie.promoted and tie.won_month == "2024-02"


def test_no_model_trained_on_the_decided_month_or_later_is_seen():
    ok = model("xgboost", 1.0, ["2023-12", "2024-01"])
    check_trained_before("2024-02", ok, "challenger")
    check_trained_before("2024-02", TrainedModel(predictor=None, estimator="x", month="2024-02"), "challenger")
    check_trained_before("2024-02", SimpleNamespace(name="older model without the attribute"), "previous champion")
    with pytest.raises(ValueError) as caught:
        check_trained_before("2024-02", model("lasso", 1.0, ["2024-01", "2024-02", "2024-03"]), "previous champion")
    assert str(caught.value) == "champion decision for 2024-02: the previous champion lasso was trained on 2024-02, 2024-03"
    with pytest.raises(ValueError) as caught:
        choose_champion("2024-02", model("xgboost", 1.0, ["2024-02"]), None, RIDES, 0.0)
    assert str(caught.value) == "champion decision for 2024-02: the challenger xgboost was trained on 2024-02"
    late = champion_of("2024-01", model("lasso", 1.0, ["2024-02"], "2024-01"), won="2024-01")
    with pytest.raises(ValueError) as caught:
        choose_champion("2024-02", ok, late, RIDES, 0.0)
    assert str(caught.value) == "champion decision for 2024-02: the previous champion lasso was trained on 2024-02"
    for month in ("2024-02", "2024-03"):
        with pytest.raises(ValueError) as caught:
            choose_champion("2024-02", ok, champion_of(month, model("lasso", 1.0, ["2023-12"]), won="2023-12"), RIDES, 0.0)
        assert str(caught.value) == f"champion decision for 2024-02: the previous champion is champion_model[{month}]"
