"""The estimator registry: every entry of :data:`ESTIMATORS` becomes one model asset, one MLflow
registered model, one leaderboard row and a champion candidate. Adding a model is one more entry
here: ``sklearn_estimator(...)`` for any sklearn regressor, or an :class:`EstimatorSpec` with
its own ``fit`` (as XGBoost and LightGBM). The rules behind the representations, caps and
budgets below are in the README ("Models", "The estimator registry")."""

from __future__ import annotations

from taxi_assets.ml.estimators import boosters, spaces
from taxi_assets.ml.estimators.spec import EstimatorSpec, sklearn_estimator

ESTIMATORS: dict[str, EstimatorSpec] = {
    spec.name: spec
    for spec in [
        sklearn_estimator(
            "linear_regression",
            "sklearn.linear_model.LinearRegression",
            "Ordinary least squares on one-hot PU_DO + trip_distance (clipped at the training p99.9); the "
            "course baseline model. Tunes fit_intercept.",
            spaces.linear_regression_space,
            max_evaluations=2,
        ),
        sklearn_estimator(
            "lasso",
            "sklearn.linear_model.Lasso",
            "L1-regularized linear regression on one-hot PU_DO + clipped trip_distance. Tunes alpha "
            "(log-uniform 1e-4..1) and max_iter. Trains on at most 200,000 rides.",
            spaces.lasso_space,
            max_evaluations=8,
            course_space=spaces.lasso_course_space,
            max_train_rows=200_000,
        ),
        sklearn_estimator(
            "linear_svr",
            "sklearn.svm.LinearSVR",
            "Linear support vector regression (epsilon-insensitive loss) on one-hot PU_DO + clipped "
            "trip_distance. Tunes epsilon, C (quick: e^-3..e) and max_iter. Trains on at most 200,000 rides.",
            spaces.linear_svr_space,
            max_evaluations=4,
            course_space=spaces.linear_svr_course_space,
            max_train_rows=200_000,
        ),
        sklearn_estimator(
            "extra_trees",
            "sklearn.ensemble.ExtraTreesRegressor",
            "Extremely randomized trees on zone ids, pair rank and clipped distance. Tunes depth (15-40), "
            "max_features, leaf/split sizes and tree count (10-40). Trains on at most 300,000 rides.",
            spaces.extra_trees_space,
            max_evaluations=3,
            parallel=True,
            course_space=spaces.extra_trees_course_space,
            representation="ordinal",
            max_train_rows=300_000,
        ),
        sklearn_estimator(
            "gradient_boosting",
            "sklearn.ensemble.GradientBoostingRegressor",
            "sklearn gradient boosting (single-threaded) on zone ids, pair rank and clipped distance. "
            "Tunes learning rate, depth, leaf/split sizes and tree count (quick space: depth 3-10, "
            "10-50 trees; course: depth 5-40). Trains on at most 200,000 rides.",
            spaces.gradient_boosting_space,
            max_evaluations=3,
            course_space=spaces.gradient_boosting_course_space,
            representation="ordinal",
            max_train_rows=200_000,
        ),
        sklearn_estimator(
            "random_forest",
            "sklearn.ensemble.RandomForestRegressor",
            "Random forest on zone ids, pair rank and clipped distance. Tunes depth, max_features, "
            "leaf/split sizes and tree count (quick space: depth 10-30, 10-30 trees; course: depth "
            "5-45, 10-60 trees). Trains on at most 300,000 rides.",
            spaces.random_forest_space,
            max_evaluations=3,
            parallel=True,
            course_space=spaces.random_forest_course_space,
            representation="ordinal",
            max_train_rows=300_000,
        ),
        EstimatorSpec(
            name="xgboost",
            description="XGBoost (xgb.train, hist) with native categorical splits on PU, DO and the PU_DO "
            "pair plus clipped distance; early stopping on the training window's last week (num_boost_round "
            "caps the rounds), then a refit on the whole window. Tunes learning rate, depth, regularization "
            "and sampling.",
            spaces={"quick": spaces.xgboost_space, "course": spaces.xgboost_course_space},
            fit=boosters.fit_xgboost,
            max_evaluations=3,
            parallel=True,
            fit_options={"early_stopping_rounds": 10, "num_boost_round": 1000},
            config_overrides={"max_depth": int},
            library="xgboost",
            representation="categorical",
            early_stopping=True,
            refit=boosters.refit_xgboost,
            max_search_rows=250_000,
        ),
        EstimatorSpec(
            name="lightgbm",
            description="LightGBM with native categorical splits on PU, DO and the PU_DO pair plus clipped "
            "distance; early stopping on the training window's last week (num_boost_round caps the "
            "rounds), then a refit on the whole window. Tunes learning rate, leaves, leaf size, sampling, "
            "L2 and the categorical smoothing.",
            spaces={"quick": spaces.lightgbm_space, "course": spaces.lightgbm_space},
            fit=boosters.fit_lightgbm,
            max_evaluations=8,
            parallel=True,
            fit_options={"early_stopping_rounds": 20, "num_boost_round": 500},
            config_overrides={"num_leaves": int},
            library="lightgbm",
            representation="categorical",
            early_stopping=True,
            refit=boosters.refit_lightgbm,
            max_search_rows=250_000,
        ),
    ]
}


def get_estimator(name: str) -> EstimatorSpec:
    """The registry entry ``name``; an unknown name is a ``KeyError`` listing the known ones."""
    try:
        return ESTIMATORS[name]
    except KeyError:
        raise KeyError(f"unknown estimator {name!r}: expected one of {', '.join(ESTIMATORS)}") from None
