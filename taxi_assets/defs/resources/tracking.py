"""The ``mlflow`` resource: the MLflow tracking store every model asset logs to.

A thin Dagster shell over :class:`taxi_assets.registry.tracking.TrackingStore` (plain MLflow):
one MLflow run per model materialization tagged with the Dagster run, asset and partition,
trials as child runs, every run ended FINISHED or FAILED, no lock files shared between
deployments, a store that is down fails the step within about a minute naming its URI, and a
locked SQLite store is waited for (``lock_timeout_seconds``), then retried as an outage.

Why not dagster-mlflow's ``mlflow_tracking``: it is a legacy function resource that opens
one MLflow run per *Dagster run* at resource init and leaves it active (nothing ends it
unless an op job carries its hook, which asset jobs launched from the UI never do), resumes
whichever run its tag search returns first, and ignores the artifact location when it
creates the experiment. Wrapping it took a machine-wide lock and hand-written teardown; the
project needs none of it, so the package is no longer a dependency.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from taxi_assets.defs.partitions import retry_transient
from taxi_assets.registry.names import ASSET_KEY_TAG, PARTITION_TAG, RUN_ID_TAG
from taxi_assets.registry.tracking import (
    DEFAULT_LOCK_TIMEOUT_SECONDS,
    ModelRun,
    TrackingStore,
    TrackingStoreUnavailable,
)
from taxi_assets.settings import SETTINGS

MLFLOW_RESOURCE_KEY = "mlflow"


class MlflowTracking(dg.ConfigurableResource):
    """MLflow tracking store and experiment of this deployment (settings in ``settings.py``)."""

    tracking_uri: str = Field(
        default=SETTINGS.mlflow_tracking_uri, description="Tracking store: sqlite URI or server URL (MLFLOW_TRACKING_URI)."
    )
    experiment_name: str = Field(default=SETTINGS.mlflow_experiment_name, description="Experiment of all model runs.")
    artifact_location: str = Field(
        default=SETTINGS.mlflow_artifact_location,
        description="Artifact root given to the experiment when it is created (MLFLOW_ARTIFACT_LOCATION).",
    )
    username: str | None = Field(default=None, description="Server login (bind dg.EnvVar('MLFLOW_TRACKING_USERNAME')).")
    password: str | None = Field(default=None, description="Server password (bind dg.EnvVar('MLFLOW_TRACKING_PASSWORD')).")
    request_timeout_seconds: int = Field(
        default=SETTINGS.mlflow_http_request_timeout, ge=1, le=600,
        description="Seconds per HTTP request to the store (MLFLOW_HTTP_REQUEST_TIMEOUT).",
    )  # fmt: skip
    max_retries: int = Field(
        default=SETTINGS.mlflow_http_request_max_retries, ge=0, le=10,
        description="HTTP retries per request before the store counts as down (MLFLOW_HTTP_REQUEST_MAX_RETRIES).",
    )  # fmt: skip
    lock_timeout_seconds: float = Field(
        default=DEFAULT_LOCK_TIMEOUT_SECONDS,
        gt=0,
        le=3600,
        description="Seconds a store operation waits for a locked SQLite store (another run, `mlflow ui`, a backup) "
        "before the step fails as an outage and is retried.",
    )

    def store(self) -> TrackingStore:
        # MLflow reads credentials, its HTTP timeout and retries from the environment only.
        if self.username:
            os.environ["MLFLOW_TRACKING_USERNAME"] = self.username
        if self.password:
            os.environ["MLFLOW_TRACKING_PASSWORD"] = self.password
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(self.request_timeout_seconds)
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(self.max_retries)
        return TrackingStore(
            self.tracking_uri, self.experiment_name, self.artifact_location, lock_timeout=self.lock_timeout_seconds
        )

    def reachable_store(self, context: dg.AssetExecutionContext, label: str) -> TrackingStore:
        """The store, after checking it answers; an outage fails the attempt naming ``label``
        and the URI, and the step is retried (an outage is transient)."""
        store = self.store()
        try:
            store.check_reachable()
        except TrackingStoreUnavailable as exc:
            retry_transient(context, f"{label}: {exc}")
        return store

    @contextlib.contextmanager
    def model_run(self, context: dg.AssetExecutionContext, estimator: str, month: str) -> Iterator[ModelRun]:
        """The MLflow run of ``estimator`` trained for ``month`` in this step (see the module doc).

        An unreachable store fails the attempt naming the URI and the step is retried (an
        outage is transient, see ``retry_transient``); anything else propagates as raised.
        """
        store = self.store()
        tags = {
            RUN_ID_TAG: context.run_id,
            ASSET_KEY_TAG: context.asset_key.to_user_string(),
            PARTITION_TAG: month,
            "taxi_type": SETTINGS.taxi_type,
            "dagster_run_url": f"{SETTINGS.ui_base_url}/runs/{context.run_id}",
        }
        try:
            with store.model_run(estimator=estimator, tags=tags, run_name=f"{estimator}-{month}") as run:
                yield run
        except TrackingStoreUnavailable as exc:
            retry_transient(context, f"{context.asset_key.to_user_string()}[{month}]: {exc}")
