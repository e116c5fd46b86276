"""What differs when a booster trains across a Dask cluster (the search loop is ml/tuning.py's).

XGBoost and LightGBM windows of at least ``min_rows`` rides train with ``xgboost.dask`` /
``lightgbm.dask`` on the cluster the step can reach (:func:`cluster_client`). The driver fits
the representation and encodes the selection slice (the window's last week); one Dask task per
month reads that month's cleaned rides on a worker and encodes its training rides there, so
no matrix is shipped. Trials are scored on the slice on the driver, exactly as on one process;
the kept model is the same ``Booster`` inside the same predictor. Differences on purpose: the
trials use every ride (one process searches a sample), and LightGBM's Dask interface cannot
early-stop, so it trains ``num_boost_round`` rounds and the best count is read on the driver
from the slice's per-round error. Histograms from per-worker sketches differ slightly: the
12-month green window scores within 1% of one process (tests/benchmarks). No Dagster here.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from taxi_assets.ml.dataset import TrainingSet, selection_mask
from taxi_assets.ml.estimators import EstimatorSpec, refit_rounds, training_rows
from taxi_assets.ml.predictor import TripDurationPredictor
from taxi_assets.ml.representation import FeatureStep
from taxi_assets.ml.tuning import TuningResult, tune

DISTRIBUTED_ESTIMATORS = ("xgboost", "lightgbm")
RIDE_COLUMNS = ["pickup_datetime", "PULocationID", "DOLocationID", "trip_distance", "duration"]


def supports(spec: EstimatorSpec) -> bool:
    """Whether ``spec`` has a Dask training path here."""
    return spec.name in DISTRIBUTED_ESTIMATORS and spec.representation == "categorical"


def should_distribute(spec: EstimatorSpec, train_rows: int, min_rows: int) -> bool:
    return supports(spec) and train_rows >= min_rows


@contextlib.contextmanager
def cluster_client(address: str | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` on the cluster this code can reach, or ``None``.

    Inside a Dask task (a step under ``TAXI_EXECUTOR=dask``): ``worker_client()``, which
    *secedes* the task from its worker's thread pool while the block runs, so the worker's
    one slot is free for the training tasks the step submits (otherwise a single-thread
    worker would wait for itself). Elsewhere: a client of ``address`` (``TAXI_DASK_ADDRESS``)
    when set, else ``None``. Needs the ``dask`` extra only when a cluster is actually there.
    """
    try:
        from distributed import get_worker, worker_client
    except ImportError:
        if address:
            raise RuntimeError('training on a Dask cluster needs dask and distributed: pip install -e ".[dask]"') from None
        yield None
        return
    try:
        get_worker()
        inside = True
    except ValueError:
        inside = False
    if inside:
        with worker_client() as client:
            yield client
        return
    if not address:
        yield None
        return
    from distributed import Client

    with Client(address, timeout=30) as client:
        yield client


# --- reading and encoding on the workers ------------------------------------------------------


def _read_rides(source: str) -> pd.DataFrame:
    from taxi_assets.io.storage import as_path, is_remote

    path = as_path(source)
    if is_remote(path):
        with path.open("rb") as handle:
            return pd.read_parquet(handle, columns=RIDE_COLUMNS)
    return pd.read_parquet(path, columns=RIDE_COLUMNS)


def encode_month(source: str, step: FeatureStep, boundary: np.datetime64, es_from: np.datetime64) -> dict[str, Any]:
    """One month's training rides, encoded (runs in a worker): ``X``/``y`` of the rides fitted
    on, ``X_es``/``y_es`` of the early-stopping slice, and which worker read them."""
    rides = _read_rides(source)
    pickups = rides["pickup_datetime"].to_numpy(dtype="datetime64[us]")
    train = pickups < boundary
    rides, pickups = rides.loc[train], pickups[train]
    X = step.encode(rides["PULocationID"].to_numpy(), rides["DOLocationID"].to_numpy(), rides["trip_distance"].to_numpy(),
                    pickups if step.extended else None)  # fmt: skip
    y = rides["duration"].to_numpy(dtype=np.float64)
    stop = pickups >= es_from
    try:
        from distributed import get_worker

        worker = get_worker().address
    except (ImportError, ValueError):
        worker = "local"
    return {"X": X[~stop], "y": y[~stop], "X_es": X[stop], "y_es": y[stop], "worker": worker}


