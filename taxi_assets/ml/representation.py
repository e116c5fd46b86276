"""What each estimator sees: fitted feature steps that turn rides into a model's input.

The course gives every model one ``DictVectorizer`` one-hot matrix (5,094 columns for a green
month), which suits the linear models only: trees cannot split a 5,000-way category spread
over 5,000 sparse columns efficiently. So each registry entry (:mod:`taxi_assets.ml.estimators`)
names a representation, fitted on the training rides: ``onehot`` (the course's matrix: linear
models), ``ordinal`` (zone ids, the pair's rank and the distance as dense columns: sklearn's
tree ensembles, :class:`CompactFeatures`) or ``categorical`` (the same columns as category
codes: boosters with native categorical splits). Every step clips ``trip_distance`` at the
training rides' 99.9th percentile, encodes unseen zones and pairs, adds pickup hour and day
of week when extended, and travels with the model inside the predictor, so a request is
encoded exactly as the training rides were (README, "Models"). Its input comes from a
:class:`~taxi_assets.ml.dataset.TrainingSet` (:meth:`FeatureStep.from_training_set`) or from
validated request fields (:meth:`FeatureStep.from_request`): the same matrix for the same rides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from taxi_assets.ml.features import REQUEST_FIELDS, InvalidRequestError

if TYPE_CHECKING:
    import scipy.sparse as sp
    from sklearn.feature_extraction import DictVectorizer

    from taxi_assets.ml.dataset import TrainingSet

REPRESENTATIONS = ("onehot", "ordinal", "categorical")
PICKUP_FIELD = "pickup_datetime"
EXTENDED_REQUEST_FIELDS = [*REQUEST_FIELDS, PICKUP_FIELD]
# trip_distance is clipped at this quantile of the training rides.
DISTANCE_CLIP_QUANTILE = 0.999
COMPACT_COLUMNS = ["PU", "DO", "PU_DO", "trip_distance"]
EXTENDED_COLUMNS = ["pickup_hour", "pickup_dow"]
_PAIR_KEY = 1000  # zone ids are 1..265: the pair (pu, do) is pu * 1000 + do


def distance_clip(distance: np.ndarray) -> float:
    """The clip of ``trip_distance``: the training rides' :data:`DISTANCE_CLIP_QUANTILE`."""
    distance = np.asarray(distance, dtype=np.float64)
    if distance.size == 0:
        raise ValueError("cannot fit the distance clip: no training rides")
    return float(np.quantile(distance, DISTANCE_CLIP_QUANTILE))


