"""Data drift between the training month and a newer month.

Two cheap, well-understood signals:

* Population Stability Index (PSI) for numeric columns. Rule of thumb used in credit
  scoring and MLOps alike: < 0.1 no meaningful shift, 0.1-0.25 moderate, > 0.25 large.
* Unseen-category share for the ``PU_DO`` route: the fraction of current rows whose
  route never occurred in training. The DictVectorizer silently drops unseen
  categories, so for those rows the model only sees ``trip_distance``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Proportion substituted for an empty bin so ln(a/e) stays finite.
PSI_EPSILON = 1e-4


def _clean(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    array = array[np.isfinite(array)]
    if array.size == 0:
        raise ValueError(f"population_stability_index: {name} sample has no finite values")
    return array


def population_stability_index(expected: Any, actual: Any, bins: int = 10) -> float:
    """PSI of ``actual`` against the reference sample ``expected``.

    Formula::

        PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

    where ``e_i`` and ``a_i`` are the fractions of ``expected`` and ``actual`` falling
    in bin ``i``. Bins are quantile bins of ``expected``: the interior edges are its
    ``1/bins, 2/bins, ..., (bins-1)/bins`` quantiles (duplicates collapsed, which
    happens with heavily tied data), bins are right-closed ``(lo, hi]``, and the outer
    bins are open-ended so ``actual`` values outside the training range still count.
    A fraction of 0 is replaced by ``PSI_EPSILON`` (1e-4). NaN/inf are ignored.

    PSI is 0 for identical distributions and grows with the shift; it is not symmetric
    in its arguments because the bins come from ``expected``.
    """
    if bins < 1:
        raise ValueError(f"population_stability_index: bins must be >= 1, got {bins}")
    reference = _clean(expected, "expected")
    current = _clean(actual, "actual")
    interior = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    n_bins = interior.size + 1
    # digitize(right=True): index i means interior[i-1] < x <= interior[i].
    e_counts = np.bincount(np.digitize(reference, interior, right=True), minlength=n_bins)
    a_counts = np.bincount(np.digitize(current, interior, right=True), minlength=n_bins)
    e_frac = np.maximum(e_counts / reference.size, PSI_EPSILON)
    a_frac = np.maximum(a_counts / current.size, PSI_EPSILON)
    return float(np.sum((a_frac - e_frac) * np.log(a_frac / e_frac)))


def unseen_category_share(train_values: Any, current_values: Any) -> float:
    """Fraction of current *rows* (not distinct values) whose category is absent in training.

    Row-weighted because that is what the model experiences: one popular new route
    matters more than ten routes seen once. Nulls count as a category of their own.
    """
    current = pd.Series(np.asarray(current_values, dtype=object).ravel())
    if current.empty:
        raise ValueError("unseen_category_share: the current sample is empty")
    seen = pd.unique(pd.Series(np.asarray(train_values, dtype=object).ravel()))
    return float((~current.isin(seen)).mean())


def _require(frame: pd.DataFrame, which: str, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(
            f"drift_report: {which} frame is missing column(s) {missing}; "
            f"it has {list(frame.columns)}"
        )


def drift_report(train: pd.DataFrame, current: pd.DataFrame, bins: int = 10) -> dict:
    """Drift summary of a cleaned ``current`` month against the cleaned ``train`` month.

    Keys: ``psi_trip_distance``, ``psi_duration``, ``unseen_pu_do_share`` (floats),
    ``train_rows``, ``current_rows`` (ints) and ``row_count_change_pct``
    (``100 * (current_rows - train_rows) / train_rows``). All values are plain Python
    numbers, ready for asset metadata.
    """
    needed = ["trip_distance", "duration", "PU_DO"]
    _require(train, "train", needed)
    _require(current, "current", needed)
    if len(train) == 0:
        raise ValueError("drift_report: the train frame has no rows")
    if len(current) == 0:
        raise ValueError("drift_report: the current frame has no rows")
    train_rows, current_rows = int(len(train)), int(len(current))
    return {
        "psi_trip_distance": population_stability_index(
            train["trip_distance"], current["trip_distance"], bins=bins
        ),
        "psi_duration": population_stability_index(
            train["duration"], current["duration"], bins=bins
        ),
        "unseen_pu_do_share": unseen_category_share(train["PU_DO"], current["PU_DO"]),
        "train_rows": train_rows,
        "current_rows": current_rows,
        "row_count_change_pct": 100.0 * (current_rows - train_rows) / train_rows,
    }