def _piece(part: dict, name: str):
    return part[name]


def _sizes(part: dict) -> tuple[int, int, str]:
    return len(part["y"]), len(part["y_es"]), part["worker"]


class MonthParts:
    """The encoded months, held by the workers that read them, as Dask arrays."""

    def __init__(self, client, sources: Mapping[str, str], step: FeatureStep, boundary, es_from):
        import dask
        import dask.array as da

        self.client = client
        self.futures = {
            month: client.submit(encode_month, source, step, boundary, es_from, pure=False, key=f"taxi-encode-{month}-{os.getpid()}-{time.time_ns()}")
            for month, source in sources.items()
        }
        sizes = dict(zip(self.futures, client.gather([client.submit(_sizes, f, pure=False) for f in self.futures.values()])))
        self.workers = {month: worker for month, (_, _, worker) in sizes.items()}
        self.rows = {month: fit for month, (fit, _, _) in sizes.items()}
        self.es_rows = {month: es for month, (_, es, _) in sizes.items()}
        width = step.num_features

        def stacked(name: str, count: Mapping[str, int], matrix: bool):
            pieces = []
            for month, future in self.futures.items():
                n = count[month]
                if n == 0:
                    continue
                delayed = dask.delayed(_piece)(future, name)
                shape = (n, width) if matrix else (n,)
                pieces.append(da.from_delayed(delayed, shape=shape, dtype=np.float32 if matrix else np.float64))
            if not pieces:
                raise ValueError(f"no training rides in the window's months for {name!r}")
            return da.concatenate(pieces)

        self.X, self.y = stacked("X", self.rows, True), stacked("y", self.rows, False)
        self.X_es, self.y_es = stacked("X_es", self.es_rows, True), stacked("y_es", self.es_rows, False)
        self.X, self.y, self.X_es, self.y_es = client.persist([self.X, self.y, self.X_es, self.y_es])
        self.X_all, self.y_all = da.concatenate([self.X, self.X_es]), da.concatenate([self.y, self.y_es])

    @property
    def fitted_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def es_rows_total(self) -> int:
        return sum(self.es_rows.values())

    def release(self) -> None:
        for future in self.futures.values():
            future.release()


# --- the two boosters on Dask -----------------------------------------------------------------


def _fit_xgboost(client, parts: MonthParts, step, params, *, early_stopping_rounds: int = 10, num_boost_round: int = 1000, **_):
    import xgboost as xgb
    import xgboost.dask  # noqa: F401 - not imported by xgboost itself

    kwargs = {"feature_types": step.feature_types, "feature_names": step.feature_names, "enable_categorical": True}
    train = xgb.dask.DaskDMatrix(client, parts.X, parts.y, **kwargs)
    stop = xgb.dask.DaskDMatrix(client, parts.X_es, parts.y_es, **kwargs)
    out = xgb.dask.train(
        client, {"tree_method": "hist", **params, "verbosity": 0}, train, num_boost_round=int(num_boost_round),
        evals=[(stop, "early_stopping")], early_stopping_rounds=int(early_stopping_rounds), verbose_eval=False,
    )  # fmt: skip
    booster = out["booster"]
    booster.set_attr(fitted_rows=str(parts.fitted_rows))
    return booster


