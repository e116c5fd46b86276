"""The training set: a time split of cleaned rides, vectorized, stored as one ``.npz`` file.

Partition M validates on month M and trains on the months before it. Like the course's
Mage pipeline, the cleaned rides of the whole window are pooled and split on pickup time at
the first instant of month M: a ride in February's file picked up on 31 January trains, a
ride in January's file picked up in February validates. The vectorizer is fitted on the
training rows only, so validation rows with a pair never seen in training keep only their
distance feature, exactly as at serving time.

On disk a training set is a single compressed ``.npz`` (CSR parts, targets, feature names
and a JSON header), so one atomic rename publishes it and no pickle is involved.
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


def build_training_set(cleaned: pd.DataFrame, boundary: pd.Timestamp, info: dict | None = None) -> TrainingSet:
    """Split pooled cleaned rides at ``boundary`` and vectorize (fit on the training side)."""
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
        info=dict(info or {}, boundary=str(boundary)),
        val_rides=_rides(val),
    )


RIDE_COLUMNS = ["pickup_datetime", "PULocationID", "DOLocationID", "trip_distance"]


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
    if ts.val_rides is not None:
        arrays["val_pickup_us"] = ts.val_rides["pickup_datetime"].to_numpy(dtype="datetime64[us]").astype(np.int64)
        for column in ("PULocationID", "DOLocationID", "trip_distance"):
            arrays[f"val_{column}"] = ts.val_rides[column].to_numpy()
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
        val_rides = None
        if "val_pickup_us" in z.files:
            val_rides = pd.DataFrame(
                {
                    "pickup_datetime": z["val_pickup_us"].astype("datetime64[us]"),
                    **{c: z[f"val_{c}"] for c in ("PULocationID", "DOLocationID", "trip_distance")},
                }
            )
        return TrainingSet(
            X_train=mats["X_train"],
            X_val=mats["X_val"],
            y_train=z["y_train"],
            y_val=z["y_val"],
            vectorizer=dv,
            info=header.get("info", {}),
            val_rides=val_rides,
        )


def example_records(ts: TrainingSet, rows: int = 5) -> list[dict]:
    """Raw request records rebuilt from the first training rows (the MLflow input example)."""
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
