"""The ML core: plain Python, no Dagster (importing any module here leaves ``dagster`` out of
``sys.modules``).

OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``, unless the environment sets it):
XGBoost and LightGBM each load their own OpenMP runtime, whose default is to spin while
waiting at a barrier. On a shared two-core machine with other work running, a two-thread fit
then spends most of its time spinning against a descheduled partner: LightGBM, 100 rounds on
green 2024-01 at load ~5, took 16.8 s wall / 14.6 CPU s on two spinning threads against 0.7 s
on one thread, and 1.3 s / 0.9 CPU s on two passive threads (twelve months: 86 s against 9 s).
The runtime reads the variable once, when the library is loaded, so it is set here, before
any model library is imported by this package.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
