"""What the tests (``taxi_assets_tests/``) and the benchmarks (``benchmarks/``) share, so neither
imports the other: the real months cleaned as the pipeline cleans them (:mod:`support.data`),
loopback ports and process groups (:mod:`support.local`), a registered champion in a temporary
MLflow store (:mod:`support.champion`) and ``mlflow models serve`` with its client
(:mod:`support.scoring_server`).

Not shipped: the wheel holds ``taxi_assets`` only. Importable from the repository root, which
pytest puts on ``sys.path`` (``taxi_assets_tests`` is a package under it) and the benchmarks add
(``benchmarks/_common.py``). Helpers only the tests use stay in ``taxi_assets_tests``."""
