"""The executor, chosen by configuration (``TAXI_EXECUTOR``), never by editing code.

``multiprocess`` (the default: each step its own process, forked from a forkserver that has the
code location imported, at most ``TAXI_MAX_CONCURRENT_STEPS`` steps and
``TAXI_MAX_CONCURRENT_MODEL_STEPS`` model fits at once), ``in_process`` (debugging, tests),
``dask`` (dagster-dask's executor on an existing cluster or a local one per run), ``k8s`` and
``celery_k8s``. An executor whose extra is not installed fails at load, naming the package.
Which one when, what the Dask executor does not do (tag limits, pools, step retries) and the
figures: deploy/README.md, "Executors".

Model steps carry the op tag ``taxi/step: model-training``: a fit already uses every core it
may (``taxi_assets.ml.estimators.available_threads``), so the multiprocess executor runs one at
a time while cheap data steps run beside it. The Dask executor is dagster-dask's with each
step's arguments sealed from Dask's task-spec parser (:class:`_Sealed`).
"""

import os

import dagster as dg

from taxi_assets.settings import SETTINGS, Settings

# Op tag on every model-training step (set in defs/models/assets.py).
MODEL_STEP_TAG = ("taxi/step", "model-training")

# What every step imports anyway. Importing a library starts none of its threads (OpenMP pools
# start at the first parallel region), so forking from a process that imported them is safe.
PRELOADED_MODULES = (
    "dagster",
    "taxi_assets.definitions",
    "pandas",
    "pyarrow.parquet",
    "scipy.sparse",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.svm",
    "xgboost",
    "lightgbm",
    "hyperopt",
    "mlflow",
    "mlflow.pyfunc",
)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def dask_cluster_config(settings: Settings = SETTINGS) -> dict:
    """The ``cluster`` config of ``dagster_dask.dask_executor`` from the settings.

    ``TAXI_DASK_ADDRESS`` set: ``{"existing": {"address": ...}}`` (the scheduler's workers must
    run with the same settings, ``TAXI_DATA_ROOT`` & co., and see the same data root).
    Unset: a ``LocalCluster`` per run, started by the run worker: ``TAXI_DASK_WORKERS`` worker
    processes (default 2) of one thread each (dagster-dask forces ``threads_per_worker=1``;
    Dagster steps are not thread-safe), each with ``TAXI_MAX_THREADS`` = cores / workers so
    two model fits side by side never oversubscribe the cores, on 127.0.0.1 with the dashboard
    on a free port.
    """
    if settings.dask_address:
        return {"existing": {"address": settings.dask_address}}
    threads = max(1, _cores() // settings.dask_workers)
    if settings.max_threads:
        threads = min(threads, settings.max_threads)
    return {
        "local": {
            "n_workers": settings.dask_workers,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": ":0",
            "env": {"TAXI_MAX_THREADS": str(threads)},  # the workers' own settings
        }
    }


def step_start_method(settings: Settings = SETTINGS) -> dict:
    """How the multiprocess executor starts a step process (``TAXI_STEP_START_METHOD``).

    ``forkserver`` (default): a forkserver that has imported the code location and the ML
    libraries once per run forks each step from there, so a step starts in about a second
    instead of the 8-10 s a fresh interpreter spends importing them (side by side in
    ``benchmarks/executors.py --part start``). ``spawn``: Dagster's default, a fresh
    interpreter per step (for code that must not be forked).
    """
    if settings.step_start_method == "forkserver":
        return {"forkserver": {"preload_modules": list(PRELOADED_MODULES)}}
    return {"spawn": {}}


def multiprocess_config(settings: Settings = SETTINGS) -> dict:
    """The multiprocess executor's config. Model steps use every core themselves (n_jobs /
    nthread): one at a time by default, so two threaded fits never fight over the same cores;
    TAXI_MAX_CONCURRENT_MODEL_STEPS=k with TAXI_MAX_THREADS=cores/k runs k fits side by side."""
    limit = {"key": MODEL_STEP_TAG[0], "value": MODEL_STEP_TAG[1], "limit": settings.max_concurrent_model_steps}
    return {
        "max_concurrent": settings.max_concurrent_steps,
        "tag_concurrency_limits": [limit],
        "start_method": step_start_method(settings),
    }


def executor_from_settings(settings: Settings = SETTINGS) -> dg.ExecutorDefinition:
    kind = settings.executor
    if kind == "multiprocess":
        return dg.multiprocess_executor.configured(multiprocess_config(settings))
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "dask":
        try:
            import dagster_dask  # noqa: F401
        except ImportError as exc:
            raise RuntimeError('TAXI_EXECUTOR=dask needs the dagster-dask package: pip install -e ".[dask]"') from exc
        return _dask_executor().configured({"cluster": dask_cluster_config(settings)}, name="dask")
    module, name = ("dagster_k8s", "k8s_job_executor") if kind == "k8s" else ("dagster_celery_k8s", "celery_k8s_job_executor")
    try:
        imported = __import__(module)
    except ImportError as exc:
        raise RuntimeError(
            f"TAXI_EXECUTOR={kind} needs the {module.replace('_', '-')} package: pip install -e \".[k8s]\""
        ) from exc
    return getattr(imported, name)


class _Sealed:
    """Arguments handed to a Dask task as one opaque object.

    dagster-dask 0.29.27 submits ``query_on_dask_worker(dependencies, recon_job, dagster_run,
    ...)``; Dask's task-spec parser (``dask._task_spec.parse_input``, dask 2024.12 and later)
    walks every tuple and named tuple among a task's arguments looking for futures, and a
    ``DagsterRun``/``ReconstructableJob`` holds Dagster ``@record`` objects that refuse
    iteration, so the submission fails before any step runs ("Iteration is not allowed on
    `@record` TimeWindowPartitionsDefinition", for every partitioned run). Sealed, they travel
    pickled as they are; only the list of upstream futures stays visible to Dask, which is
    what orders the steps.
    """

    __slots__ = ("args",)

    def __init__(self, args: tuple):
        self.args = args


def _step_on_worker(dependencies, sealed: _Sealed):
    """The Dask task of one step: dagster-dask's own ``query_on_dask_worker``, run in the worker."""
    from dagster_dask.executor import query_on_dask_worker

    return query_on_dask_worker(dependencies, *sealed.args)


def _dask_executor() -> dg.ExecutorDefinition:
    """dagster-dask's ``dask_executor`` (same config schema, same ``DaskExecutor`` and worker
    function), submitting each step's arguments sealed (see :class:`_Sealed`).

    Every step of the run is submitted up front as one Dask task, chained on its upstream
    steps' futures. The task rebuilds the job in the worker process (``ReconstructableJob``:
    the worker imports ``taxi_assets.definitions`` with its own environment) and runs the step
    there, writing its events straight to the instance and its outputs to the data root, so
    both must be reachable from every worker. Per step: no interpreter start-up (the worker
    keeps the code location imported) but one task round trip and one job reconstruction.
    """
    import dask.distributed
    from dagster_dask.executor import DaskExecutor, dask_executor, get_dask_resource_requirements

    class SealedDaskExecutor(DaskExecutor):
        def _cluster(self, job_name: str):
            if self.cluster_type == "existing":
                return self.cluster_configuration["address"]
            if self.cluster_type == "local":
                return dask.distributed.LocalCluster(**self.build_dict(job_name))
            raise ValueError(f"the taxi Dask executor starts local clusters or joins existing ones, not {self.cluster_type!r}")

        def execute(self, plan_context, execution_plan):
            if not plan_context.instance.is_persistent:
                raise dg.DagsterInvariantViolationError("Dask execution requires a persistent DagsterInstance")
            job_name = plan_context.job_name
            cluster = self._cluster(job_name)
            try:
                with dask.distributed.Client(cluster) as client:
                    futures, by_step = [], {}
                    for level in execution_plan.get_steps_to_execute_by_level():
                        for step in level:
                            dependencies = [
                                by_step[key] for step_input in step.step_inputs for key in step_input.dependency_keys
                            ]
                            sealed = _Sealed(
                                (
                                    plan_context.reconstructable_job,
                                    plan_context.dagster_run,
                                    plan_context.run_config,
                                    [step.key],
                                    plan_context.instance.get_ref(),
                                    execution_plan.known_state,
                                )
                            )
                            future = client.submit(
                                _step_on_worker,
                                dependencies,
                                sealed,
                                key=f"{job_name}.{step.key}.{plan_context.run_id[:8]}",
                                resources=get_dask_resource_requirements(step.tags),
                                pure=False,
                            )
                            futures.append(future)
                            by_step[step.key] = future
                    completed = iter(dask.distributed.as_completed(futures, with_results=True))
                    while True:
                        # Waiting on the cluster may be interrupted (run termination); handing
                        # the events on may not (as dagster-dask's own loop does).
                        with dg.raise_execution_interrupts():
                            done = next(completed, None)
                        if done is None:
                            break
                        _future, events = done
                        yield from events
            finally:
                if not isinstance(cluster, str):
                    cluster.close()

    @dg.executor(
        name="dask",
        requirements=dg.multiple_process_executor_requirements(),
        config_schema=dask_executor.config_schema,
    )
    def sealed_dask_executor(init_context):
        ((cluster_type, cluster_configuration),) = init_context.executor_config["cluster"].items()
        return SealedDaskExecutor(cluster_type, cluster_configuration)

    return sealed_dask_executor


@dg.definitions
def executor() -> dg.Definitions:
    """The code location's default executor (jobs that name their own, like ``predict``, keep it)."""
    return dg.Definitions(executor=executor_from_settings())
