"""One model asset per entry of the estimator registry (group ``models``).

``linear_regression[M]`` ... ``lightgbm[M]`` each read ``training_set[M]``, tune with hyperopt
(:func:`taxi_assets.ml.tuning.tune`), log every trial and the final model to MLflow (resource
``mlflow``), register it as ``taxi-trip-duration-{taxi}-{estimator}`` and store a
:class:`~taxi_assets.ml.trained.TrainedModel` (the predictor plus its training facts). Each
carries a ``beats_baseline`` check (ERROR severity) computed in the same step, not blocking on
purpose: one weak estimator must not stop the month's leaderboard, and ``champion_model`` only
considers models that beat the baseline. Run config is typed: ``max_evaluations`` (1..500),
``random_state``, ``search_space`` (``quick`` or ``course``) and the entry's own fit options
and overridable hyperparameters (XGBoost: ``early_stopping_rounds``, ``num_boost_round``,
``max_depth``). No ``from __future__ import annotations`` here: Dagster reads the ``config``
and ``context`` annotations of the generated functions at definition time.
"""

import json
import time
from typing import Any, Literal, Optional

import dagster as dg
from pydantic import Field, create_model

from taxi_assets.defs.executors import MODEL_STEP_TAG
from taxi_assets.defs.partitions import ML_TEAM, monthly_asset, months_of, training_window_mapping
from taxi_assets.defs.resources.tracking import MlflowTracking
from taxi_assets.ml.dataset import example_records
from taxi_assets.ml.estimators import ESTIMATORS, EstimatorSpec, available_threads
from taxi_assets.ml.trained import TrainedModel
from taxi_assets.registry.names import registered_model_name
from taxi_assets.settings import SETTINGS

GROUP = "models"
MODEL_TRAINING_POOL = "model_training"
CHECK_NAME = "beats_baseline"
DEFAULT_RANDOM_STATE = 42


class ModelConfig(dg.Config):
    """Run config shared by every model asset (subclassed per estimator with its defaults)."""

    max_evaluations: int = Field(default=3, ge=1, le=500, description="Hyperopt trials (TPE).")
    random_state: int = Field(
        default=DEFAULT_RANDOM_STATE, ge=0, description="Seeds TPE and the estimator: same seed + data = same model."
    )
    search_space: Literal["quick", "course"] = Field(
        default="quick", description="'quick' (capped trees, minutes per month) or 'course' (the course's ranges)."
    )


def _config_class(spec: EstimatorSpec) -> type[ModelConfig]:
    """``{Name}Config`` with the registry's default budget plus the spec's own settings."""
    # TAXI_MAX_EVALUATIONS caps the default (what automation and `make run` use); run config
    # still sets any value.
    budget = min(spec.max_evaluations, SETTINGS.max_evaluations) if SETTINGS.max_evaluations else spec.max_evaluations
    fields: dict[str, Any] = {
        "max_evaluations": (int, Field(default=budget, ge=1, le=500, description="Hyperopt trials (TPE).")),
    }
    for name, default in spec.fit_options.items():
        whole = isinstance(default, int) and not isinstance(default, bool)
        fields[name] = (type(default), Field(default=default, ge=1 if whole else None, description=f"{spec.name} fit option."))
    for name, kind in spec.config_overrides.items():
        fields[name] = (Optional[kind], Field(default=None, ge=1, description=f"Fix {name} (tuned when unset)."))
    class_name = "".join(part.capitalize() for part in spec.name.split("_")) + "Config"
    return create_model(class_name, __base__=ModelConfig, **fields)


def _kinds(spec: EstimatorSpec) -> set[str]:
    library = getattr(spec, "library", None) or ("xgboost" if spec.name == "xgboost" else "sklearn")
    return {library, "mlflow"}