def _refit_xgboost(client, parts: MonthParts, step, params, model, **_):
    import xgboost as xgb
    import xgboost.dask  # noqa: F401 - not imported by xgboost itself

    best = int(model.best_iteration) + 1
    rounds = refit_rounds(best, parts.fitted_rows, parts.fitted_rows + parts.es_rows_total)
    kwargs = {"feature_types": step.feature_types, "feature_names": step.feature_names, "enable_categorical": True}
    whole = xgb.dask.DaskDMatrix(client, parts.X_all, parts.y_all, **kwargs)
    booster = xgb.dask.train(client, {"tree_method": "hist", **params, "verbosity": 0}, whole, num_boost_round=rounds,
                             verbose_eval=False)["booster"]  # fmt: skip
    booster.set_attr(early_stopped_rounds=str(best))
    return booster


def _lgb_params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {"objective": "regression", **params, "verbose": -1, "deterministic": True, "force_col_wise": True}


def best_lightgbm_rounds(booster, X_es: np.ndarray, y_es: np.ndarray) -> int:
    """The round count (1-based) with the lowest squared error on the early-stopping slice,
    from the trees' raw outputs summed round by round (one pass over the trees)."""
    total = booster.current_iteration()
    running = np.zeros(len(y_es), dtype=np.float64)
    best, best_loss = 1, np.inf
    for i in range(total):
        running += booster.predict(X_es, start_iteration=i, num_iteration=1, raw_score=True)
        loss = float(np.mean((running - y_es) ** 2))
        if loss < best_loss:
            best, best_loss = i + 1, loss
    return best


def _fit_lightgbm(client, parts: MonthParts, step, params, *, num_boost_round: int = 2000, X_es=None, y_es=None, **_):
    from lightgbm.dask import DaskLGBMRegressor

    model = DaskLGBMRegressor(client=client, n_estimators=int(num_boost_round), **_lgb_params(params))
    model.fit(parts.X, parts.y, categorical_feature=step.categorical_columns, feature_name=step.feature_names)
    booster = model.booster_
    booster.best_iteration = best_lightgbm_rounds(booster, X_es, y_es)
    booster.fitted_rows = parts.fitted_rows
    return booster


def _refit_lightgbm(client, parts: MonthParts, step, params, model, **_):
    from lightgbm.dask import DaskLGBMRegressor

    best = int(model.best_iteration)
    rounds = refit_rounds(best, parts.fitted_rows, parts.fitted_rows + parts.es_rows_total)
    refit = DaskLGBMRegressor(client=client, n_estimators=rounds, **_lgb_params(params))
    refit.fit(parts.X_all, parts.y_all, categorical_feature=step.categorical_columns, feature_name=step.feature_names)
    booster = refit.booster_
    booster.early_stopped_rounds = best
    return booster


_FIT = {"xgboost": (_fit_xgboost, _refit_xgboost), "lightgbm": (_fit_lightgbm, _refit_lightgbm)}


# --- the backend the search loop runs on -------------------------------------------------------


