"""MLflow tracking of model materializations, in plain Python (the Dagster resource is a thin
shell around :class:`TrackingStore`).

Layout (README, "MLflow"): one MLflow run per model materialization, tagged with the Dagster
run, asset, partition and estimator, holding its params, metrics and the logged pyfunc model
(registered as a new version of the estimator's registered model), and under it one child run
per hyperopt trial. Every run ends FINISHED when its block completes and FAILED (KILLED on
Ctrl-C) when it raises; only a killed process can leave one RUNNING. Outages fail fast and
named: MLflow's HTTP timeout and retries come from the settings (15 s, 2 retries, not 120 s
seven times), and :meth:`TrackingStore.check_reachable` probes the store before a model trains
(:class:`TrackingStoreUnavailable`, a transient error the step retries). A locked SQLite store
is waited for (:meth:`TrackingStore.patiently`); the only lock of our own is a file beside a
local sqlite store while that store and its experiment are created (:func:`_store_lock`), so
deployments with their own stores never wait for each other.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from taxi_assets.registry.names import ASSET_KEY_TAG, PARTITION_TAG, RUN_ID_TAG

if TYPE_CHECKING:
    from taxi_assets.ml.tuning import TrialResult, TuningResult

T = TypeVar("T")
SQLITE_PREFIX = "sqlite:///"
PARENT_RUN_TAG = "mlflow.parentRunId"
# How long a store operation waits for a locked SQLite store before it counts as an outage.
DEFAULT_LOCK_TIMEOUT_SECONDS = 45.0
# SQLite's "busy" and "locked" states (result codes and their extended forms, and their texts).
_BUSY_NAMES = ("SQLITE_BUSY", "SQLITE_LOCKED")
_BUSY_TEXTS = ("database is locked", "database table is locked", "database schema is locked", "database is busy")


class TrackingStoreUnavailable(RuntimeError):
    """The MLflow tracking store cannot be reached (network, timeout, 5xx) or stays locked:
    worth retrying later."""


def is_sqlite_busy(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it: MLflow wraps SQLAlchemy, which wraps sqlite3) is
    SQLite telling that another connection holds the database."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = getattr(exc, "sqlite_errorname", None) or getattr(getattr(exc, "orig", None), "sqlite_errorname", None)
        if name and name.startswith(_BUSY_NAMES):
            return True
        text = str(getattr(exc, "message", None) or exc).lower()
        if any(t in text for t in _BUSY_TEXTS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def with_busy_timeout(tracking_uri: str, seconds: float) -> str:
    """A ``sqlite:///`` URI with SQLite's busy timeout (``?timeout=``, read by SQLAlchemy's
    sqlite driver) unless it names one; other URIs as they are."""
    if sqlite_path(tracking_uri) is None or "timeout=" in tracking_uri.partition("?")[2]:
        return tracking_uri
    return f"{tracking_uri}{'&' if '?' in tracking_uri else '?'}timeout={seconds:g}"


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for servers and in-memory stores)."""
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return None
    path = tracking_uri[len(SQLITE_PREFIX) :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).expanduser()


def redact_uri(uri: str) -> str:
    """``uri`` without a password (``https://user:secret@host`` -> ``https://user:***@host``)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{netloc[-1]}"))


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


@contextlib.contextmanager
def tracking_uri_set(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking (and registry) URI at ``tracking_uri``, then
    restore exactly what was there: MLflow's explicit setting and its ``MLFLOW_TRACKING_URI``
    variable, which ``mlflow.set_tracking_uri`` also writes (MLflow's state, kept through
    MLflow's own accessor; not a setting of this project)."""
    import mlflow
    from mlflow.environment_variables import MLFLOW_TRACKING_URI
    from mlflow.tracking._tracking_service import utils as tracking_utils

    explicit = getattr(tracking_utils, "_tracking_uri", None)
    variable = MLFLOW_TRACKING_URI.get() if MLFLOW_TRACKING_URI.defined else None
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(explicit)
        if variable is None:
            MLFLOW_TRACKING_URI.unset()
        else:
            MLFLOW_TRACKING_URI.set(variable)


