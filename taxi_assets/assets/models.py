"""One model asset per entry of the estimator registry (group ``models``).

``linear_regression[M]`` ... ``xgboost[M]`` each read ``training_set[M]``, tune with hyperopt
(:func:`taxi_assets.ml.tuning.tune`), log every trial and the final model to MLflow (resource
``"mlflow"``, see :mod:`taxi_assets.resources.mlflow`), register the model as
``taxi-trip-duration-{taxi_type}-{estimator}`` and return the fitted
:class:`~taxi_assets.ml.predictor.TripDurationPredictor` (the IO manager pickles it). Each asset
carries a ``beats_baseline`` check (ERROR severity) computed in the same step from the
validation RMSE, so the check never loads another partition. It is not blocking on purpose: one
weak estimator must not stop the month's leaderboard; ``champion_model`` only considers models
that beat the baseline, and its own blocking ``promotion_is_safe`` check stops a month where
none does.

Run config (per asset): ``max_evaluations`` (default from the registry), ``random_state``,
``search_space`` (``quick`` or ``course``); XGBoost also ``early_stopping_rounds``,
``num_boost_round`` (the cap on rounds) and ``max_depth`` (fixes the depth when set).
See :mod:`taxi_assets.ml.estimators` for the settings that reproduce the course.

No ``from __future__ import annotations`` here: Dagster reads the ``config`` and ``context``
annotations of the generated functions at definition time.
"""

import json
import time
from typing import Any, Optional

import dagster as dg
from pydantic import Field, create_model

from taxi_assets.executors import MODEL_STEP_TAG
from taxi_assets.ml.dataset import TrainingSet
from taxi_assets.ml.estimators import ESTIMATORS, PROFILES, EstimatorSpec
from taxi_assets.partitions import NETWORK_RETRY, ONE_MONTH_PER_RUN, monthly_partitions
from taxi_assets.resources.mlflow import MLFLOW_RESOURCE_KEY, build_mlflow_resource, mlflow_resource
from taxi_assets.settings import SETTINGS

GROUP = "models"
CHECK_NAME = "beats_baseline"
DEFAULT_RANDOM_STATE = 42
EXAMPLE_ROWS = 5


class ModelConfig(dg.Config):
    """Run config shared by every model asset (subclassed per estimator with its defaults)."""

    max_evaluations: int = Field(default=3, description="Hyperopt trials (TPE).")
    random_state: int = Field(
        default=DEFAULT_RANDOM_STATE, description="Seeds TPE and the estimator: same seed + data = same model."
    )
    search_space: str = Field(
        default="quick", description="'quick' (capped trees, minutes per month) or 'course' (the course's ranges)."
    )


def _config_class(spec: EstimatorSpec) -> type[ModelConfig]:
    """``{Name}Config`` with the registry's default budget plus the spec's own settings."""
    fields: dict[str, Any] = {
        "max_evaluations": (int, Field(default=spec.max_evaluations, description="Hyperopt trials (TPE).")),
    }
    for name, default in spec.fit_options.items():
        fields[name] = (type(default), Field(default=default, description=f"{spec.name} fit option."))
    for name, kind in spec.config_overrides.items():
        fields[name] = (Optional[kind], Field(default=None, description=f"Fix {name} (tuned when unset)."))
    class_name = "".join(part.capitalize() for part in spec.name.split("_")) + "Config"
    return create_model(class_name, __base__=ModelConfig, **fields)


def example_records(ts: TrainingSet, rows: int = EXAMPLE_ROWS) -> list[dict]:
    """Raw request records rebuilt from the first training rows (the MLflow input example)."""
    names = ts.feature_names
    X = ts.X_train[:rows].tocsr()
    records = []
    for i in range(X.shape[0]):
        record: dict[str, Any] = {}
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


