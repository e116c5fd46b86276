"""The training set: a time split of cleaned rides, vectorized, stored as one ``.npz`` file.

Partition M validates on month M and trains on the months before it. Like the course's Mage
pipeline, the cleaned rides of the whole window are pooled and split on pickup time at the
first instant of month M: a ride in February's file picked up on 31 January trains, one in
January's file picked up in February validates. The vectorizer is fitted on the training rows
only, so a validation pair never seen in training keeps only its distance, as at serving time.
Besides the course's matrices (kept exactly: ``training_set[2024-02]`` is 54,378 x 5,094 /
51,492 x 5,094) a training set holds the rides themselves in compact columns, row-aligned with
the targets: the other representations are built from them (:mod:`taxi_assets.ml.representation`),
the search takes its selection slice from their pickup times (:func:`selection_mask`), and any
model can be scored on exactly the validation rides. ``info["extended_features"]`` records
whether its models use pickup hour and day of week. On disk it is one compressed ``.npz``
(CSR parts, targets, names, ride columns, a JSON header): one atomic rename publishes it, and
no pickle is involved.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from taxi_assets.ml import vectorize
from taxi_assets.ml.features import FEATURE_COLUMNS, TARGET

if TYPE_CHECKING:  # imported where used, so loading the code location does not pay for them
    import scipy.sparse as sp
    from sklearn.feature_extraction import DictVectorizer


@dataclass
class TrainingSet:
    X_train: sp.csr_matrix
    X_val: sp.csr_matrix
    y_train: np.ndarray
    y_val: np.ndarray
    vectorizer: DictVectorizer
    info: dict = field(default_factory=dict)
    # The validation rides' request fields (PULocationID, DOLocationID, trip_distance) and
    # pickup times, row-aligned with X_val / y_val: any model, whatever its features, can be
    # scored on exactly these rides (the champion and its challenger are).
    val_rides: pd.DataFrame | None = None
    # The training rides, the same columns, row-aligned with X_train / y_train.
    train_rides: pd.DataFrame | None = None

    def rides(self, part: str) -> pd.DataFrame:
        """The ``"train"`` or ``"val"`` rides (pickup time, zone ids, distance), row-aligned
        with that part's matrix and targets."""
        if part not in ("train", "val"):
            raise ValueError(f"part must be 'train' or 'val', got {part!r}")
        rides = self.train_rides if part == "train" else self.val_rides
        if rides is None:
            raise ValueError(
                f"this training set stores no {'training' if part == 'train' else 'validation'} rides "
                "(written by an older version): re-materialize it"
            )
        return rides

    @property
    def extended_features(self) -> bool:
        """Whether this set's models use the pickup hour and day of week."""
        return bool(self.info.get("extended_features", False))

    def validation_rides(self) -> pd.DataFrame:
        """The validation rides: request fields, pickup time and ``duration`` (= ``y_val``)."""
        if self.val_rides is None:
            raise ValueError("this training set stores no validation rides (written by an older version): re-materialize it")
        rides = self.val_rides.copy()
        rides[TARGET] = self.y_val
        return rides

    @property
    def feature_names(self) -> list[str]:
        return list(self.vectorizer.feature_names_)

    @property
    def num_features(self) -> int:
        return len(self.vectorizer.feature_names_)