class DaskTraining:
    """:class:`~taxi_assets.ml.tuning.Training` across a Dask cluster: each worker encodes its
    months' training rides (the fitted step travels to it); the selection slice (the window's
    last week) is encoded on the driver, where every trial is scored as on one process."""

    def __init__(self, client, sources: Mapping[str, str], spec: EstimatorSpec, step: FeatureStep, ts: TrainingSet,
                 random_state: int, threads: int, fit_options: dict[str, Any]):  # fmt: skip
        from taxi_assets.ml.tuning import MAX_SELECTION_ROWS

        if not supports(spec):
            raise ValueError(f"{spec.name}: no Dask training path (only {', '.join(DISTRIBUTED_ESTIMATORS)})")
        window = list(ts.info.get("months") or sources)
        missing = [m for m in window if m not in sources]
        if missing:
            raise ValueError(f"{spec.name}: no cleaned rides given for {', '.join(missing)} of the window {window}")
        self.client, self.spec, self.step, self.fit_options = client, spec, step, fit_options
        self._fit, self._refit = _FIT[spec.name]
        rides = ts.rides("train")
        pickups = rides["pickup_datetime"].to_numpy(dtype="datetime64[us]")
        chosen = selection_mask(pickups)
        selection_from = pickups[chosen].min()
        boundary = np.datetime64(pd.Timestamp(ts.info["boundary"]).to_datetime64(), "us")
        picked = rides.loc[chosen]
        self.X_slice = step.encode(picked["PULocationID"].to_numpy(), picked["DOLocationID"].to_numpy(),
                                   picked["trip_distance"].to_numpy(), pickups[chosen] if step.extended else None)  # fmt: skip
        self.y_slice = np.asarray(ts.y_train, dtype=np.float64)[chosen]
        scored = training_rows(len(self.y_slice), MAX_SELECTION_ROWS, random_state)
        self.selection_X = self.X_slice if scored is None else self.X_slice[scored]
        self.selection_y = self.y_slice if scored is None else self.y_slice[scored]
        self.parts = MonthParts(client, {m: sources[m] for m in window}, step, boundary, selection_from)
        self.facts = {
            "distributed": True, "dask_workers": len(client.scheduler_info(n_workers=-1)["workers"]),
            "read_by": dict(self.parts.workers), "workers_reading": len(set(self.parts.workers.values())),
            "window_rides": int(len(ts.y_train)), "fitted_rides": self.parts.fitted_rows,
            "selection_rides": self.parts.es_rows_total, "selection_from": str(selection_from),
            "train_rides": self.parts.fitted_rows + self.parts.es_rows_total,
        }  # fmt: skip

    def fit(self, params):
        return self._fit(self.client, self.parts, self.step, params, X_es=self.X_slice, y_es=self.y_slice, **self.fit_options)

    def predict_selection(self, model) -> np.ndarray:
        return TripDurationPredictor(self.step, model, self.spec.name).predict_features(self.selection_X)

    def refit(self, params, model):
        return self._refit(self.client, self.parts, self.step, params, model, **self.fit_options)

    def close(self) -> None:
        self.parts.release()


def dask_backend(client, sources: Mapping[str, str]):
    """The ``backend`` argument of :func:`~taxi_assets.ml.tuning.tune` for ``client``'s cluster;
    ``sources`` maps each month of the window to its cleaned rides (path or URL)."""

    def build(spec, step, ts, random_state, threads, fit_options) -> DaskTraining:
        return DaskTraining(client, sources, spec, step, ts, random_state, threads, fit_options)

    return build


def tune_on_cluster_or_here(
    spec: EstimatorSpec,
    training_set: TrainingSet,
    max_evaluations: int,
    random_state: int,
    *,
    sources: Callable[[str], str],
    min_rows: int,
    dask_address: str | None = None,
    log: Callable[[str], None] | None = None,
    **tune_kwargs: Any,
) -> TuningResult:
    """:func:`~taxi_assets.ml.tuning.tune` across the Dask cluster when ``spec`` is a booster,
    the window holds at least ``min_rows`` rides and a cluster is reachable
    (:func:`cluster_client`); on this process otherwise. ``sources(month)`` names a month's
    cleaned rides."""
    rows = len(training_set.y_train)
    months = list(training_set.info.get("months") or [])
    log = log or (lambda message: None)
    if should_distribute(spec, rows, min_rows) and not months:
        log(f"{spec.name}: this training set does not name its months (written by an older version): training on this process")
    elif should_distribute(spec, rows, min_rows):
        with cluster_client(dask_address) as client:
            if client is not None:
                log(f"{spec.name}: {rows:,} training rides >= {min_rows:,}: training across the Dask cluster's workers")
                backend = dask_backend(client, {m: sources(m) for m in months})
                return tune(spec, training_set, max_evaluations, random_state, backend=backend, **tune_kwargs)
            log(f"{spec.name}: {rows:,} training rides >= {min_rows:,} but no Dask cluster (TAXI_EXECUTOR=dask or "
                "TAXI_DASK_ADDRESS): training on this process")  # fmt: skip
    return tune(spec, training_set, max_evaluations, random_state, **tune_kwargs)