def build_model_asset(spec: EstimatorSpec) -> dg.AssetsDefinition:
    """The partitioned model asset of one registry entry (key = ``spec.name``)."""
    config_cls = _config_class(spec)
    override_names = list(spec.fit_options) + list(spec.config_overrides)
    kinds = {"xgboost" if spec.name == "xgboost" else "sklearn", "mlflow"}

    @dg.asset(
        name=spec.name,
        group_name=GROUP,
        partitions_def=monthly_partitions,
        backfill_policy=ONE_MONTH_PER_RUN,
        retry_policy=NETWORK_RETRY,
        ins={"training_set": dg.AssetIn("training_set")},
        required_resource_keys={MLFLOW_RESOURCE_KEY},
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=SETTINGS.model_freshness),
        description=spec.description,
        kinds=kinds,
        op_tags=dict([MODEL_STEP_TAG]),
        check_specs=[
            dg.AssetCheckSpec(
                CHECK_NAME,
                asset=spec.name,
                blocking=False,
                description="Validation RMSE below the RMSE of predicting the training mean.",
            )
        ],
    )
    def model_asset(context: dg.AssetExecutionContext, config: config_cls, training_set: TrainingSet):
        from taxi_assets.ml.tuning import tune

        month = context.partition_key
        label = f"{spec.name}[{month}]"
        if config.search_space not in PROFILES:
            raise dg.Failure(
                f"{label}: search_space must be one of {', '.join(PROFILES)}, got {config.search_space!r}",
                allow_retries=False,
            )
        if config.max_evaluations < 1:
            raise dg.Failure(f"{label}: max_evaluations must be at least 1, got {config.max_evaluations}", allow_retries=False)
        overrides = {name: getattr(config, name) for name in override_names}
        tracker = getattr(context.resources, MLFLOW_RESOURCE_KEY)
        ts = training_set
        context.log.info(
            f"{label}: tuning with {config.max_evaluations} evaluation(s), random_state={config.random_state}, "
            f"search space {config.search_space!r}, on train {ts.X_train.shape} / validation {ts.X_val.shape}"
        )
        started = time.perf_counter()
        with tracker.model_run(
            estimator=spec.name, asset_key=context.asset_key.to_user_string(), partition_key=month
        ) as run:
            run.log_config(config.model_dump())

            def on_trial(trial) -> None:
                context.log.info(
                    f"{label}: trial {trial.index} of {trial.total}: rmse={trial.loss:.4f}, "
                    f"best={trial.best_loss:.4f} ({trial.seconds:.1f}s) {json.dumps(trial.params)}"
                )
                run.log_trial(trial)

            result = tune(
                spec,
                ts,
                config.max_evaluations,
                config.random_state,
                on_trial=on_trial,
                profile=config.search_space,
                **overrides,
            )
            registered = tracker.registered_model_name(spec.name)
            info = run.log_result(result, example_records(ts), registered)
        version = getattr(info, "registered_model_version", None)
        rmse, baseline = result.metrics["rmse"], result.baseline_rmse
        context.log.info(
            f"{label}: validation rmse={rmse:.4f} (baseline {baseline:.4f}) in {result.train_seconds:.1f}s; "
            f"registered {registered} version {version}"
        )
        metadata = {
            "rmse": rmse,
            "mse": result.metrics["mse"],
            "mae": result.metrics["mae"],
            "r2": result.metrics["r2"],
            "baseline_rmse": baseline,
            "train_seconds": result.train_seconds,
            "step_seconds": time.perf_counter() - started,
            "trials": len(result.trials),
            "best_trial": result.best_trial,
            "best_params": dg.MetadataValue.json(result.best_params),
            "search_space": config.search_space,
            "mlflow_run_id": run.run_id,
            "mlflow_parent_run_id": tracker.run_id,
            "model_uri": info.model_uri,
            "registered_model_name": registered,
            "registered_model_version": int(version) if version is not None else -1,
            "registered_model_uri": f"models:/{registered}/{version}",
        }
        passed = result.beats_baseline
        check = dg.AssetCheckResult(
            check_name=CHECK_NAME,
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rmse": rmse, "baseline_rmse": baseline, "improvement": baseline - rmse},
            description=(
                f"rmse {rmse:.4f} {'<' if passed else '>='} baseline {baseline:.4f} (predicting the training mean)"
            ),
        )
        return dg.MaterializeResult(value=result.predictor, metadata=metadata, check_results=[check])

    return model_asset


model_assets: list[dg.AssetsDefinition] = [build_model_asset(spec) for spec in ESTIMATORS.values()]

model_checks: list[dg.AssetChecksDefinition] = []
"""Empty on purpose: each model's ``beats_baseline`` check is a ``check_spec`` of its asset
(computed in the same step, one partition). Kept so ``asset_checks=[*data_checks, *model_checks]``
stays valid; select the checks with :data:`model_check_keys`."""

model_check_keys: list[dg.AssetCheckKey] = [
    dg.AssetCheckKey(dg.AssetKey(spec.name), CHECK_NAME) for spec in ESTIMATORS.values()
]

__all__ = [
    "MLFLOW_RESOURCE_KEY",
    "build_mlflow_resource",
    "build_model_asset",
    "example_records",
    "mlflow_resource",
    "model_assets",
    "model_check_keys",
    "model_checks",
]