def train_month(
    context: dg.AssetExecutionContext, spec: EstimatorSpec, config: ModelConfig, mlflow: MlflowTracking, ts, month: str
) -> TrainedModel:
    """Tune ``spec`` on ``training_set[month]``, log and register it; the month's TrainedModel."""
    from taxi_assets.defs.resources.io_manager import TaxiIOManager
    from taxi_assets.ml.distributed import tune_on_cluster_or_here

    label = f"{spec.name}[{month}]"
    overrides = {name: getattr(config, name) for name in list(spec.fit_options) + list(spec.config_overrides)}
    context.log.info(
        f"{label}: tuning with {config.max_evaluations} evaluation(s), random_state={config.random_state}, "
        f"search space {config.search_space!r}, on train {ts.X_train.shape} / validation {ts.X_val.shape}"
    )
    with mlflow.model_run(context, spec.name, month) as run:
        run.log_config(config.model_dump())

        def on_trial(trial) -> None:
            context.log.info(
                f"{label}: trial {trial.index} of {trial.total}: selection rmse={trial.loss:.4f}, "
                f"best={trial.best_loss:.4f} ({trial.seconds:.1f}s) {json.dumps(trial.params)}"
            )
            run.log_trial(trial)

        # One process, or (boosters above TAXI_DISTRIBUTED_MIN_ROWS rides, a Dask cluster reachable)
        # across the cluster's workers, each reading its months' cleaned_trips (ml/distributed.py).
        result = tune_on_cluster_or_here(
            spec, ts, config.max_evaluations, config.random_state, on_trial=on_trial, profile=config.search_space,
            sources=lambda m: str(TaxiIOManager().path_for(dg.AssetKey("cleaned_trips"), m)),
            min_rows=SETTINGS.distributed_min_rows, dask_address=SETTINGS.dask_address, log=context.log.info,
            n_jobs=available_threads(SETTINGS.max_threads), **overrides,
        )  # fmt: skip
        registered = registered_model_name(SETTINGS.taxi_type, spec.name)
        info, version = run.log_result(result, example_records(ts), registered)
    context.log.info(
        f"{label}: validation rmse={result.metrics['rmse']:.4f} (baseline {result.baseline_rmse:.4f}; chosen on the "
        f"training window's last week at {result.selection_rmse:.4f}) in "
        f"{result.train_seconds:.1f}s; registered {registered} version {version.version}"
    )
    return TrainedModel(
        predictor=result.predictor,
        estimator=spec.name,
        month=month,
        metrics=dict(result.metrics),
        baseline_rmse=result.baseline_rmse,
        best_params=dict(result.best_params),
        train_seconds=result.train_seconds,
        trials=len(result.trials),
        mlflow_run_id=run.run_id,
        model_uri=info.model_uri,
        registered_model_name=registered,
        registered_model_version=int(version.version),
        trained_months=list(ts.info.get("months", []))[:-1],
        selection_rmse=result.selection_rmse,
    )


def model_metadata(trained: TrainedModel, search_space: str, step_seconds: float) -> dict[str, Any]:
    return {
        **{k: trained.metrics[k] for k in ("rmse", "mse", "mae", "r2")},
        "selection_rmse": trained.selection_rmse,
        "trained_months": ", ".join(trained.trained_months),
        "baseline_rmse": trained.baseline_rmse,
        "train_seconds": trained.train_seconds,
        "step_seconds": step_seconds,
        "trials": trained.trials,
        "best_params": dg.MetadataValue.json(trained.best_params),
        "search_space": search_space,
        "mlflow_run_id": trained.mlflow_run_id,
        "model_uri": trained.model_uri,
        "registered_model_name": trained.registered_model_name,
        "registered_model_version": trained.registered_model_version,
        "registered_model_uri": f"models:/{trained.registered_model_name}/{trained.registered_model_version}",
    }


def baseline_check(trained: TrainedModel) -> dg.AssetCheckResult:
    rmse, baseline = trained.metrics["rmse"], trained.baseline_rmse
    passed = trained.beats_baseline
    return dg.AssetCheckResult(
        check_name=CHECK_NAME,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"rmse": rmse, "baseline_rmse": baseline, "improvement": baseline - rmse},
        description=f"rmse {rmse:.4f} {'<' if passed else '>='} baseline {baseline:.4f} (predicting the training mean)",
    )


def build_model_asset(spec: EstimatorSpec) -> dg.AssetsDefinition:
    """The partitioned model asset of one registry entry (key = ``spec.name``)."""
    from taxi_assets.defs.checks import combine

    config_cls = _config_class(spec)

    @dg.asset(
        name=spec.name,
        **monthly_asset(GROUP, ML_TEAM, _kinds(spec)),
        ins={"training_set": dg.AssetIn("training_set")},
        # Read only when a booster trains across a Dask cluster (each worker loads its months'
        # cleaned_trips, ml/distributed.py); an edge so lineage shows it. Automation ignores
        # its updates: training_set[M] carries the same change (defs/automation/conditions.py).
        deps=[dg.AssetDep("cleaned_trips", partition_mapping=training_window_mapping())],
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=SETTINGS.model_freshness),
        description=spec.description,
        op_tags=dict([MODEL_STEP_TAG]),
        # Across runs: the embedded instance limits this pool to one step at a time.
        pool=MODEL_TRAINING_POOL,
        check_specs=[
            dg.AssetCheckSpec(
                CHECK_NAME,
                asset=spec.name,
                blocking=False,
                description="Validation RMSE below the RMSE of predicting the training mean.",
            )
        ],
    )
    def model_asset(context: dg.AssetExecutionContext, config: config_cls, mlflow: MlflowTracking, training_set):
        # The resource parameter is named after its key, "mlflow" (MLFLOW_RESOURCE_KEY).
        months = months_of(context)
        by_month = training_set if isinstance(training_set, dict) else {months[0]: training_set}
        trained, checks = {}, {}
        for month in months:
            started = time.perf_counter()
            model = train_month(context, spec, config, mlflow, by_month[month], month)
            trained[month] = model
            checks[month] = [baseline_check(model)]
            context.add_asset_metadata(
                model_metadata(model, config.search_space, time.perf_counter() - started), partition_key=month
            )
        yield dg.Output(trained)
        yield from combine(checks).values()

    return model_asset


model_assets: list[dg.AssetsDefinition] = [build_model_asset(spec) for spec in ESTIMATORS.values()]
MODEL_NAMES: list[str] = list(ESTIMATORS)
