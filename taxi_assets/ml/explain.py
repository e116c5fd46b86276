"""Global feature importance for the models the pipeline trains.

One function, three model families, one output shape, so the model asset can show
"what drives this model" regardless of whether a linear model, a forest or an
xgboost Booster won:

* ``xgboost.Booster`` -> ``"shap"``: mean |SHAP contribution| per feature over ``X``
  (xgboost computes exact TreeSHAP via ``pred_contribs=True``; categorical columns are
  declared as the booster was trained, so ``PU_DO`` gets one contribution, not one per pair).
* ``lightgbm.Booster`` -> ``"shap"``: the same from ``predict(pred_contrib=True)``.
* estimators with ``coef_`` -> ``"coefficient"``: |coefficient|. Only comparable across
  features on a similar scale; one-hot route flags and miles are not, so read it as
  "effect of one unit", not as a ranking of contribution.
* estimators with ``feature_importances_`` -> ``"impurity"``: the estimator's own
  impurity-decrease importances.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

RESULT_COLUMNS = ["feature", "importance", "value", "method"]


def _is_booster(model: Any) -> bool:
    cls = type(model)
    return cls.__name__ == "Booster" and cls.__module__.split(".")[0] == "xgboost"


def _is_lightgbm(model: Any) -> bool:
    cls = type(model)
    return cls.__name__ == "Booster" and cls.__module__.split(".")[0] == "lightgbm"


def _is_supported(model: Any) -> bool:
    return _is_booster(model) or _is_lightgbm(model) or hasattr(model, "coef_") or hasattr(model, "feature_importances_")


def _unwrap(model: Any) -> Any:
    """Accept a bare estimator or a small predictor object holding it in ``.estimator``."""
    seen = 0
    while not _is_supported(model) and hasattr(model, "estimator") and seen < 5:
        model = model.estimator
        seen += 1
    return model


def _shap(booster: Any, X: Any, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    import xgboost as xgb

    names = booster.feature_names
    types = booster.feature_types
    if names and types and "c" in types:
        dmatrix = xgb.DMatrix(X, feature_names=names, feature_types=types, enable_categorical=True)
    else:
        dmatrix = xgb.DMatrix(X, feature_names=names) if names else xgb.DMatrix(X)
    return _summarize(np.asarray(booster.predict(dmatrix, pred_contribs=True)), n_features)


def _lightgbm_shap(booster: Any, X: Any, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    contribs = booster.predict(X, pred_contrib=True)
    if hasattr(contribs, "toarray"):
        contribs = contribs.toarray()
    return _summarize(np.asarray(contribs, dtype=np.float64), n_features)


def _summarize(contribs: np.ndarray, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    if contribs.ndim != 2:
        raise ValueError(
            "top_features: multi-output Boosters are not supported "
            f"(pred_contribs returned shape {contribs.shape})"
        )
    per_feature = contribs[:, :-1]  # last column is the bias (expected value)
    if per_feature.shape[1] != n_features:
        raise ValueError(
            f"top_features: the Booster produced {per_feature.shape[1]} feature "
            f"contributions but {n_features} feature names were given"
        )
    return np.abs(per_feature).mean(axis=0), per_feature.mean(axis=0)


def top_features(
    model: Any, feature_names: Sequence[str], X: Any = None, top_n: int = 10
) -> pd.DataFrame:
    """The ``top_n`` most important features of ``model``, most important first.

    Returns a DataFrame with columns ``feature``, ``importance`` (non-negative, the
    sort key), ``value`` (signed: mean SHAP contribution for ``"shap"``, the
    coefficient for ``"coefficient"``, the importance itself for ``"impurity"``) and
    ``method``. Ties keep the vectorizer's feature order.

    ``X`` (the rows to explain in the model's representation, e.g. a validation CSR matrix
    or compact columns) is required for a booster and ignored otherwise. ``model`` may be the bare estimator or any
    object exposing it as ``.estimator``.
    """
    names = [str(name) for name in feature_names]
    estimator = _unwrap(model)
    if _is_booster(estimator) or _is_lightgbm(estimator):
        if X is None:
            library = "an xgboost" if _is_booster(estimator) else "a lightgbm"
            raise ValueError(
                f"top_features: X is required to explain {library} Booster "
                "(SHAP contributions are computed on the rows in X)"
            )
        explain = _shap if _is_booster(estimator) else _lightgbm_shap
        importance, value = explain(estimator, X, len(names))
        method = "shap"
    elif hasattr(estimator, "coef_"):
        coef = np.asarray(estimator.coef_, dtype=float)
        if coef.ndim == 2 and coef.shape[0] == 1:
            coef = coef[0]
        if coef.ndim != 1:
            raise ValueError(
                f"top_features: multi-output linear models are not supported "
                f"(coef_ has shape {coef.shape})"
            )
        importance, value = np.abs(coef), coef
        method = "coefficient"
    elif hasattr(estimator, "feature_importances_"):
        importance = np.asarray(estimator.feature_importances_, dtype=float)
        value = importance
        method = "impurity"
    else:
        raise TypeError(
            f"top_features: unsupported model type {type(estimator).__module__}."
            f"{type(estimator).__qualname__}; expected an xgboost.Booster, a lightgbm.Booster, an estimator "
            "with coef_ (linear) or feature_importances_ (tree ensemble), or an object "
            "wrapping one in .estimator"
        )
    if importance.shape[0] != len(names):
        raise ValueError(
            f"top_features: the model has {importance.shape[0]} features but "
            f"{len(names)} feature names were given"
        )
    result = pd.DataFrame(
        {"feature": names, "importance": importance, "value": value, "method": method}
    )
    result = result.sort_values("importance", ascending=False, kind="mergesort")
    return result.head(max(top_n, 0)).reset_index(drop=True)[RESULT_COLUMNS]
