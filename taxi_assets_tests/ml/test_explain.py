"""Feature importance for real models fit on a 5000-row sample of green 2024-01."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from support.data import cleaned_month
from taxi_assets.ml.explain import RESULT_COLUMNS, top_features


class _Predictor:
    """Stands in for the project's small predictor wrapper: holds the model in .estimator."""

    def __init__(self, estimator):
        self.estimator = estimator


@pytest.fixture(scope="module")
def training():
    from sklearn.feature_extraction import DictVectorizer

    df = cleaned_month("2024-01").sample(5000, random_state=0)
    vectorizer = DictVectorizer()
    X = vectorizer.fit_transform(df[["PU_DO", "trip_distance"]].to_dict("records"))
    return vectorizer, X, df["duration"].to_numpy()


@pytest.fixture(scope="module")
def booster(training):
    import xgboost as xgb

    _, X, y = training
    params = {"max_depth": 4, "eta": 0.3, "objective": "reg:squarederror", "seed": 0, "nthread": 1}
    return xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=8)


def _check_shape(result: pd.DataFrame, names: list[str], method: str, top_n: int) -> None:
    assert list(result.columns) == RESULT_COLUMNS
    assert len(result) == top_n
    assert set(result["feature"]) <= set(names)
    assert result["feature"].is_unique
    assert (result["method"] == method).all()
    importance = result["importance"].to_numpy()
    assert (importance >= 0).all()
    assert (np.diff(importance) <= 0).all(), "not sorted by importance, descending"


def test_linear_regression_uses_signed_coefficients(training):
    from sklearn.linear_model import LinearRegression

    vectorizer, X, y = training
    names = list(vectorizer.feature_names_)
    model = LinearRegression().fit(X, y)
    result = top_features(model, names, top_n=10)
    _check_shape(result, names, "coefficient", 10)
    coef = dict(zip(names, model.coef_))
    for feature, importance, value in result[["feature", "importance", "value"]].itertuples(index=False):
        assert value == coef[feature]
        assert importance == abs(coef[feature])
    assert result["importance"].iloc[0] == np.abs(model.coef_).max()
    # The full ranking keeps negative coefficients with their sign.
    full = top_features(model, names, top_n=len(names))
    assert (full["value"] < 0).any()
    assert full.loc[full["feature"] == "trip_distance", "value"].item() == coef["trip_distance"]


def test_random_forest_uses_impurity_importances(training):
    from sklearn.ensemble import RandomForestRegressor

    vectorizer, X, y = training
    names = list(vectorizer.feature_names_)
    model = RandomForestRegressor(n_estimators=5, max_depth=10, random_state=0, n_jobs=1).fit(X, y)
    result = top_features(model, names, top_n=5)
    _check_shape(result, names, "impurity", 5)
    assert "trip_distance" in list(result["feature"].head(3))
    by_name = dict(zip(names, model.feature_importances_))
    assert result["importance"].tolist() == [by_name[f] for f in result["feature"]]
    assert result["importance"].iloc[0] == model.feature_importances_.max()


def test_booster_uses_shap_contributions(training, booster):
    import xgboost as xgb

    vectorizer, X, _ = training
    names = list(vectorizer.feature_names_)
    result = top_features(booster, names, X=X, top_n=10)
    _check_shape(result, names, "shap", 10)
    assert "trip_distance" in list(result["feature"].head(3))

    contribs = booster.predict(xgb.DMatrix(X), pred_contribs=True)
    prediction = booster.predict(xgb.DMatrix(X))
    assert contribs.shape == (X.shape[0], len(names) + 1)
    # SHAP is additive: per-feature contributions plus the bias give each prediction.
    np.testing.assert_allclose(contribs.sum(axis=1), prediction, rtol=1e-4, atol=1e-3)
    mean_abs = dict(zip(names, np.abs(contribs[:, :-1]).mean(axis=0)))
    for feature, importance in zip(result["feature"], result["importance"]):
        assert importance == pytest.approx(mean_abs[feature], rel=1e-6)
    # The signed mean contributions over all features plus the mean bias give the mean
    # prediction, so `value` really is the signed SHAP mean.
    everything = top_features(booster, names, X=X, top_n=len(names))
    assert everything["value"].sum() + contribs[:, -1].mean() == pytest.approx(
        float(prediction.mean()), rel=1e-4
    )