def pool_months(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate cleaned months, keeping ``PU_DO`` categorical.

    ``pd.concat`` turns categoricals with different categories (every month has its own pairs)
    into an object column of Python strings, which the vectorizer must factorize again; the
    union of categories keeps the codes, and preparation of a two-month window ~1.5x faster.
    """
    frames = list(frames)
    if len(frames) == 1:
        # One month (a yellow month is ~100 MiB cleaned): no copy; callers only read it.
        only = frames[0]
        return only if isinstance(only.index, pd.RangeIndex) and only.index.start == 0 else only.reset_index(drop=True)
    pooled = pd.concat(frames, ignore_index=True)
    for column in pooled.columns:
        if all(isinstance(f[column].dtype, pd.CategoricalDtype) for f in frames):
            pooled[column] = pd.api.types.union_categoricals([f[column] for f in frames])
    return pooled


def split_on_time(frame: pd.DataFrame, boundary: pd.Timestamp, column: str = "pickup_datetime"):
    """Rows picked up before ``boundary`` and rows at or after it."""
    before = (frame[column] < boundary).to_numpy()
    return frame.loc[before], frame.loc[~before]


def build_training_set(
    cleaned: pd.DataFrame, boundary: pd.Timestamp, info: dict | None = None, extended_features: bool = False
) -> TrainingSet:
    """Split pooled cleaned rides at ``boundary`` and vectorize (fit on the training side).

    ``extended_features`` (the asset passes ``TAXI_EXTENDED_FEATURES``) is recorded in ``info``:
    the models tuned on this set then use the pickup hour and day of week as well.
    """
    train, val = split_on_time(cleaned, boundary)
    if train.empty:
        raise ValueError(f"no training rides picked up before {boundary:%Y-%m-%d}: check the training window")
    if val.empty:
        raise ValueError(f"no validation rides picked up on or after {boundary:%Y-%m-%d}")
    X_train, dv = vectorize.fit_transform(train[FEATURE_COLUMNS])
    X_val = vectorize.transform(val[FEATURE_COLUMNS], dv)
    return TrainingSet(
        X_train=X_train,
        X_val=X_val,
        y_train=train[TARGET].to_numpy(dtype=np.float64),
        y_val=val[TARGET].to_numpy(dtype=np.float64),
        vectorizer=dv,
        info=dict(info or {}, boundary=str(boundary), extended_features=bool(extended_features)),
        val_rides=_rides(val),
        train_rides=_rides(train),
    )


RIDE_COLUMNS = ["pickup_datetime", "PULocationID", "DOLocationID", "trip_distance"]


# The selection slice: the training rides of the last SELECTION_DAYS before the newest training
# pickup; if that is not between MIN and MAX of the rides (tiny or oddly shaped windows), the
# newest SELECTION_FALLBACK_SHARE of them by pickup time.
SELECTION_DAYS = 7
SELECTION_MIN_SHARE = 0.05
SELECTION_MAX_SHARE = 0.5
SELECTION_FALLBACK_SHARE = 0.2


def selection_mask(pickups: pd.Series | np.ndarray, days: int = SELECTION_DAYS) -> np.ndarray:
    """Which training rides form the selection slice: those picked up in the last ``days`` days
    of the training window. Hyperparameter trials fit on the other rides and are compared on
    this slice (the boosters also early-stop on it); the validation month is only scored.

    Green 2024-01 (training_set[2024-02]): 12,687 of 54,378 rides, 24 to 31 January.
    """
    times = np.asarray(pickups, dtype="datetime64[us]")
    n = len(times)
    if n < 2:
        raise ValueError(f"cannot take a selection slice from {n} training ride(s)")
    mask = times > times.max() - np.timedelta64(days, "D")
    share = mask.mean()
    if not SELECTION_MIN_SHARE <= share <= SELECTION_MAX_SHARE:
        order = np.argsort(times, kind="stable")
        count = min(n - 1, max(1, int(round(n * SELECTION_FALLBACK_SHARE))))
        mask = np.zeros(n, dtype=bool)
        mask[order[n - count :]] = True
    return mask


def _rides(frame: pd.DataFrame) -> pd.DataFrame | None:
    if not all(c in frame.columns for c in RIDE_COLUMNS):
        return None
    return pd.DataFrame(
        {
            "pickup_datetime": frame["pickup_datetime"].to_numpy(dtype="datetime64[us]"),
            "PULocationID": frame["PULocationID"].to_numpy(dtype=np.int64),
            "DOLocationID": frame["DOLocationID"].to_numpy(dtype=np.int64),
            "trip_distance": frame["trip_distance"].to_numpy(dtype=np.float64),
        }
    )


def save_training_set(ts: TrainingSet, path: Path) -> None:
    """Write ``ts`` to ``path`` (an open temp file or a path; callers rename atomically)."""
    arrays = {}
    for name, m in (("X_train", ts.X_train), ("X_val", ts.X_val)):
        arrays[f"{name}_data"] = m.data
        arrays[f"{name}_indices"] = m.indices
        arrays[f"{name}_indptr"] = m.indptr
        arrays[f"{name}_shape"] = np.asarray(m.shape, dtype=np.int64)
    arrays["y_train"] = ts.y_train
    arrays["y_val"] = ts.y_val
    arrays["feature_names"] = np.asarray(ts.feature_names, dtype=str)
    header = {
        "categorical": getattr(ts.vectorizer, "_categorical", None),
        "numerical": getattr(ts.vectorizer, "_numerical", None),
        "info": ts.info,
    }
    arrays["header"] = np.asarray(json.dumps(header))
    for part, rides in (("val", ts.val_rides), ("train", ts.train_rides)):
        if rides is None:
            continue
        arrays[f"{part}_pickup_us"] = rides["pickup_datetime"].to_numpy(dtype="datetime64[us]").astype(np.int64)
        for column in ("PULocationID", "DOLocationID"):
            arrays[f"{part}_{column}"] = rides[column].to_numpy().astype(np.int16)  # zone ids 1..265
        arrays[f"{part}_trip_distance"] = rides["trip_distance"].to_numpy(dtype=np.float64)
    np.savez_compressed(path, **arrays)


def load_training_set(path: Path) -> TrainingSet:
    import scipy.sparse as sp

    with np.load(path, allow_pickle=False) as z:
        header = json.loads(str(z["header"]))
        mats = {}
        for name in ("X_train", "X_val"):
            mats[name] = sp.csr_matrix(
                (z[f"{name}_data"], z[f"{name}_indices"], z[f"{name}_indptr"]), shape=tuple(z[f"{name}_shape"])
            )
        kwargs = {k: header[k] for k in ("categorical", "numerical") if header.get(k) is not None}
        dv = vectorize.from_feature_names([str(n) for n in z["feature_names"]], **kwargs)
        rides = {}
        for part in ("val", "train"):
            if f"{part}_pickup_us" in z.files:
                rides[part] = pd.DataFrame(
                    {
                        "pickup_datetime": z[f"{part}_pickup_us"].astype("datetime64[us]"),
                        "PULocationID": z[f"{part}_PULocationID"].astype(np.int64),
                        "DOLocationID": z[f"{part}_DOLocationID"].astype(np.int64),
                        "trip_distance": z[f"{part}_trip_distance"].astype(np.float64),
                    }
                )
        return TrainingSet(
            X_train=mats["X_train"],
            X_val=mats["X_val"],
            y_train=z["y_train"],
            y_val=z["y_val"],
            vectorizer=dv,
            info=header.get("info", {}),
            val_rides=rides.get("val"),
            train_rides=rides.get("train"),
        )


def example_records(ts: TrainingSet, rows: int = 5) -> list[dict]:
    """Raw request records of the first training rides (the MLflow input example): the
    request fields every model of ``ts`` needs, ``pickup_datetime`` (ISO 8601) included when
    the set uses extended features."""
    if ts.train_rides is not None:
        first = ts.train_rides.iloc[:rows]
        records = [
            {"PULocationID": int(pu), "DOLocationID": int(do), "trip_distance": float(distance)}
            for pu, do, distance in zip(first["PULocationID"], first["DOLocationID"], first["trip_distance"])
        ]
        if ts.extended_features:
            for record, pickup in zip(records, first["pickup_datetime"]):
                record["pickup_datetime"] = pd.Timestamp(pickup).isoformat()
        if not records:
            raise ValueError("cannot build an MLflow input example: the training set holds no rides")
        return records
    names = ts.feature_names
    X = ts.X_train[:rows].tocsr()
    records = []
    for i in range(X.shape[0]):
        record: dict = {}
        for j, value in zip(X.indices[X.indptr[i] : X.indptr[i + 1]], X.data[X.indptr[i] : X.indptr[i + 1]]):
            name = names[j]
            if name.startswith("PU_DO="):
                pu, do = name.split("=", 1)[1].split("_")
                record["PULocationID"], record["DOLocationID"] = int(pu), int(do)
            elif name == "trip_distance":
                record["trip_distance"] = float(value)
        record.setdefault("trip_distance", 0.0)  # stored zeros are implicit in CSR
        if "PULocationID" in record:
            records.append(record)
    if not records:
        raise ValueError("cannot build an MLflow input example: no PU_DO feature in the first training rows")
    return records
