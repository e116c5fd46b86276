"""Definition-time settings, read once from the environment when the code location loads.

The environment is the shell's, completed by the project's ``.env`` (written by
``taxi-assets init``; Dagster's CLI reads the same file in the project root), so every entry
point sees one configuration.

Everything here shapes the asset graph itself (which partitions exist, where data lives, how
fresh assets must be), so it cannot be run config. Run-time knobs (tuning budgets, cleaning
bounds) are ``dg.Config`` on the assets; secrets are ``dg.EnvVar`` on resources.

| variable | default | meaning |
| --- | --- | --- |
| ``TAXI_DATA_SOURCE`` | ``../shared/data/nyc-tlc`` if it holds months, else the TLC address | base URL or local folder holding ``{taxi}_tripdata_YYYY-MM.parquet`` |
| ``TAXI_TYPE`` | ``green`` | ``green`` or ``yellow``; one type per deployment, recorded in paths |
| ``TAXI_DATA_ROOT`` | ``<project>/data`` | where outputs (parquet, npz, models) are written: a folder, or an object-store URL such as ``s3://bucket/prefix`` (``taxi_assets/io/storage.py``) |
| ``TAXI_START_MONTH`` | ``2023-01`` | first monthly partition |
| ``TAXI_TRAIN_MONTHS`` | ``1`` | months before M that ``training_set[M]`` trains on |
| ``TAXI_EXTENDED_FEATURES`` | ``false`` | ``true``: models also use the pickup hour and day of week, and requests then carry ``pickup_datetime`` (recorded in each training set; off: the course's features and request) |
| ``MLFLOW_TRACKING_URI`` | ``sqlite:///<data root>/mlflow/mlflow.db`` (object-store data root: ``sqlite:///<DAGSTER_HOME>/mlflow.db``) | MLflow tracking store (server URL in production) |
| ``MLFLOW_ARTIFACT_LOCATION`` | ``<data root>/mlflow/artifacts`` (``s3://...`` too: boto3, ``MLFLOW_S3_ENDPOINT_URL``) | artifact root of the experiment (used when it is created) |
| ``MLFLOW_EXPERIMENT_NAME`` | ``taxi-trip-duration-{taxi type}`` | experiment of all model runs |
| ``TAXI_TRAINING_SET_FRESHNESS_SECONDS`` | ``600`` | training set fails freshness after this long (Mage's 600 s) |
| ``TAXI_MODEL_FRESHNESS_SECONDS`` | ``86400`` | models fail freshness after this long (Mage's one day) |
| ``TAXI_UI_BASE_URL`` | ``http://127.0.0.1:3000`` | links to runs in alerts |
| ``TAXI_DRIFT_PSI_WARN`` | ``0.2`` | PSI above which ``data_drift`` warns (0.1-0.2 moderate, >0.2 major) |
| ``TAXI_DRIFT_UNSEEN_PU_DO_WARN`` | ``0.1`` | share of rides with a pickup/dropoff pair unseen in training above which it warns |
| ``TAXI_CHAMPION_TOLERANCE`` | ``0.0`` | minutes of RMSE a challenger may lose against the champion and still be promoted |
| ``TAXI_BOOTSTRAP_MONTHS`` | ``3`` | on its first tick, ``new_month_sensor`` ingests only the newest this many published months (0: none) |
| ``TAXI_AUTOMATION_INTERVAL_SECONDS`` | ``30`` | how often the automation sensor evaluates the asset conditions |
| ``TAXI_STEP_START_METHOD`` | ``forkserver`` | how the multiprocess executor starts step processes: ``forkserver`` (forked from a process that imported the code location once per run, ~1 s a step) or ``spawn`` (a fresh interpreter, 8-10 s of imports a step) |
| ``TAXI_MAX_EVALUATIONS`` | unset | caps every model's default number of hyperopt evaluations (e.g. ``1``: a quick first look on a laptop, or CI); run config still sets any value. Unset: each model's registry default (2-8) |
| ``TAXI_MAX_RETRIES`` | ``2`` | retries of a step that failed for a transient reason (network, timeout, 5xx, MLflow down) |
| ``TAXI_RETRY_DELAY_SECONDS`` | ``30`` | delay before the first such retry, doubled for each next one |
| ``TAXI_EXECUTOR`` | ``multiprocess`` | ``multiprocess``, ``in_process``, ``dask``, ``k8s`` or ``celery_k8s`` (see ``defs/executors.py``) |
| ``TAXI_DASK_ADDRESS`` | unset | with ``TAXI_EXECUTOR=dask``: the scheduler to run steps on (``tcp://host:8786``); unset, each run starts a local cluster. Also the cluster boosted models train across when a model step runs outside Dask |
| ``TAXI_DASK_WORKERS`` | ``2`` | worker processes of that local cluster (one thread each, ``TAXI_MAX_THREADS`` = cores / workers) |
| ``TAXI_DISTRIBUTED_MIN_ROWS`` | ``2000000`` | training rides from which XGBoost and LightGBM train across the Dask cluster's workers (``xgboost.dask``, ``lightgbm.dask``; ``ml/distributed.py``), each worker reading its own months; below it, or with no cluster, on one process |

In production raise the freshness windows to the publishing cadence (TLC publishes monthly,
with a lag of about two months): e.g. 35 days for the training set and models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from taxi_assets import months
from taxi_assets.io import storage
from taxi_assets.io.download import TLC_BASE_URL
from taxi_assets.io.env import env_number
from taxi_assets.ml.representation import extended_features_enabled
from taxi_assets.ml.schema import check_taxi_type


def _project_root() -> Path:
    """The checkout this package runs from, or, for an installed wheel, the current folder
    (where ``taxi-assets init`` writes ``.env`` and Dagster's CLI reads it)."""
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


PROJECT_ROOT = _project_root()
SHARED_TLC_FOLDER = PROJECT_ROOT.parent / "shared" / "data" / "nyc-tlc"
DOTENV_FILE = PROJECT_ROOT / ".env"


def load_dotenv() -> None:
    """Fill unset variables from the project's ``.env`` (what Dagster's CLI reads in the project
    root), so Python entry points see the same settings; variables already set win. Tests set
    ``TAXI_IGNORE_DOTENV=1``."""
    if os.environ.get("TAXI_IGNORE_DOTENV") or not DOTENV_FILE.is_file():
        return
    from dotenv import dotenv_values

    for key, value in dotenv_values(DOTENV_FILE).items():
        if value is not None and key not in os.environ:
            os.environ[key] = value


def default_data_source() -> str:
    """Offline-first: the shared local TLC folder when it holds months, else the TLC address."""
    if SHARED_TLC_FOLDER.is_dir() and any(SHARED_TLC_FOLDER.glob("*_tripdata_*.parquet")):
        return str(SHARED_TLC_FOLDER.resolve())
    return TLC_BASE_URL


def dotenv_text() -> str:
    """The ``.env`` that ``taxi-assets init`` writes: this checkout's defaults, each yielding
    to a value already set in the shell (``${VAR:-default}``)."""
    values = {
        "DAGSTER_HOME": str(PROJECT_ROOT / ".dagster_home"),
        "TAXI_DATA_SOURCE": default_data_source(),
        "TAXI_DATA_ROOT": str(PROJECT_ROOT / "data"),
    }
    lines = [
        "# Written by `taxi-assets init`: the settings `make run`, `make dev`, `dagster`/`dg` commands",
        "# typed in this folder and `taxi-assets` share. A variable set in your shell wins. Other",
        "# settings (TAXI_START_MONTH, TAXI_BOOTSTRAP_MONTHS, MLFLOW_TRACKING_URI, ...) may be added",
        "# here; see taxi_assets/settings.py.",
    ]
    lines += [f"{key}=${{{key}:-{value}}}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Settings:
    data_source: str
    taxi_type: str
    data_root: Path
    start_month: str
    train_months: int
    extended_features: bool
    mlflow_tracking_uri: str
    mlflow_artifact_location: str
    mlflow_experiment_name: str
    training_set_freshness: timedelta
    model_freshness: timedelta
    ui_base_url: str
    drift_psi_warn: float
    drift_unseen_pu_do_warn: float
    champion_tolerance: float
    bootstrap_months: int
    automation_interval_seconds: int
    max_retries: int
    retry_delay_seconds: float
    dask_address: str = ""
    distributed_min_rows: int = 2_000_000
    max_evaluations: int = 0  # 0: each model's registry default

    @property
    def dagster_home(self) -> Path:
        """``DAGSTER_HOME``, or the project's ``.dagster_home`` (what ``.env`` sets)."""
        return Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").expanduser()

    @property
    def type_root(self) -> Path:
        """Outputs of this deployment's taxi type: green and yellow never mix."""
        return self.data_root / self.taxi_type


def _positive_int(name: str, default: int) -> int:
    return env_number(name, default, int, minimum=1)


def _float(name: str, default: float) -> float:
    return env_number(name, default, float, minimum=0)


def load_settings() -> Settings:
    """Read the settings from the environment (see the module docstring for the table)."""
    taxi_type = check_taxi_type(os.environ.get("TAXI_TYPE", "green").strip().lower())
    # A folder (Path), or an object-store URL (UPath): see taxi_assets.io.storage.
    data_root = storage.as_path(str(os.environ.get("TAXI_DATA_ROOT", PROJECT_ROOT / "data")))
    mlflow_dir = data_root / "mlflow"
    if storage.is_remote(data_root):
        # SQLite cannot live on an object store: the tracking database stays beside Dagster's
        # own, the artifacts go to the store.
        home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").expanduser().resolve()
        default_tracking, default_artifacts = f"sqlite:///{home / 'mlflow.db'}", str(mlflow_dir / "artifacts")
    else:
        default_tracking, default_artifacts = f"sqlite:///{mlflow_dir / 'mlflow.db'}", (mlflow_dir / "artifacts").as_uri()
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking
    artifacts = os.environ.get("MLFLOW_ARTIFACT_LOCATION") or default_artifacts
    source = (os.environ.get("TAXI_DATA_SOURCE") or default_data_source()).strip()
    if "://" not in source:
        source = str(Path(source).expanduser().resolve())
    start = os.environ.get("TAXI_START_MONTH", "2023-01").strip()
    try:
        months.parse(start)
    except ValueError:
        raise ValueError(f"TAXI_START_MONTH must be a month YYYY-MM (e.g. 2023-01), got {start!r}") from None
    return Settings(
        data_source=source,
        taxi_type=taxi_type,
        data_root=data_root,
        start_month=start,
        train_months=_positive_int("TAXI_TRAIN_MONTHS", 1),
        extended_features=extended_features_enabled(),
        mlflow_tracking_uri=tracking,
        mlflow_artifact_location=artifacts,
        mlflow_experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", f"taxi-trip-duration-{taxi_type}"),
        training_set_freshness=timedelta(seconds=_positive_int("TAXI_TRAINING_SET_FRESHNESS_SECONDS", 600)),
        model_freshness=timedelta(seconds=_positive_int("TAXI_MODEL_FRESHNESS_SECONDS", 86400)),
        ui_base_url=os.environ.get("TAXI_UI_BASE_URL", "http://127.0.0.1:3000").rstrip("/"),
        drift_psi_warn=_float("TAXI_DRIFT_PSI_WARN", 0.2),
        drift_unseen_pu_do_warn=_float("TAXI_DRIFT_UNSEEN_PU_DO_WARN", 0.1),
        champion_tolerance=_float("TAXI_CHAMPION_TOLERANCE", 0.0),
        bootstrap_months=env_number("TAXI_BOOTSTRAP_MONTHS", 3, int, minimum=0),
        automation_interval_seconds=_positive_int("TAXI_AUTOMATION_INTERVAL_SECONDS", 30),
        max_retries=env_number("TAXI_MAX_RETRIES", 2, int, minimum=0),
        retry_delay_seconds=_float("TAXI_RETRY_DELAY_SECONDS", 30.0),
        dask_address=os.environ.get("TAXI_DASK_ADDRESS", "").strip(),
        distributed_min_rows=_positive_int("TAXI_DISTRIBUTED_MIN_ROWS", 2_000_000),
        max_evaluations=env_number("TAXI_MAX_EVALUATIONS", 0, int, minimum=0),
    )


load_dotenv()
SETTINGS = load_settings()
