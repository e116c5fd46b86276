"""A column-wise ``DictVectorizer``: the same matrix, without the list-of-dicts detour.

The course vectorizes with ``DictVectorizer().fit_transform(df.to_dict(orient="records"))``:
one Python dict per ride, then a Python loop over every key of every dict. For a yellow month
(3.4 million rides) that is the slowest step of the pipeline and the largest peak of memory.

:func:`fit_transform` builds exactly that matrix from the columns instead (same sorted feature
names, same values, explicit zeros kept as ``DictVectorizer`` keeps them) and returns a real,
fitted :class:`sklearn.feature_extraction.DictVectorizer`, so inference code and MLflow users
can still call ``dv.transform(list_of_dicts)``. Categorical columns are one-hot as
``"{column}={value}"`` (values as strings, as the course converts them); numerical columns
are one feature each. Categories unseen at fit time are ignored at transform time, as
``DictVectorizer`` does. The CSR matrix uses int32 indices, which every sklearn solver accepts
(scipy may otherwise hand Lasso and LinearSVR int64 indices they reject).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from taxi_assets.ml.features import CATEGORICAL_FEATURES, NUMERICAL_FEATURES

if TYPE_CHECKING:  # sklearn and scipy.sparse cost ~1.5 s to import: loaded on first use instead
    import scipy.sparse as sp
    from sklearn.feature_extraction import DictVectorizer


def _as_categorical(values: pd.Series) -> pd.Categorical:
    """The column as a categorical of strings, reusing an existing categorical's codes."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cat = values.array
        if all(isinstance(c, str) for c in cat.categories[:5]):
            return cat
        return cat.rename_categories([str(c) for c in cat.categories])
    codes, uniques = pd.factorize(values, sort=False)
    labels = [str(u) for u in uniques]
    return pd.Categorical.from_codes(codes, categories=pd.Index(labels, dtype=object), validate=False)


def fit(
    frame: pd.DataFrame,
    categorical: list[str] = CATEGORICAL_FEATURES,
    numerical: list[str] = NUMERICAL_FEATURES,
) -> DictVectorizer:
    """A fitted ``DictVectorizer`` for ``frame``'s columns, built from distinct values only."""
    from sklearn.feature_extraction import DictVectorizer

    names = [str(n) for n in numerical]
    for column in categorical:
        names.extend(f"{column}={value}" for value in _as_categorical(frame[column]).categories[_present(frame[column])])
    names = sorted(set(names))
    dv = DictVectorizer()
    dv.feature_names_ = names
    dv.vocabulary_ = {name: i for i, name in enumerate(names)}
    dv._categorical = list(categorical)  # noqa: SLF001 - lets transform() know the columns
    dv._numerical = list(numerical)  # noqa: SLF001
    return dv


def _present(values: pd.Series) -> np.ndarray:
    """Which categories of the column occur (a categorical may carry unused ones)."""
    cat = _as_categorical(values)
    seen = np.zeros(len(cat.categories), dtype=bool)
    codes = cat.codes
    seen[codes[codes >= 0]] = True
    return seen


def transform(
    frame: pd.DataFrame,
    dv: DictVectorizer,
    categorical: list[str] | None = None,
    numerical: list[str] | None = None,
) -> sp.csr_matrix:
    """``dv.transform(frame.to_dict("records"))``, computed per column."""
    categorical = list(categorical if categorical is not None else getattr(dv, "_categorical", CATEGORICAL_FEATURES))
    numerical = list(numerical if numerical is not None else getattr(dv, "_numerical", NUMERICAL_FEATURES))
    coded = {}
    for column in categorical:
        cat = _as_categorical(frame[column])
        coded[column] = (cat.categories, np.asarray(cat.codes))
    numbers = {column: frame[column].to_numpy(dtype=np.float64) for column in numerical}
    return transform_columns(dv, len(frame), coded, numbers)


def transform_columns(
    dv: DictVectorizer,
    n: int,
    categorical: Mapping[str, tuple[Sequence[str], np.ndarray]],
    numerical: Mapping[str, np.ndarray],
) -> sp.csr_matrix:
    """The matrix of :func:`transform` from columns already split into their parts.

    ``categorical`` maps a column to ``(labels, codes)`` (code ``-1``: missing), ``numerical``
    a column to its values. Callers that hold the codes anyway (the predictor, which formats
    each distinct pickup/dropoff pair once) skip building a frame and a categorical for it.
    """
    import scipy.sparse as sp

    vocab = dv.vocabulary_
    columns: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for column, (labels, codes) in categorical.items():
        lookup = np.array([vocab.get(f"{column}={c}", -1) for c in labels] + [-1], dtype=np.int64)
        columns.append(lookup[np.asarray(codes, dtype=np.int64)])  # code -1 (missing) picks the trailing -1
        values.append(np.ones(n))
    for column, column_values in numerical.items():
        columns.append(np.full(n, vocab.get(column, -1), dtype=np.int64))
        values.append(np.asarray(column_values, dtype=np.float64))
    if not columns:
        return sp.csr_matrix((n, len(vocab)))
    col = np.column_stack(columns)
    val = np.column_stack(values)
    order = np.argsort(col, axis=1, kind="stable")
    col = np.take_along_axis(col, order, axis=1)
    val = np.take_along_axis(val, order, axis=1)
    keep = col >= 0
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(keep.sum(axis=1), out=indptr[1:])
    if indptr[-1] > np.iinfo(np.int32).max:
        raise ValueError("matrix has more than 2**31 stored values; split the training window")
    return sp.csr_matrix(
        (val[keep], col[keep].astype(np.int32), indptr.astype(np.int32)),
        shape=(n, len(vocab)),
    )


def fit_transform(
    frame: pd.DataFrame,
    categorical: list[str] = CATEGORICAL_FEATURES,
    numerical: list[str] = NUMERICAL_FEATURES,
) -> tuple[sp.csr_matrix, DictVectorizer]:
    """Fit on ``frame`` and return its matrix with the fitted vectorizer."""
    dv = fit(frame, categorical, numerical)
    return transform(frame, dv), dv


def from_feature_names(
    names: list[str], categorical: list[str] = CATEGORICAL_FEATURES, numerical: list[str] = NUMERICAL_FEATURES
) -> DictVectorizer:
    """Rebuild a fitted vectorizer from its stored feature names (no pickle needed)."""
    from sklearn.feature_extraction import DictVectorizer

    dv = DictVectorizer()
    dv.feature_names_ = list(names)
    dv.vocabulary_ = {name: i for i, name in enumerate(dv.feature_names_)}
    dv._categorical = list(categorical)  # noqa: SLF001
    dv._numerical = list(numerical)  # noqa: SLF001
    return dv
