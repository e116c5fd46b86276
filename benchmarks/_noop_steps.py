"""Jobs of N independent no-op steps (``noop_steps_N``, N in :data:`COUNTS`) on the code
location's executor (``TAXI_EXECUTOR``, built by
``taxi_assets.defs.executors.executor_from_settings``): what ``benchmarks/executors.py`` times
to isolate the per-step cost of an executor. The jobs are defined statically (not from an
environment variable) because Dask workers rebuild the job from this file with their own
environment.

    TAXI_EXECUTOR=dask dagster job execute -f benchmarks/_noop_steps.py -j noop_steps_8
"""

import os

import dagster as dg

from taxi_assets.defs.executors import executor_from_settings

COUNTS = (1, 2, 4, 8, 16, 32, 64)


@dg.op
def noop() -> int:
    return os.getpid()


def _job(count: int) -> dg.JobDefinition:
    @dg.job(name=f"noop_steps_{count}", executor_def=executor_from_settings())
    def steps():
        for i in range(count):
            noop.alias(f"step_{i:03d}")()

    return steps


defs = dg.Definitions(jobs=[_job(n) for n in COUNTS])
