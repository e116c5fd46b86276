"""XGBoost and LightGBM: a trial's fit with early stopping on the selection slice (the training
window's last week), and the refit of the best trial on the whole window for
:func:`refit_rounds` rounds. Both train with native categorical splits on the ``categorical``
representation; the libraries are imported on first fit."""

from __future__ import annotations

from typing import Any

# The refit's rounds grow with the rides added back, at most by this factor.
MAX_REFIT_ROUNDS_SCALE = 1.5


def refit_rounds(best_rounds: int, fitted_rows: int, all_rows: int) -> int:
    """Rounds of the refit on the whole window: the early-stopped count scaled by the rides
    added back, at most :data:`MAX_REFIT_ROUNDS_SCALE` times and at least the count itself."""
    if fitted_rows <= 0:
        return best_rounds
    scale = min(max(all_rows / fitted_rows, 1.0), MAX_REFIT_ROUNDS_SCALE)
    return int(round(best_rounds * scale))


def _xgb_matrix(X, y, n_jobs: int, feature_names, categorical_features):
    import xgboost as xgb

    if categorical_features:
        types = ["c" if i in set(categorical_features) else "q" for i in range(X.shape[1])]
        return xgb.DMatrix(X, label=y, nthread=n_jobs, feature_names=list(feature_names), feature_types=types,
                           enable_categorical=True)  # fmt: skip
    return xgb.DMatrix(X, label=y, nthread=n_jobs)


def _xgb_params(params, n_jobs: int) -> dict[str, Any]:
    return {"tree_method": "hist", **params, "nthread": n_jobs, "verbosity": 0}


def fit_xgboost(
    params,
    X_train,
    y_train,
    X_es,
    y_es,
    *,
    n_jobs: int = 1,
    early_stopping_rounds: int = 10,
    num_boost_round: int = 1000,
    feature_names=None,
    categorical_features=None,
):
    """``xgb.train`` (``hist``; native categorical splits on the categorical columns) with early
    stopping on the early-stopping slice; the booster keeps ``best_iteration``."""
    import xgboost as xgb

    if early_stopping_rounds < 1 or num_boost_round < 1:
        raise ValueError(
            f"xgboost: early_stopping_rounds ({early_stopping_rounds}) and num_boost_round "
            f"({num_boost_round}) must be at least 1"
        )
    train = _xgb_matrix(X_train, y_train, n_jobs, feature_names, categorical_features)
    stop = _xgb_matrix(X_es, y_es, n_jobs, feature_names, categorical_features)
    booster = xgb.train(
        _xgb_params(params, n_jobs),
        train,
        num_boost_round=int(num_boost_round),
        evals=[(stop, "early_stopping")],
        early_stopping_rounds=int(early_stopping_rounds),
        verbose_eval=False,
    )
    booster.set_attr(fitted_rows=str(X_train.shape[0]))
    return booster


def refit_xgboost(params, model, X, y, *, n_jobs: int = 1, feature_names=None, categorical_features=None, **_options):
    """The best trial's parameters on the whole window, for :func:`refit_rounds` rounds."""
    import xgboost as xgb

    rounds = refit_rounds(int(model.best_iteration) + 1, int(model.attr("fitted_rows") or 0), X.shape[0])
    booster = xgb.train(_xgb_params(params, n_jobs), _xgb_matrix(X, y, n_jobs, feature_names, categorical_features),
                        num_boost_round=rounds)  # fmt: skip
    booster.set_attr(early_stopped_rounds=str(int(model.best_iteration) + 1))
    return booster


def _lgb_params(params, n_jobs: int) -> dict[str, Any]:
    return {"objective": "regression", **params, "num_threads": n_jobs, "verbose": -1, "deterministic": True,
            "force_col_wise": True}  # fmt: skip


def _lgb_dataset(X, y, feature_names, categorical_features, reference=None):
    import lightgbm as lgb

    names = list(feature_names) if feature_names is not None else "auto"
    cats = list(categorical_features) if categorical_features else "auto"
    return lgb.Dataset(X, label=y, feature_name=names, categorical_feature=cats, reference=reference, free_raw_data=True)


def fit_lightgbm(
    params,
    X_train,
    y_train,
    X_es,
    y_es,
    *,
    n_jobs: int = 1,
    early_stopping_rounds: int = 20,
    num_boost_round: int = 500,
    feature_names=None,
    categorical_features=None,
):
    """``lightgbm.train`` with native categorical splits, early stopping on the early-stopping
    slice; the booster keeps ``best_iteration``."""
    import lightgbm as lgb

    if early_stopping_rounds < 1 or num_boost_round < 1:
        raise ValueError(
            f"lightgbm: early_stopping_rounds ({early_stopping_rounds}) and num_boost_round "
            f"({num_boost_round}) must be at least 1"
        )
    train = _lgb_dataset(X_train, y_train, feature_names, categorical_features)
    stop = _lgb_dataset(X_es, y_es, feature_names, categorical_features, reference=train)
    booster = lgb.train(
        _lgb_params(params, n_jobs),
        train,
        num_boost_round=int(num_boost_round),
        valid_sets=[stop],
        valid_names=["early_stopping"],
        callbacks=[lgb.early_stopping(int(early_stopping_rounds), verbose=False)],
    )
    booster.fitted_rows = X_train.shape[0]
    return booster


def refit_lightgbm(params, model, X, y, *, n_jobs: int = 1, feature_names=None, categorical_features=None, **_options):
    """The best trial's parameters on the whole window, for :func:`refit_rounds` rounds."""
    import lightgbm as lgb

    best = int(model.best_iteration) or int(model.current_iteration())
    rounds = refit_rounds(best, int(getattr(model, "fitted_rows", 0)), X.shape[0])
    booster = lgb.train(_lgb_params(params, n_jobs), _lgb_dataset(X, y, feature_names, categorical_features),
                        num_boost_round=rounds)  # fmt: skip
    booster.early_stopped_rounds = best
    return booster
