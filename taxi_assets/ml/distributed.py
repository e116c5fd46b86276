"""One boosted model trained across the workers of a Dask cluster, each worker reading its own
months' cleaned rides.

Above ``min_rows`` training rides (``TAXI_DISTRIBUTED_MIN_ROWS``, default 2,000,000: a year of
yellow rides is ~40 million, a year of green 742k), XGBoost and LightGBM train with their Dask
integrations (``xgboost.dask``, ``lightgbm.dask.DaskLGBMRegressor``) on the cluster the step
can reach (:func:`cluster_client`): the one it runs on under ``TAXI_EXECUTOR=dask``, else the
scheduler at ``TAXI_DASK_ADDRESS``. Without a cluster, or below the size, :func:`tune_auto` is
:func:`taxi_assets.ml.tuning.tune` on one process.

What travels where
------------------
The driver (the model step) fits the representation exactly as on one machine
(:func:`taxi_assets.ml.representation.fit_representation` on the training set: the distance
clip, the zone and pair categories, a few thousand numbers) and decides the early-stopping
slice's first pickup time. One Dask task per month then reads that month's cleaned rides
(``{data_root}/{taxi}/cleaned_trips/{month}.parquet``: a local path or an object-store URL,
the same file the training set was built from) on a worker, keeps the training rides (picked
up before the validation month), encodes them with the fitted step and keeps the result in
the worker's memory. The matrices are Dask arrays over those pieces: the driver never ships a
matrix, and the boosters train where the pieces are (XGBoost: ``DaskDMatrix`` + one
``xgb.train`` per worker synchronised by its collective; LightGBM: one local ``lightgbm``
per worker joined by its socket network). The validation month is scored on the driver from
the training set it already holds, exactly as :func:`~taxi_assets.ml.tuning.tune` scores
(the same predictor, the same rows), so the two paths are comparable to the last digit of
the method.

The result is the same kind of model as on one machine: a plain ``xgboost.Booster`` or
``lightgbm.Booster`` inside a :class:`~taxi_assets.ml.predictor.TripDurationPredictor` with
the same feature step, so MLflow logging, the leaderboard and serving do not know the
difference.

Same search, same early stopping
--------------------------------
Hyperopt TPE is seeded as in ``tune``; each trial fits on the training rides minus the
early-stopping slice (the window's last week), stops on that slice, and is scored on the
validation month; the best trial is refitted on the whole window for the scaled rounds
(:func:`~taxi_assets.ml.estimators.refit_rounds`). One difference on purpose: on one process
the boosters' trials run on a sample of ``max_search_rows`` rides (memory and time of one
machine); across workers every ride is in some worker's memory, so the trials use them all.
XGBoost stops natively (its Dask ``evals`` are evaluated across workers). LightGBM's Dask
interface has no early stopping (each worker would stop on its own part): it trains
``num_boost_round`` rounds and the best round count is read on the driver from the slice's
per-round error (the boosters' predictions summed round by round), then set as the
booster's ``best_iteration``; give it a tighter ``num_boost_round`` on big windows.

Distributed histograms are built from per-worker quantile sketches, so the splits differ
slightly from one process's: the 12-month green window scores within 1% of the single-process
model (``taxi_assets_tests/test_distributed_training.py``; figures in
``benchmarks/distributed_training.py``).

Nothing here imports Dagster; dask, distributed, xgboost and lightgbm are imported when used.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from taxi_assets.ml.dataset import TrainingSet, early_stopping_mask
from taxi_assets.ml.estimators import EstimatorSpec, clean_params, refit_rounds
from taxi_assets.ml.metrics import baseline_rmse, regression_metrics
from taxi_assets.ml.predictor import TripDurationPredictor
from taxi_assets.ml.representation import FeatureStep, fit_representation
from taxi_assets.ml.tuning import TrialResult, TuningResult, tune

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


# --- the search ---------------------------------------------------------------------------------


def tune_distributed(
    spec: EstimatorSpec,
    training_set: TrainingSet,
    sources: Mapping[str, str],
    client,
    max_evaluations: int,
    random_state: int,
    on_trial: Callable[[TrialResult], None] | None = None,
    profile: str = "quick",
    **spec_overrides: Any,
) -> TuningResult:
    """:func:`~taxi_assets.ml.tuning.tune` for XGBoost / LightGBM on a Dask cluster.

    ``sources`` maps each month of the training set's window (``training_set.info["months"]``)
    to its cleaned rides (path or URL); ``client`` is a ``distributed.Client``.
    """
    from hyperopt import STATUS_OK, Trials, fmin, tpe

    if not supports(spec):
        raise ValueError(f"{spec.name}: no Dask training path (only {', '.join(DISTRIBUTED_ESTIMATORS)})")
    if max_evaluations < 1:
        raise ValueError(f"{spec.name}: max_evaluations must be at least 1, got {max_evaluations}")
    ts = training_set
    window = list(ts.info.get("months") or sources)
    missing = [m for m in window if m not in sources]
    if missing:
        raise ValueError(f"{spec.name}: no cleaned rides given for {', '.join(missing)} of the window {window}")
    space = spec.search_space(random_state, profile=profile, **spec_overrides)
    _, fit_options = spec.split_overrides(spec_overrides, space)
    fit, refit = _FIT[spec.name]
    started = time.perf_counter()

    step = fit_representation(spec.representation, ts)
    rides = ts.rides("train")
    pickups = rides["pickup_datetime"].to_numpy(dtype="datetime64[us]")
    stop = early_stopping_mask(pickups)
    es_from = pickups[stop].min()
    boundary = np.datetime64(pd.Timestamp(ts.info["boundary"]).to_datetime64(), "us")
    X_val = step.from_training_set(ts, "val")
    extra = {}
    if spec.name == "lightgbm":  # the slice LightGBM's best round is read on (module docstring)
        es_rides = rides.loc[stop]
        extra = {"X_es": step.encode(es_rides["PULocationID"].to_numpy(), es_rides["DOLocationID"].to_numpy(),
                                     es_rides["trip_distance"].to_numpy(),
                                     pickups[stop] if step.extended else None),
                 "y_es": np.asarray(ts.y_train)[stop]}  # fmt: skip

    parts = MonthParts(client, {m: sources[m] for m in window}, step, boundary, es_from)
    try:
        workers = sorted(set(parts.workers.values()))
        training = {
            **step.describe(), "distributed": True, "dask_workers": len(client.scheduler_info(n_workers=-1)["workers"]),
            "read_by": dict(parts.workers), "window_rides": int(len(ts.y_train)), "fitted_rides": parts.fitted_rows,
            "early_stopping_rides": parts.es_rows_total, "early_stopping_from": str(es_from), "train_rides": parts.fitted_rows + parts.es_rows_total,
        }  # fmt: skip
        trials: list[TrialResult] = []
        best: dict[str, Any] = {"loss": np.inf, "model": None, "params": None, "index": 0}

        def objective(sampled: dict[str, Any]) -> dict[str, Any]:
            params = clean_params(sampled)
            t0 = time.perf_counter()
            model = fit(client, parts, step, params, **fit_options, **extra)
            loss = regression_metrics(ts.y_val, TripDurationPredictor(step, model, spec.name).predict_features(X_val))["rmse"]
            index = len(trials) + 1
            if loss < best["loss"]:
                best.update(loss=loss, model=model, params=params, index=index)
            trial = TrialResult(index, max_evaluations, params, loss, float(best["loss"]), time.perf_counter() - t0)
            trials.append(trial)
            if on_trial is not None:
                on_trial(trial)
            return {"loss": loss, "status": STATUS_OK}

        fmin(fn=objective, space=space, algo=tpe.suggest, max_evals=max_evaluations, trials=Trials(),
             rstate=np.random.default_rng(random_state), show_progressbar=False)  # fmt: skip
        if best["model"] is None:
            raise RuntimeError(f"{spec.name}: no trial produced a finite validation RMSE; check the training set")
        t0 = time.perf_counter()
        model = refit(client, parts, step, best["params"], best["model"], **fit_options)
        training.update(refit_seconds=round(time.perf_counter() - t0, 3), refit_rides=parts.fitted_rows + parts.es_rows_total,
                        best_trial_rmse=float(best["loss"]), workers_reading=len(workers))  # fmt: skip
    finally:
        parts.release()
    predictor = TripDurationPredictor(step, model, spec.name)
    return TuningResult(
        estimator=spec.name,
        best_params=best["params"],
        predictor=predictor,
        metrics=regression_metrics(ts.y_val, predictor.predict_features(X_val)),
        baseline_rmse=baseline_rmse(ts.y_train, ts.y_val),
        trials=trials,
        train_seconds=time.perf_counter() - started,
        fit_options=fit_options,
        best_trial=best["index"],
        training=training,
    )


def tune_auto(
    spec: EstimatorSpec,
    training_set: TrainingSet,
    max_evaluations: int,
    random_state: int,
    *,
    sources: Callable[[str], str],
    min_rows: int,
    dask_address: str | None = None,
    log: Callable[[str], None] | None = None,
    on_trial: Callable[[TrialResult], None] | None = None,
    profile: str = "quick",
    n_jobs: int | None = None,
    **spec_overrides: Any,
) -> TuningResult:
    """``tune`` on one process (``n_jobs`` threads), or :func:`tune_distributed` when ``spec``
    is a booster, the training window holds at least ``min_rows`` rides and a cluster is
    reachable (:func:`cluster_client`). ``sources(month)`` names a month's cleaned rides."""
    rows = len(training_set.y_train)
    if should_distribute(spec, rows, min_rows) and not training_set.info.get("months"):
        if log:
            log(f"{spec.name}: this training set does not name its months (written by an older version): training on this process")
    elif should_distribute(spec, rows, min_rows):
        with cluster_client(dask_address) as client:
            if client is not None:
                if log:
                    log(f"{spec.name}: {rows:,} training rides >= {min_rows:,}: training across the Dask cluster's workers")
                months = list(training_set.info.get("months") or [])
                return tune_distributed(spec, training_set, {m: sources(m) for m in months}, client, max_evaluations,
                                        random_state, on_trial=on_trial, profile=profile, **spec_overrides)  # fmt: skip
            if log:
                log(f"{spec.name}: {rows:,} training rides >= {min_rows:,} but no Dask cluster (TAXI_EXECUTOR=dask or "
                    "TAXI_DASK_ADDRESS): training on this process")  # fmt: skip
    return tune(spec, training_set, max_evaluations, random_state, on_trial=on_trial, profile=profile, n_jobs=n_jobs,
                **spec_overrides)  # fmt: skip