@contextlib.contextmanager
def _store_lock(db: Path) -> Iterator[None]:
    """An exclusive lock beside a local sqlite store (per store, never machine-wide), held
    while the store and its experiment are created: two processes running a fresh store's
    migrations at once fail."""
    import fcntl

    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".init-lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _not_a_busy_store(record: logging.LogRecord) -> bool:
    """False for MLflow's logged traceback of a busy SQLite store: the store waits for it."""
    return not (record.exc_info and record.exc_info[1] is not None and is_sqlite_busy(record.exc_info[1]))


def _quiet_mlflow_logs() -> None:
    """MLflow's INFO chatter ("Registered model ... already exists", run links) tells a pipeline
    user nothing: the asset metadata names the run, model and version (its progress bars are a
    setting, MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR, off by default). Nor does the traceback MLflow
    logs each time SQLite answers "database is locked": the store waits and retries, and names
    the store if the lock outlasts its bound."""
    for name in ("mlflow", "mlflow.tracking", "mlflow.store", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    database_log = logging.getLogger("mlflow.store.db.utils")
    if _not_a_busy_store not in database_log.filters:
        database_log.addFilter(_not_a_busy_store)


class TrackingStore:
    """One MLflow tracking store and experiment, as the pipeline uses them."""

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        artifact_location: str | None = None,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    ):
        """``lock_timeout``: seconds a store operation waits for a locked SQLite store (another
        run, ``mlflow ui``, a backup) before it fails as an outage (default 45; an operation
        already waiting inside MLflow may add up to its own 20 s)."""
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.artifact_location = artifact_location or None
        self.lock_timeout = float(lock_timeout)
        # The URI MLflow opens: the user's, with SQLite's busy timeout for a sqlite store.
        self.store_uri = with_busy_timeout(tracking_uri, self.lock_timeout)
        self._experiment_id: str | None = None
        _quiet_mlflow_logs()

    @property
    def label(self) -> str:
        return redact_uri(self.tracking_uri)

    @property
    def client(self) -> PatientClient:
        """An ``MlflowClient`` of this store whose calls wait out a locked SQLite store
        (:meth:`patiently`)."""
        return PatientClient(self)

    def mlflow_client(self):
        """The plain ``MlflowClient`` of this store (its calls fail on a lock as MLflow does)."""
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.store_uri, registry_uri=self.store_uri)

    def patiently(self, what: str, operation: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``operation(*args, **kwargs)``, retried while SQLite reports the store busy or locked,
        until ``lock_timeout`` seconds have passed since the first attempt; then
        :class:`TrackingStoreUnavailable` naming the store and ``what`` was being done. Any
        other error propagates as raised, at once.

        The embedded SQLite store is written by every model step, ``mlflow ui`` and backups;
        SQLite answers a writer that finds it locked with "database is locked" after its busy
        timeout (Python's default 5 s; MLflow's sessions set 20 s). So the store's URI carries
        SQLite's own busy timeout (``?timeout=``, :func:`with_busy_timeout`) and each operation
        that still meets a busy database is retried here."""
        started = time.monotonic()
        pause = 0.25
        while True:
            try:
                return operation(*args, **kwargs)
            except Exception as exc:
                if not is_sqlite_busy(exc):
                    raise
                waited = time.monotonic() - started
                if waited >= self.lock_timeout:
                    raise TrackingStoreUnavailable(
                        f"MLflow tracking store {self.label} is locked by another writer (SQLite: database is "
                        f"locked) and stayed locked for {waited:.0f}s while {what}; another run, `mlflow ui` or a "
                        "backup holds it"
                    ) from None
                time.sleep(min(pause, self.lock_timeout - waited))
                pause = min(pause * 2, 2.0)

    def check_reachable(self) -> None:
        """Raise :class:`TrackingStoreUnavailable` naming the URI unless the store answers."""
        if sqlite_path(self.tracking_uri) is not None:
            return  # a local file: creating it is part of experiment_id()
        started = time.monotonic()
        try:
            self.client.search_experiments(max_results=1)
        except Exception as exc:  # noqa: BLE001 - any failure to answer is an outage here
            raise TrackingStoreUnavailable(
                f"MLflow tracking store {self.label} is unreachable ({type(exc).__name__}: {_first_line(exc)}) "
                f"after {time.monotonic() - started:.0f}s; check MLFLOW_TRACKING_URI and that the server is up"
            ) from None

    def experiment_id(self) -> str:
        """The experiment's id, created with the artifact location if it does not exist."""
        if self._experiment_id is not None:
            return self._experiment_id
        db = sqlite_path(self.tracking_uri)
        with _store_lock(db) if db is not None else contextlib.nullcontext():
            self._experiment_id = self._get_or_create_experiment()
        return self._experiment_id

    def _get_or_create_experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        client = self.client
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            try:
                return client.create_experiment(self.experiment_name, artifact_location=self.artifact_location)
            except MlflowException:  # another process created it first (a server store)
                experiment = client.get_experiment_by_name(self.experiment_name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            raise RuntimeError(
                f"MLflow experiment {self.experiment_name!r} (id {experiment.experiment_id}) at {self.label} is "
                f"deleted: restore it (mlflow experiments restore --experiment-id {experiment.experiment_id}) "
                "or set MLFLOW_EXPERIMENT_NAME to another name"
            )
        return experiment.experiment_id

    @contextlib.contextmanager
    def model_run(self, *, estimator: str, tags: dict[str, str], run_name: str) -> Iterator[ModelRun]:
        """The MLflow run of one model materialization, active (fluent) inside the block.

        Ends FINISHED when the block completes, FAILED (KILLED on Ctrl-C) when it raises,
        with the error's first line as the ``error`` tag.
        """
        import mlflow

        self.check_reachable()
        experiment_id = self.experiment_id()
        client = self.client
        run_tags = {**{k: _tag_value(v) for k, v in tags.items()}, "estimator": estimator}
        created = client.create_run(experiment_id, run_name=run_name, tags=run_tags)
        run_id = created.info.run_id
        status = "FAILED"
        outage = False
        with tracking_uri_set(self.store_uri):
            try:
                self.patiently("starting the run", mlflow.start_run, run_id=run_id)
                yield ModelRun(self, run_id, experiment_id, run_tags)
                status = "FINISHED"
            except BaseException as exc:
                status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
                outage = isinstance(exc, TrackingStoreUnavailable)
                if not outage:  # a store that stays locked or down gets one try to end the run, below
                    with contextlib.suppress(Exception):
                        client.set_tag(run_id, "error", _tag_value(f"{type(exc).__name__}: {_first_line(exc)}"))
                raise
            finally:
                _end(self.mlflow_client() if outage else client, run_id, status, quick=outage)

    def register(self, name: str, model_uri: str, run_id: str | None, tags: dict[str, str], description: str = ""):
        """A new version of registered model ``name`` for ``model_uri`` (the name is created if
        missing), through the client so no "already exists" notice is printed."""
        from mlflow.exceptions import MlflowException

        client = self.client
        try:
            client.get_registered_model(name)
        except MlflowException:
            with contextlib.suppress(MlflowException):  # created meanwhile by another process
                client.create_registered_model(name, description=description or None)
        model_id = None
        if model_uri.startswith("models:/m-"):
            model_id = model_uri[len("models:/") :].split("/", 1)[0]
        # The registry resolves a logged model's URI through the process-wide tracking URI.
        with tracking_uri_set(self.store_uri):
            return client.create_model_version(
                name, source=model_uri, run_id=run_id, tags={k: _tag_value(v) for k, v in tags.items()}, model_id=model_id
            )


def _end(client, run_id: str, status: str, quick: bool = False) -> None:
    """End ``run_id`` with ``status`` (the fluent run too, so its stack is popped); never leave
    it RUNNING even if ending it the usual way failed. ``quick`` (the store is locked or down):
    one try, errors ignored, so the outage is reported without waiting for it twice."""
    import mlflow

    try:
        active = mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            mlflow.end_run(status)  # pops the fluent run first, then writes the status
        else:
            client.set_terminated(run_id, status)
    except Exception:
        if not quick:
            raise
    finally:
        if not quick:
            with contextlib.suppress(Exception):
                if client.get_run(run_id).info.status == "RUNNING":
                    client.set_terminated(run_id, "FAILED")


def _tag_value(value: Any) -> str:
    return str(value)[:5000]


def _params(values: dict[str, Any]):
    from mlflow.entities import Param

    return [Param(str(k), _tag_value(v)) for k, v in values.items()]


class PatientClient:
    """An ``MlflowClient`` of ``store`` whose method calls go through :meth:`TrackingStore.patiently`
    (a fresh client per call, so a store MLflow failed to open on a lock is opened again)."""

    def __init__(self, store: TrackingStore):
        self._store = store

    def __getattr__(self, name: str):
        if not callable(getattr(_client_class(), name, None)):
            return getattr(self._store.mlflow_client(), name)

        def call(*args: Any, **kwargs: Any):
            return self._store.patiently(name, lambda: getattr(self._store.mlflow_client(), name)(*args, **kwargs))

        return call


def _client_class():
    from mlflow.tracking import MlflowClient

    return MlflowClient


class ModelRun:
    """The MLflow run of one model materialization (active while the model trains)."""

    def __init__(self, store: TrackingStore, run_id: str, experiment_id: str, tags: dict[str, str]):
        self.store = store
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.tags = tags

    def log_config(self, config: dict[str, Any]) -> None:
        """The asset's run config, as ``config.<name>`` params."""
        self.store.client.log_batch(self.run_id, params=_params({f"config.{k}": v for k, v in config.items()}))

    def log_trial(self, trial: TrialResult) -> str:
        """One hyperopt trial as a finished child run (params, selection_rmse, best_selection_rmse, seconds)."""
        from mlflow.entities import Metric

        client = self.store.client
        now = int(time.time() * 1000)
        child = client.create_run(
            self.experiment_id,
            start_time=now - int(trial.seconds * 1000),
            run_name=f"{self.tags['estimator']}-trial-{trial.index:03d}",
            tags={**self.tags, PARENT_RUN_TAG: self.run_id, "trial": str(trial.index), "trials_total": str(trial.total)},
        )
        run_id = child.info.run_id
        try:
            client.log_batch(
                run_id,
                metrics=[
                    Metric("selection_rmse", float(trial.loss), now, 0),
                    Metric("best_selection_rmse", float(trial.best_loss), now, 0),
                    Metric("seconds", float(trial.seconds), now, 0),
                ],
                params=_params(trial.params),
            )
        except TrackingStoreUnavailable:
            with contextlib.suppress(Exception):  # one try: the store already made us wait
                self.store.mlflow_client().set_terminated(run_id, "FAILED", end_time=now)
            raise
        except BaseException:
            client.set_terminated(run_id, "FAILED", end_time=now)
            raise
        client.set_terminated(run_id, "FINISHED", end_time=now)
        return run_id

    def log_result(self, result: TuningResult, input_example, registered_model_name: str, model_name: str = "model"):
        """Best params, validation metrics, the trials table, and the pyfunc model registered as
        a new version of ``registered_model_name``. Returns ``(ModelInfo, ModelVersion)``."""
        from mlflow.entities import Metric

        from taxi_assets.registry.pyfunc import log_predictor

        client = self.store.client
        now = int(time.time() * 1000)
        metrics = {
            **result.metrics,
            "baseline_rmse": result.baseline_rmse,
            "selection_rmse": result.selection_rmse,
            "train_seconds": result.train_seconds,
            "trials": len(result.trials),
        }
        client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            params=_params({**result.best_params, **{f"fit.{k}": v for k, v in result.fit_options.items()}}),
        )
        trials = [
            {"trial": t.index, "selection_rmse": t.loss, "best_selection_rmse": t.best_loss, "seconds": t.seconds, "params": t.params}
            for t in result.trials
        ]
        client.log_text(self.run_id, json.dumps(trials, indent=1), "trials.json")
        info = self.store.patiently(
            "logging the model",
            log_predictor,
            result.predictor,
            model_name,
            input_example,
            tags={"estimator": result.estimator, PARTITION_TAG: self.tags.get(PARTITION_TAG, "")},
        )
        version = self.store.register(
            registered_model_name,
            info.model_uri,
            self.run_id,
            tags={
                PARTITION_TAG: self.tags.get(PARTITION_TAG, ""),
                RUN_ID_TAG: self.tags.get(RUN_ID_TAG, ""),
                ASSET_KEY_TAG: self.tags.get(ASSET_KEY_TAG, ""),
                "mlflow_run_id": self.run_id,
                "validation_rmse": f"{result.metrics['rmse']:.6f}",
                "beats_baseline": str(result.beats_baseline).lower(),
            },
            description=f"{result.estimator} models of the taxi trip-duration pipeline, one version per trained month.",
        )
        return info, version
