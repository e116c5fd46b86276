"""MLflow tracking for the model assets, built on ``dagster-mlflow``.

Resource key ``"mlflow"`` (:data:`MLFLOW_RESOURCE_KEY`); the definition is :data:`mlflow_resource`
(``build_mlflow_resource(...)`` for other stores, e.g. in tests).

What ``dagster-mlflow``'s ``mlflow_tracking`` does, and what this module adds
--------------------------------------------------------------------------------
``mlflow_tracking`` is a legacy function-style resource: at resource init (once per step
process) it calls ``mlflow.set_experiment``, looks for a run tagged ``dagster_run_id=<run>``
and resumes it, or starts one, then leaves that run active. Nothing ends it unless the job
carries its ``end_mlflow_on_run_finished`` hook (which only ends it after the *last node of
the job*, and asset jobs launched from the UI carry no hooks), so runs pile up as RUNNING.
Its "create experiment" also ignores the artifact location. This resource wraps it:

* the experiment is created first with the explicit artifact root
  (``SETTINGS.mlflow_artifact_location``), and a sqlite store's folder is created;
* the store/experiment creation and the search-or-create of the Dagster run's MLflow run are
  serialized with a file lock, so the multiprocess executor's parallel model steps (all
  initializing the resource at once) share one run instead of racing to create several, and
  do not run a fresh sqlite store's migrations twice (which fails);
* the nested runs are tagged ``dagster.run_id``, not ``dagster_run_id``: dagster-mlflow
  resumes the first run its tag search returns, which could otherwise be a trial run;
* teardown ends the Dagster run's MLflow run after every step: FAILED if any model step of
  this Dagster run failed (recorded as a ``taxi_failed.<asset>.<partition>`` tag, because a
  later step resuming the run resets it to RUNNING), else FINISHED. The next step of the
  same Dagster run resumes it, and the last one to finish leaves the final status;
* ``end_run`` keeps the ``end_mlflow_on_run_finished`` hook working if a job adds it.

Run layout: one MLflow run per Dagster run (dagster-mlflow's, tagged ``dagster_run_id``),
under it one run per model-asset materialization (:meth:`MlflowTracker.model_run`: tags
``dagster.run_id``, ``dagster.asset_key``, ``dagster.partition``, ``estimator``; params = the
best hyperparameters and the tuning config; metrics = validation rmse/mse/mae/r2,
baseline_rmse, train_seconds; the logged + registered pyfunc model), and under that one
child run per hyperopt trial (params + rmse). Nesting (rather than standalone model runs)
keeps what one Dagster run trained together, one click from the run id, while the tags let
you filter one estimator's history across runs. A model run ends FINISHED when the step
succeeds and FAILED (KILLED on interrupt) when it raises; a guard terminates it if ending
failed. Only a killed process (SIGKILL, OOM) can leave a run RUNNING.

Limit: the lock is per machine. With an executor that runs each step in its own pod, two
parallel steps can still create two MLflow runs for one Dagster run (both tagged with it).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from taxi_assets.settings import SETTINGS

if TYPE_CHECKING:
    from taxi_assets.ml.tuning import TrialResult, TuningResult

MLFLOW_RESOURCE_KEY = "mlflow"
FAILED_TAG_PREFIX = "taxi_failed."
RUN_ID_TAG = "dagster.run_id"  # on model and trial runs (dagster-mlflow's own run has dagster_run_id)
ASSET_KEY_TAG = "dagster.asset_key"
PARTITION_TAG = "dagster.partition"
PARENT_RUN_TAG = "mlflow.parentRunId"
_LOCK_FILE = Path(tempfile.gettempdir()) / "taxi-assets-mlflow-run.lock"


def prepare_store(tracking_uri: str) -> None:
    """Create the folder of a local sqlite store (MLflow creates the file, not the folders)."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        path = tracking_uri[len(prefix) :].split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, created with ``artifact_location`` if it does not exist."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    prepare_store(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location or None)
        except MlflowException as exc:  # another process created it first
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            del exc
    if experiment.lifecycle_stage == "deleted":
        raise RuntimeError(
            f"MLflow experiment {name!r} (id {experiment.experiment_id}) at {tracking_uri} is deleted: restore "
            f"it (mlflow experiments restore --experiment-id {experiment.experiment_id}) or set "
            "MLFLOW_EXPERIMENT_NAME to another name"
        )
    return experiment.experiment_id


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    """Serialize dagster-mlflow's search-or-create across the step processes of this machine."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, parallel steps may create duplicate runs
        yield
        return
    with open(_LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _terminate(client, run_id: str, status: str) -> None:
    """End ``run_id`` with ``status``: via the fluent API if it is this thread's active run
    (so the fluent stack is popped too), else directly in the store."""
    import mlflow

    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        mlflow.end_run(status)
    else:
        client.set_terminated(run_id, status)


def _tag_value(value: Any) -> str:
    return str(value)[:5000]


class ModelRun:
    """The MLflow run of one model-asset materialization (active while the asset trains)."""

    def __init__(self, tracker: MlflowTracker, run_id: str, experiment_id: str, tags: dict[str, str]):
        self.tracker = tracker
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.tags = tags

    def log_config(self, config: dict[str, Any]) -> None:
        """The run config of the asset, as ``config.<name>`` params."""
        self.tracker.client.log_batch(self.run_id, params=_params({f"config.{k}": v for k, v in config.items()}))

    def log_trial(self, trial: TrialResult) -> str:
        """One hyperopt trial as a finished child run (params, rmse, best_rmse, seconds)."""
        from mlflow.entities import Metric

        client = self.tracker.client
        now = int(time.time() * 1000)
        child = client.create_run(
            self.experiment_id,
            start_time=now - int(trial.seconds * 1000),
            run_name=f"{self.tags['estimator']}-trial-{trial.index:03d}",
            tags={
                **self.tags,
                PARENT_RUN_TAG: self.run_id,
                "trial": str(trial.index),
                "trials_total": str(trial.total),
            },
        )
        run_id = child.info.run_id
        status = "FAILED"
        try:
            client.log_batch(
                run_id,
                metrics=[
                    Metric("rmse", float(trial.loss), now, 0),
                    Metric("best_rmse", float(trial.best_loss), now, 0),
                    Metric("seconds", float(trial.seconds), now, 0),
                ],
                params=_params(trial.params),
            )
            status = "FINISHED"
        finally:
            client.set_terminated(run_id, status, end_time=now)
        return run_id

    def log_result(
        self,
        result: TuningResult,
        input_example,
        registered_model_name: str,
        model_name: str = "model",
    ):
        """Best params, validation metrics, the trials table and the registered pyfunc model.

        Returns mlflow's ``ModelInfo``; the new registry version is tagged with the month, the
        validation RMSE and whether the model beats the baseline.
        """
        from mlflow.entities import Metric

        from taxi_assets.serving.pyfunc import log_predictor

        client = self.tracker.client
        now = int(time.time() * 1000)
        metrics = {
            **result.metrics,
            "baseline_rmse": result.baseline_rmse,
            "train_seconds": result.train_seconds,
            "trials": len(result.trials),
        }
        client.log_batch(
            self.run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            params=_params({**result.best_params, **{f"fit.{k}": v for k, v in result.fit_options.items()}}),
        )
        trials = [
            {"trial": t.index, "rmse": t.loss, "best_rmse": t.best_loss, "seconds": t.seconds, "params": t.params}
            for t in result.trials
        ]
        client.log_text(self.run_id, json.dumps(trials, indent=1), "trials.json")
        info = log_predictor(
            result.predictor,
            model_name,
            input_example,
            registered_model_name=registered_model_name,
            tags={"estimator": result.estimator, PARTITION_TAG: self.tags.get(PARTITION_TAG, "")},
        )
        version = getattr(info, "registered_model_version", None)
        if version is not None:
            for key, value in {
                PARTITION_TAG: self.tags.get(PARTITION_TAG, ""),
                RUN_ID_TAG: self.tags.get(RUN_ID_TAG, ""),
                "mlflow_run_id": self.run_id,
                "validation_rmse": f"{result.metrics['rmse']:.6f}",
                "beats_baseline": str(result.beats_baseline).lower(),
            }.items():
                client.set_model_version_tag(registered_model_name, str(version), key, value)
        return info


def _params(values: dict[str, Any]):
    from mlflow.entities import Param

    return [Param(str(k), _tag_value(v)) for k, v in values.items()]


class MlflowTracker:
    """``context.resources.mlflow``: the dagster-mlflow run of this Dagster run plus helpers.

    Unknown attributes fall through to dagster-mlflow's ``MlFlow`` object (and so to the
    ``mlflow`` module), as with the plain ``mlflow_tracking`` resource.
    """

    def __init__(self, mlf, tracking_uri: str, experiment_id: str, taxi_type: str):
        from mlflow.tracking import MlflowClient

        self._mlf = mlf
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.taxi_type = taxi_type
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.dagster_run_id: str = mlf.dagster_run_id
        import mlflow

        # dagster-mlflow leaves ``mlflow_run_id`` None when it started a new run (it only
        # stores the id of a run it found); the new run is the thread's active run.
        active = mlflow.active_run()
        if mlf.mlflow_run_id is None:
            if active is None:
                raise RuntimeError("dagster-mlflow started no MLflow run: no active run after resource init")
            mlf.mlflow_run_id = active.info.run_id
        self._owns_active_run = active is not None and active.info.run_id == mlf.mlflow_run_id
        self._failed_here = False
        self._closed = False

    def __getattr__(self, name: str):
        return getattr(self._mlf, name)

    @property
    def run_id(self) -> str:
        """The MLflow run of the whole Dagster run (dagster-mlflow's)."""
        return self._mlf.mlflow_run_id

    def registered_model_name(self, estimator: str) -> str:
        from taxi_assets.serving.pyfunc import registered_model_name

        return registered_model_name(self.taxi_type, estimator)

    @contextlib.contextmanager
    def model_run(
        self, *, estimator: str, asset_key: str, partition_key: str | None, tags: dict[str, Any] | None = None
    ) -> Iterator[ModelRun]:
        """Open the model run (nested under the Dagster run's run) for one asset materialization.

        It is the active fluent run inside the block (``log_predictor`` logs into it). It ends
        FINISHED when the block completes, FAILED (KILLED on Ctrl-C) when it raises, and the
        failure is recorded on the Dagster run's run.
        """
        import mlflow

        # Not ``dagster_run_id``: dagster-mlflow finds "the" run of a Dagster run by that tag
        # and would resume whichever tagged run the search returns first (a trial, say).
        run_tags = {
            RUN_ID_TAG: self.dagster_run_id,
            ASSET_KEY_TAG: asset_key,
            PARTITION_TAG: partition_key or "",
            "estimator": estimator,
            "taxi_type": self.taxi_type,
            "dagster_run_url": f"{SETTINGS.ui_base_url}/runs/{self.dagster_run_id}",
            **{k: _tag_value(v) for k, v in (tags or {}).items()},
        }
        created = self.client.create_run(
            self.experiment_id,
            run_name=f"{estimator}-{partition_key}" if partition_key else estimator,
            tags={**run_tags, PARENT_RUN_TAG: self.run_id},
        )
        run_id = created.info.run_id
        status = "FAILED"
        try:
            mlflow.start_run(run_id=run_id, nested=True)
            yield ModelRun(self, run_id, self.experiment_id, run_tags)
            status = "FINISHED"
        except BaseException as exc:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            with contextlib.suppress(Exception):
                self.client.set_tag(run_id, "error", _tag_value(f"{type(exc).__name__}: {exc}"))
            self.mark_failed(asset_key, partition_key)
            raise
        finally:
            try:
                _terminate(self.client, run_id, status)
            finally:  # guard: never leave the model run RUNNING
                with contextlib.suppress(Exception):
                    if self.client.get_run(run_id).info.status == "RUNNING":
                        self.client.set_terminated(run_id, "FAILED")

    def mark_failed(self, asset_key: str, partition_key: str | None = None) -> None:
        """Record a failed step on the Dagster run's run, so its final status is FAILED."""
        self._failed_here = True
        key = f"{FAILED_TAG_PREFIX}{asset_key}" + (f".{partition_key}" if partition_key else "")
        with contextlib.suppress(Exception):
            self.client.set_tag(self.run_id, key, time.strftime("%Y-%m-%dT%H:%M:%S"))

    def end_run(self, status: str | None = None) -> None:
        """End the Dagster run's run (``end_mlflow_on_run_finished`` calls this)."""
        if status == "FAILED":
            self.mark_failed("step")
        self.close(status)

    def close(self, status: str | None = None) -> None:
        """Teardown: end the Dagster run's run, FAILED if any step of the Dagster run failed."""
        if self._closed:
            return
        self._closed = True
        import mlflow

        run_id = self.run_id
        try:
            tags = self.client.get_run(run_id).data.tags
        except Exception:
            tags = {}
        failed = self._failed_here or any(k.startswith(FAILED_TAG_PREFIX) for k in tags)
        final = status or ("FAILED" if failed else "FINISHED")
        if final == "FINISHED" and failed:
            final = "FAILED"
        if self._owns_active_run:
            # End runs a crashed block may have left above ours, then ours (pops the fluent stack).
            for _ in range(16):
                active = mlflow.active_run()
                if active is None:
                    break
                if active.info.run_id == run_id:
                    mlflow.end_run(final)
                    break
                mlflow.end_run("FAILED")
        with contextlib.suppress(Exception):
            if self.client.get_run(run_id).info.status == "RUNNING":
                self.client.set_terminated(run_id, final)


def _config_schema(tracking_uri: str, experiment_name: str, artifact_location: str, taxi_type: str) -> dict:
    return {
        "experiment_name": dg.Field(dg.StringSource, default_value=experiment_name, description="MLflow experiment."),
        "mlflow_tracking_uri": dg.Field(
            dg.StringSource, default_value=tracking_uri, description="Tracking store (sqlite URI or server URL)."
        ),
        "artifact_location": dg.Field(
            dg.StringSource,
            default_value=artifact_location,
            description="Artifact root given to the experiment when this resource creates it.",
        ),
        "taxi_type": dg.Field(str, default_value=taxi_type, description="Part of the registered model names."),
        "env_to_tag": dg.Field(
            dg.Noneable(list), default_value=None, is_required=False, description="Env vars logged as tags."
        ),
        "extra_tags": dg.Field(dg.Permissive(), is_required=False, description="Extra tags of the Dagster run's run."),
    }


def build_mlflow_resource(
    tracking_uri: str | None = None,
    experiment_name: str | None = None,
    artifact_location: str | None = None,
    taxi_type: str | None = None,
) -> dg.ResourceDefinition:
    """The ``"mlflow"`` resource with these defaults (``SETTINGS`` when not given)."""

    schema = _config_schema(
        tracking_uri or SETTINGS.mlflow_tracking_uri,
        experiment_name or SETTINGS.mlflow_experiment_name,
        artifact_location or SETTINGS.mlflow_artifact_location,
        taxi_type or SETTINGS.taxi_type,
    )

    @dg.resource(
        config_schema=schema,
        description="MLflow tracking via dagster-mlflow: one run per Dagster run, one nested run per "
        "model materialization, one child run per hyperopt trial; ended FINISHED/FAILED at step end.",
    )
    def taxi_mlflow(init_context) -> Iterator[MlflowTracker]:
        from dagster_mlflow import mlflow_tracking

        config = init_context.resource_config
        uri = config["mlflow_tracking_uri"]
        # One process at a time: creating a fresh sqlite store runs migrations that fail when two
        # processes run them at once, and the run search-or-create below must not race.
        with _machine_lock():
            experiment_id = ensure_experiment(uri, config["experiment_name"], config["artifact_location"])
            generator = mlflow_tracking.resource_fn(init_context)
            mlf = next(generator)
        generator.close()  # skip its cleanup_on_error: close() below ends the run either way
        tracker = MlflowTracker(mlf, uri, experiment_id, config["taxi_type"])
        with contextlib.suppress(Exception):
            tracker.client.set_tag(tracker.run_id, "dagster_run_url", f"{SETTINGS.ui_base_url}/runs/{tracker.dagster_run_id}")
        try:
            yield tracker
        finally:
            tracker.close()

    return taxi_mlflow


mlflow_resource: dg.ResourceDefinition = build_mlflow_resource()
"""Add to ``Definitions(resources={MLFLOW_RESOURCE_KEY: mlflow_resource})``."""


def end_mlflow_on_run_finished_hook():
    """dagster-mlflow's hook (imported lazily: mlflow takes ~2 s to import). Optional: the
    resource teardown already ends the runs; add it to an op job's ``hooks`` if wanted."""
    from dagster_mlflow import end_mlflow_on_run_finished

    return end_mlflow_on_run_finished