def pickup_parts(pickup: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(hour 0..23, day of week 0=Monday..6)`` of pickup times, as int8 arrays."""
    times = pd.DatetimeIndex(np.asarray(pickup, dtype="datetime64[us]"))
    return times.hour.to_numpy(dtype=np.int8), times.dayofweek.to_numpy(dtype=np.int8)


def request_pickups(frame: pd.DataFrame) -> np.ndarray:
    """The request's ``pickup_datetime`` values as datetime64[us]; a missing field or a value
    that is not a date and time is an :class:`InvalidRequestError` naming the record."""
    if PICKUP_FIELD not in frame.columns:
        raise InvalidRequestError(
            f"missing field(s) {PICKUP_FIELD}: each record needs {', '.join(EXTENDED_REQUEST_FIELDS)} "
            "(this model uses the pickup hour and day of week)"
        )
    column = frame[PICKUP_FIELD]
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        parsed = pd.Series(column)
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)
    else:
        bad_type = column.map(lambda v: isinstance(v, (bool, np.bool_)) or not isinstance(v, (str, pd.Timestamp, np.datetime64)))
        parsed = pd.to_datetime(column.where(~bad_type), errors="coerce", format="mixed")
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)
    missing = parsed.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise InvalidRequestError(
            f"field {PICKUP_FIELD!r} must be a date and time (ISO 8601, e.g. '2024-02-01T08:30:00'), "
            f"got {column.iloc[row : row + 1].tolist()[0]!r} in record {row}"
        )
    return parsed.to_numpy(dtype="datetime64[us]")


def _codes(values: np.ndarray, vocabulary: np.ndarray, missing: float = np.nan) -> np.ndarray:
    """Index of each value in the sorted ``vocabulary`` (float32), ``missing`` if absent."""
    values = np.asarray(values, dtype=np.int64)
    idx = np.searchsorted(vocabulary, values)
    inside = np.minimum(idx, len(vocabulary) - 1)
    found = vocabulary[inside] == values
    out = idx.astype(np.float32)
    if not found.all():
        out[~found] = missing
    return out


class FeatureStep:
    """A fitted representation (see the module docstring): the base of the three kinds."""

    kind: str = ""
    extended: bool = False
    clip: float | None = None

    @property
    def request_fields(self) -> list[str]:
        return EXTENDED_REQUEST_FIELDS if self.extended else list(REQUEST_FIELDS)

    @property
    def feature_names(self) -> list[str]:
        raise NotImplementedError

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    def from_request(self, values: Mapping[str, np.ndarray]) -> Any:
        """The model input of validated request fields (zone ids, distance, and pickup times
        when extended)."""
        raise NotImplementedError

    def from_training_set(self, ts: TrainingSet, part: str) -> Any:
        """The model input of the training set's ``"train"`` or ``"val"`` rides."""
        raise NotImplementedError

    def transform(self, X: Any) -> Any:
        """Re-apply the fitted clip to an input already in this representation (idempotent)."""
        return X

    def describe(self) -> dict[str, Any]:
        """What the step does, for logs and MLflow params."""
        return {"representation": self.kind, "distance_clip": self.clip, "extended_features": self.extended,
                "features": self.num_features}  # fmt: skip


# --- one-hot (the course's matrix) ------------------------------------------------------------


class OneHotFeatures(FeatureStep):
    """The course's ``DictVectorizer`` matrix with ``trip_distance`` clipped (``clip=None``: as
    the course, unclipped), plus one-hot pickup hour and day of week when extended."""

    kind = "onehot"

    def __init__(self, vectorizer: DictVectorizer, clip: float | None = None, extended: bool = False):
        self.vectorizer = vectorizer
        self.clip = clip
        self.extended = extended

    @property
    def feature_names(self) -> list[str]:
        names = list(self.vectorizer.feature_names_)
        if self.extended:
            names += [f"pickup_hour={h}" for h in range(24)] + [f"pickup_dow={d}" for d in range(7)]
        return names

    @property
    def num_features(self) -> int:
        return len(self.vectorizer.feature_names_) + (31 if self.extended else 0)

    @property
    def _distance_column(self) -> int:
        return self.vectorizer.vocabulary_.get("trip_distance", -1)

    def _clipped(self, X: sp.csr_matrix) -> sp.csr_matrix:
        """``X`` with the distance column clipped; a new matrix sharing ``X``'s index arrays
        (the training set's matrices are never modified)."""
        import scipy.sparse as sp

        column = self._distance_column
        if self.clip is None or column < 0:
            return X
        X = X.tocsr() if not sp.isspmatrix_csr(X) and sp.issparse(X) else X
        if not sp.issparse(X):
            X = np.array(X, dtype=np.float64)
            X[:, column] = np.minimum(X[:, column], self.clip)
            return X
        at_column = X.indices == column
        if not (X.data[at_column] > self.clip).any():
            return X
        data = X.data.copy()
        data[at_column] = np.minimum(data[at_column], self.clip)
        return sp.csr_matrix((data, X.indices, X.indptr), shape=X.shape)

    def _with_pickups(self, X: sp.csr_matrix, pickups: np.ndarray) -> sp.csr_matrix:
        import scipy.sparse as sp

        hour, dow = pickup_parts(pickups)
        n = X.shape[0]
        cols = np.column_stack([hour.astype(np.int32), 24 + dow.astype(np.int32)]).ravel()
        extra = sp.csr_matrix((np.ones(2 * n), cols, np.arange(0, 2 * n + 1, 2)), shape=(n, 31))
        out = sp.hstack([X, extra], format="csr")
        out.indices = out.indices.astype(np.int32, copy=False)
        out.indptr = out.indptr.astype(np.int32, copy=False)
        return out

    def transform(self, X):
        if X.shape[1] != self.num_features:
            return X  # the caller's width check names the mismatch
        return self._clipped(X)

    def from_request(self, values):
        from taxi_assets.ml import vectorize
        from taxi_assets.ml.cleaning import pu_do_codes

        labels, codes = pu_do_codes(values["PULocationID"], values["DOLocationID"])
        X = vectorize.transform_columns(
            self.vectorizer, len(codes), {"PU_DO": (labels, codes)}, {"trip_distance": values["trip_distance"]}
        )
        X = self._clipped(X)
        return self._with_pickups(X, values[PICKUP_FIELD]) if self.extended else X

    def from_training_set(self, ts, part):
        X = self._clipped(ts.X_train if part == "train" else ts.X_val)
        if self.extended:
            X = self._with_pickups(X, ts.rides(part)["pickup_datetime"].to_numpy())
        return X


# --- compact columns: ordinal (sklearn trees) and categorical (boosters) ----------------------


class CompactFeatures(FeatureStep):
    """Dense float32 columns ``PU, DO, PU_DO, trip_distance`` (+ ``pickup_hour, pickup_dow``).

    ``categorical=True``: the three zone columns hold category codes ``0..n-1`` of the zones
    and pairs seen in training (``NaN`` for unseen ones), to be declared categorical to the
    booster (:attr:`categorical_columns`). ``categorical=False`` (ordinal): zone ids as numbers
    and the pair's rank among the training pairs (pickup-major order), an unseen pair half-way
    between its neighbours.
    """

    def __init__(self, pu: np.ndarray, do: np.ndarray, pairs: np.ndarray, clip: float, categorical: bool, extended: bool = False):
        self.pu = np.asarray(pu, dtype=np.int64)
        self.do = np.asarray(do, dtype=np.int64)
        self.pairs = np.asarray(pairs, dtype=np.int64)
        self.clip = float(clip)
        self.categorical = bool(categorical)
        self.extended = bool(extended)

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "categorical" if self.categorical else "ordinal"

    @property
    def feature_names(self) -> list[str]:
        return COMPACT_COLUMNS + (EXTENDED_COLUMNS if self.extended else [])

    @property
    def categorical_columns(self) -> list[int]:
        """Indexes of the columns to declare categorical (none for ordinal)."""
        return [0, 1, 2] if self.categorical else []

    @property
    def feature_types(self) -> list[str]:
        """XGBoost's ``feature_types`` (``c`` categorical, ``q`` quantitative)."""
        return ["c" if i in self.categorical_columns else "q" for i in range(self.num_features)]

    @property
    def cardinalities(self) -> dict[str, int]:
        return {"PU": len(self.pu), "DO": len(self.do), "PU_DO": len(self.pairs)}

    @classmethod
    def fit(cls, pu_ids, do_ids, distance, categorical: bool, extended: bool = False) -> CompactFeatures:
        pu_ids = np.asarray(pu_ids, dtype=np.int64)
        do_ids = np.asarray(do_ids, dtype=np.int64)
        return cls(
            pu=np.unique(pu_ids),
            do=np.unique(do_ids),
            pairs=np.unique(pu_ids * _PAIR_KEY + do_ids),
            clip=distance_clip(distance),
            categorical=categorical,
            extended=extended,
        )

    def encode(self, pu_ids, do_ids, distance, pickups=None) -> np.ndarray:
        pu_ids = np.asarray(pu_ids, dtype=np.int64)
        do_ids = np.asarray(do_ids, dtype=np.int64)
        keys = pu_ids * _PAIR_KEY + do_ids
        n = len(keys)
        X = np.empty((n, self.num_features), dtype=np.float32)
        if self.categorical:
            X[:, 0] = _codes(pu_ids, self.pu)
            X[:, 1] = _codes(do_ids, self.do)
            X[:, 2] = _codes(keys, self.pairs)
        else:
            X[:, 0] = pu_ids
            X[:, 1] = do_ids
            rank = _codes(keys, self.pairs)
            unseen = np.isnan(rank)
            if unseen.any():  # half-way between the neighbouring training pairs
                rank[unseen] = np.searchsorted(self.pairs, keys[unseen]).astype(np.float32) - 0.5
            X[:, 2] = rank
        X[:, 3] = np.minimum(np.asarray(distance, dtype=np.float64), self.clip)
        if self.extended:
            if pickups is None:
                raise ValueError("this feature step uses pickup times: pass them")
            hour, dow = pickup_parts(pickups)
            X[:, 4] = hour
            X[:, 5] = dow
        return X

    def transform(self, X):
        if X.shape[1] == self.num_features and not hasattr(X, "tocsr"):
            over = X[:, 3] > self.clip
            if over.any():
                X = np.array(X, dtype=np.float32)
                X[over, 3] = self.clip
        return X

    def from_request(self, values):
        return self.encode(values["PULocationID"], values["DOLocationID"], values["trip_distance"],
                           values.get(PICKUP_FIELD) if self.extended else None)  # fmt: skip

    def from_training_set(self, ts, part):
        rides = ts.rides(part)
        return self.encode(
            rides["PULocationID"].to_numpy(), rides["DOLocationID"].to_numpy(), rides["trip_distance"].to_numpy(),
            rides["pickup_datetime"].to_numpy() if self.extended else None,
        )  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "categories": self.cardinalities}


def fit_representation(kind: str, ts: TrainingSet, extended: bool | None = None) -> FeatureStep:
    """The ``kind`` step fitted on ``ts``'s training rides (``extended``: the training set's
    own setting, ``ts.info["extended_features"]``, when not given)."""
    if kind not in REPRESENTATIONS:
        raise ValueError(f"unknown representation {kind!r}: expected one of {', '.join(REPRESENTATIONS)}")
    if extended is None:
        extended = bool(ts.info.get("extended_features", False))
    if kind == "onehot":
        if ts.train_rides is not None:
            distance = ts.train_rides["trip_distance"].to_numpy()
        else:  # a training set stored before the rides were: its distance column (one value per row)
            distance = ts.X_train[:, ts.vectorizer.vocabulary_["trip_distance"]].toarray().ravel()
        return OneHotFeatures(ts.vectorizer, clip=distance_clip(distance), extended=extended)
    rides = ts.rides("train")
    return CompactFeatures.fit(
        rides["PULocationID"].to_numpy(), rides["DOLocationID"].to_numpy(), rides["trip_distance"].to_numpy(),
        categorical=kind == "categorical", extended=extended,
    )  # fmt: skip