def test_wrapped_estimators_give_the_same_answer(training, booster):
    from sklearn.linear_model import LinearRegression

    vectorizer, X, y = training
    names = list(vectorizer.feature_names_)
    model = LinearRegression().fit(X, y)
    pd.testing.assert_frame_equal(
        top_features(_Predictor(model), names, top_n=4), top_features(model, names, top_n=4)
    )
    pd.testing.assert_frame_equal(
        top_features(_Predictor(booster), names, X=X, top_n=4),
        top_features(booster, names, X=X, top_n=4),
    )


def test_errors_are_clear(training, booster):
    vectorizer, X, _ = training
    names = list(vectorizer.feature_names_)
    with pytest.raises(TypeError, match=r"unsupported model type builtins\.str; expected an xgboost\.Booster"):
        top_features("not a model", names)
    with pytest.raises(TypeError, match="unsupported model type"):
        top_features(_Predictor(object()), names)
    with pytest.raises(ValueError, match="X is required to explain an xgboost Booster"):
        top_features(booster, names)
    with pytest.raises(ValueError, match=f"{len(names)} feature contributions but 2 feature names"):
        top_features(booster, names[:2], X=X)

    class Linear:
        coef_ = np.array([1.0, -2.0, 0.5])

    with pytest.raises(ValueError, match="the model has 3 features but 2 feature names were given"):
        top_features(Linear(), ["a", "b"])
    assert top_features(Linear(), ["a", "b", "c"], top_n=2)["feature"].tolist() == ["b", "a"]


@pytest.fixture(scope="module")
def compact():
    """The categorical representation of the same 5,000 rides (PU, DO, PU_DO codes, distance)."""
    from taxi_assets.ml.representation import CompactFeatures

    df = cleaned_month("2024-01").sample(5000, random_state=0)
    step = CompactFeatures.fit(df["PULocationID"], df["DOLocationID"], df["trip_distance"], categorical=True)
    X = step.encode(df["PULocationID"], df["DOLocationID"], df["trip_distance"])
    return step, X, df["duration"].to_numpy()


def test_categorical_xgboost_is_explained_per_column(compact):
    """A booster trained with native categorical splits gets one SHAP value per column: PU_DO
    is one feature, not 5,000 one-hot flags."""
    import xgboost as xgb

    step, X, y = compact
    dtrain = xgb.DMatrix(X, label=y, feature_names=step.feature_names, feature_types=step.feature_types, enable_categorical=True)
    booster = xgb.train({"max_depth": 4, "eta": 0.3, "tree_method": "hist", "seed": 0, "nthread": 1}, dtrain, num_boost_round=8)
    result = top_features(booster, step.feature_names, X=X, top_n=4)
    _check_shape(result, step.feature_names, "shap", 4)
    assert set(result["feature"]) == {"PU", "DO", "PU_DO", "trip_distance"}
    assert result["feature"].iloc[0] == "trip_distance"
    contribs = booster.predict(dtrain, pred_contribs=True)
    np.testing.assert_allclose(contribs.sum(axis=1), booster.predict(dtrain), rtol=1e-4, atol=1e-3)
    by_name = dict(zip(step.feature_names, np.abs(contribs[:, :-1]).mean(axis=0)))
    assert result["importance"].tolist() == pytest.approx([by_name[f] for f in result["feature"]], rel=1e-6)


def test_lightgbm_uses_its_shap_contributions(compact):
    import lightgbm as lgb

    step, X, y = compact
    train = lgb.Dataset(X, label=y, feature_name=step.feature_names, categorical_feature=step.categorical_columns)
    booster = lgb.train({"num_leaves": 15, "verbose": -1, "seed": 0, "num_threads": 1}, train, num_boost_round=10)
    result = top_features(_Predictor(booster), step.feature_names, X=X, top_n=3)
    _check_shape(result, step.feature_names, "shap", 3)
    contribs = booster.predict(X, pred_contrib=True)
    assert contribs.shape == (len(X), 5)
    np.testing.assert_allclose(contribs.sum(axis=1), booster.predict(X), rtol=1e-6, atol=1e-6)
    by_name = dict(zip(step.feature_names, np.abs(contribs[:, :-1]).mean(axis=0)))
    assert result["importance"].tolist() == pytest.approx([by_name[f] for f in result["feature"]], rel=1e-9)
    assert result["feature"].iloc[0] == "trip_distance"
    with pytest.raises(ValueError, match="X is required to explain a lightgbm Booster"):
        top_features(booster, step.feature_names)
