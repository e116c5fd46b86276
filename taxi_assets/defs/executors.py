"""The executor, chosen by configuration (``TAXI_EXECUTOR``), never by editing code.

| value | executor | when |
| --- | --- | --- |
| ``multiprocess`` (default) | ``multiprocess_executor`` | one machine: each step in its own process, at most ``TAXI_MAX_CONCURRENT_STEPS`` (default 2, the core count here) at once |
| ``in_process`` | ``in_process_executor`` | debugging, tiny machines, tests |
| ``k8s`` | ``dagster_k8s.k8s_job_executor`` | Kubernetes: each step a pod, so seven models train on seven nodes |
| ``celery_k8s`` | ``dagster_celery_k8s.celery_k8s_job_executor`` | Kubernetes with Celery queues to throttle steps across many runs |

The k8s executors need the ``k8s`` extra (``pip install -e ".[k8s]"``); asking for one without
it fails at load with a message that says so. Each multiprocess step is a fresh Python process
(``dagster api execute_step``), so XGBoost and the tree ensembles see the thread budget that
``taxi_assets.ml.estimators`` derives from the CPU affinity and ``TAXI_MAX_THREADS``. Model
steps carry the op tag ``taxi/step: model-training`` and the multiprocess executor runs at
most one of them at a time: each fit already uses every core, so running two side by side
would only oversubscribe them (measured: XGBoost 8x slower), while cheap data steps still run
beside a model.
"""

import os

import dagster as dg

# Op tag on every model-training step (see taxi_assets.assets.models).
MODEL_STEP_TAG = ("taxi/step", "model-training")


def executor_from_settings() -> dg.ExecutorDefinition:
    kind = os.environ.get("TAXI_EXECUTOR", "multiprocess").strip().lower()
    if kind == "multiprocess":
        steps = int(os.environ.get("TAXI_MAX_CONCURRENT_STEPS", "2"))
        return dg.multiprocess_executor.configured(
            {
                "max_concurrent": steps,
                # Model steps use every core themselves (n_jobs / nthread): one at a time, so
                # two threaded fits never fight over the same cores.
                "tag_concurrency_limits": [{"key": MODEL_STEP_TAG[0], "value": MODEL_STEP_TAG[1], "limit": 1}],
            }
        )
    if kind == "in_process":
        return dg.in_process_executor
    if kind in ("k8s", "celery_k8s"):
        module, name = (
            ("dagster_k8s", "k8s_job_executor") if kind == "k8s" else ("dagster_celery_k8s", "celery_k8s_job_executor")
        )
        try:
            imported = __import__(module)
        except ImportError as exc:
            raise RuntimeError(
                f"TAXI_EXECUTOR={kind} needs the {module.replace('_', '-')} package: pip install -e \".[k8s]\""
            ) from exc
        return getattr(imported, name)
    raise ValueError(f"TAXI_EXECUTOR must be multiprocess, in_process, k8s or celery_k8s, got {kind!r}")


@dg.definitions
def executor() -> dg.Definitions:
    """The code location's default executor (jobs that name their own, like ``predict``, keep it)."""
    return dg.Definitions(executor=executor_from_settings())
