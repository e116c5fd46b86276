"""The one typed settings object: every environment variable the project reads, declared once with
its type, default, bounds and meaning (the table is README.md, "Settings"; a test keeps the two
in step).

The environment is the shell's, completed by the project's ``.env`` (written by ``taxi-assets
init``; Dagster's CLI reads the same file); a value set in the shell wins. ``SETTINGS`` is read
and validated on first use, which for the code location is when it loads. A bad value is one
:class:`SettingsError` line naming the variable, its value and what is expected (``dg check
defs`` exits with it; code servers show it in the UI). The core (``ml/``, ``io/``,
``registry/``) reads no environment: the wiring passes these values as arguments. Variables
that libraries read only from the environment are exported here, once
(:func:`export_library_environment`). Run-time knobs (tuning budgets, cleaning bounds) are
``dg.Config`` on the assets; secrets reach resources as ``dg.EnvVar`` (only their presence
matters here).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from taxi_assets import months
from taxi_assets.io import storage
from taxi_assets.io.download import TLC_BASE_URL
from taxi_assets.ml.schema import TAXI_TYPES


def _project_root() -> Path:
    """The checkout this package runs from, or, for an installed wheel, the current folder
    (where ``taxi-assets init`` writes ``.env`` and Dagster's CLI reads it)."""
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


PROJECT_ROOT = _project_root()
SHARED_TLC_FOLDER = PROJECT_ROOT.parent / "shared" / "data" / "nyc-tlc"
DOTENV_FILE = PROJECT_ROOT / ".env"
EXECUTORS = ("multiprocess", "in_process", "dask", "k8s", "celery_k8s")
# Dagster sets this in `dg check defs` / `dagster definitions validate` ("can be used to control
# the behavior of your code in validation mode", their docs): a bad setting then exits with its line.
VALIDATION_MODE_VARIABLE = "DAGSTER_IS_DEFS_VALIDATION_CLI"


class SettingsError(ValueError):
    """A bad setting: one line naming the variable, its value and what is expected."""


def setting(
    variable: str, default: Any, description: str, *, shown: str | None = None, accepts: str | None = None, **bounds: Any
) -> Any:
    """A field read from ``variable``. ``shown``: the README's default when it is computed;
    ``accepts``: what a custom validator accepts, in words (else derived from type and bounds)."""
    extra = {"shown_default": shown, "accepts": accepts}
    extra = {k: v for k, v in extra.items() if v is not None}
    return Field(default, validation_alias=variable, description=description, json_schema_extra=extra, **bounds)


class DotenvSwitch(BaseSettings):
    """The one setting read before ``.env`` is (whether to read it)."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, validate_default=True, extra="ignore")

    ignore_dotenv: bool = setting(
        "TAXI_IGNORE_DOTENV", False, "`true`: the project's `.env` is not read (the tests set it)"
    )

    @model_validator(mode="before")
    @classmethod
    def _strip(cls, values: Any) -> Any:
        """Surrounding blanks never matter (`" 12 "` is 12, `" yes "` is true)."""
        return {k: v.strip() if isinstance(v, str) else v for k, v in values.items()} if isinstance(values, dict) else values


class Settings(DotenvSwitch):
    """Every environment variable the project reads (see the README's table)."""

    # --- data --------------------------------------------------------------------------------
    data_source: str | None = setting(
        "TAXI_DATA_SOURCE", None,
        "base URL or local folder holding `{taxi}_tripdata_YYYY-MM.parquet`",
        shown="`../shared/data/nyc-tlc` if it holds months, else the TLC address",
    )  # fmt: skip
    taxi_type: Literal[TAXI_TYPES] = setting(
        "TAXI_TYPE", "green", "`green` or `yellow`; one type per deployment, recorded in paths"
    )
    data_root: str = setting(
        "TAXI_DATA_ROOT", str(PROJECT_ROOT / "data"),
        "where outputs (parquet, npz, models) are written: a writable folder (checked at load), or an "
        "object-store URL such as `s3://bucket/prefix` (not probed; `taxi_assets/io/storage.py`)",
        shown="`<project>/data`", accepts="a writable folder or an object-store URL",
    )  # fmt: skip
    start_month: str = setting("TAXI_START_MONTH", "2023-01", "first monthly partition", accepts="a month YYYY-MM")
    train_months: int = setting("TAXI_TRAIN_MONTHS", 1, "months before M that `training_set[M]` trains on", ge=1)
    extended_features: bool = setting(
        "TAXI_EXTENDED_FEATURES", False,
        "`true`: models also use the pickup hour and day of week, and requests then carry `pickup_datetime` "
        "(recorded in each training set; off: the course's features and request)",
    )  # fmt: skip
    # --- MLflow ------------------------------------------------------------------------------
    mlflow_tracking_uri: str | None = setting(
        "MLFLOW_TRACKING_URI", None, "MLflow tracking store (server URL in production)",
        shown="`sqlite:///<data root>/mlflow/mlflow.db` (object-store data root: `sqlite:///<DAGSTER_HOME>/mlflow.db`)",
    )  # fmt: skip
    mlflow_artifact_location: str | None = setting(
        "MLFLOW_ARTIFACT_LOCATION", None, "artifact root of the experiment (used when it is created)",
        shown="`<data root>/mlflow/artifacts`",
    )  # fmt: skip
    mlflow_experiment_name: str | None = setting(
        "MLFLOW_EXPERIMENT_NAME", None, "experiment of all model runs", shown="`taxi-trip-duration-{taxi type}`"
    )
    mlflow_http_request_timeout: int = setting(
        "MLFLOW_HTTP_REQUEST_TIMEOUT", 15,
        "seconds MLflow waits per request to a tracking server (MLflow's own default: 120)", ge=1, le=600,
    )  # fmt: skip
    mlflow_http_request_max_retries: int = setting(
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES", 2,
        "MLflow's retries per request before the store counts as down (MLflow's own default: 7)", ge=0, le=10,
    )  # fmt: skip
    mlflow_tracking_username: str | None = setting(
        "MLFLOW_TRACKING_USERNAME", None, "tracking server login, bound to the `mlflow` resource as an `EnvVar`"
    )
    mlflow_tracking_password: SecretStr | None = setting(
        "MLFLOW_TRACKING_PASSWORD", None, "tracking server password, bound as an `EnvVar` (never a value)"
    )
    mlflow_enable_artifacts_progress_bar: bool = setting(
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", False, "MLflow's upload/download progress bars (noise in step logs)"
    )
    mlflow_s3_endpoint_url: str | None = setting(
        "MLFLOW_S3_ENDPOINT_URL", None,
        "S3-API endpoint of MLflow's artifacts; also the outputs' when neither `AWS_ENDPOINT_URL*` is set",
    )  # fmt: skip
    aws_endpoint_url: str | None = setting(
        "AWS_ENDPOINT_URL", None, "S3-API endpoint (MinIO, Ceph, R2, moto) of the outputs, read by botocore"
    )
    aws_endpoint_url_s3: str | None = setting(
        "AWS_ENDPOINT_URL_S3", None, "the same for S3 only; wins over `AWS_ENDPOINT_URL`"
    )
    # --- freshness, monitoring, promotion ----------------------------------------------------
    training_set_freshness_seconds: int = setting(
        "TAXI_TRAINING_SET_FRESHNESS_SECONDS", 600, "training set fails freshness after this long (Mage's 600 s)", ge=1
    )
    model_freshness_seconds: int = setting(
        "TAXI_MODEL_FRESHNESS_SECONDS", 86400, "models fail freshness after this long (Mage's one day)", ge=1
    )
    ui_base_url: str = setting("TAXI_UI_BASE_URL", "http://127.0.0.1:3000", "links to runs and assets in alerts")
    drift_psi_warn: float = setting(
        "TAXI_DRIFT_PSI_WARN", 0.2, "PSI above which `data_drift` warns (0.1-0.2 moderate, >0.2 major)", ge=0
    )
    drift_unseen_pu_do_warn: float = setting(
        "TAXI_DRIFT_UNSEEN_PU_DO_WARN", 0.1,
        "share of rides with a pickup/dropoff pair unseen in training above which it warns", ge=0, le=1,
    )  # fmt: skip
    champion_tolerance: float = setting(
        "TAXI_CHAMPION_TOLERANCE", 0.0,
        "minutes of RMSE a challenger may lose against the champion and still be promoted", ge=0,
    )  # fmt: skip
    # --- automation and retries --------------------------------------------------------------
    bootstrap_months: int = setting(
        "TAXI_BOOTSTRAP_MONTHS", 3,
        "on its first tick, `new_month_sensor` ingests only the newest this many published months (0: none)", ge=0,
    )  # fmt: skip
    automation_interval_seconds: int = setting(
        "TAXI_AUTOMATION_INTERVAL_SECONDS", 30, "how often the automation sensor evaluates the asset conditions", ge=1
    )
    max_evaluations: int | None = setting(
        "TAXI_MAX_EVALUATIONS", None,
        "caps every model's default number of hyperopt evaluations (`1`: a quick first look, or CI); run config "
        "still sets any value. Unset or 0: each model's registry default (2-8)", ge=0,
    )  # fmt: skip
    max_retries: int = setting(
        "TAXI_MAX_RETRIES", 2, "retries of a step that failed for a transient reason (network, timeout, 5xx, MLflow down)",
        ge=0, le=20,
    )  # fmt: skip
    retry_delay_seconds: float = setting(
        "TAXI_RETRY_DELAY_SECONDS", 30, "delay before the first such retry, doubled for each next one", ge=0
    )
    # --- execution ---------------------------------------------------------------------------
    executor: Literal[EXECUTORS] = setting(
        "TAXI_EXECUTOR", "multiprocess",
        "`multiprocess`, `in_process`, `dask`, `k8s` or `celery_k8s` (see `defs/executors.py`)",
    )  # fmt: skip
    step_start_method: Literal["forkserver", "spawn"] = setting(
        "TAXI_STEP_START_METHOD", "forkserver",
        "how the multiprocess executor starts step processes: `forkserver` (forked from a process that imported "
        "the code location once per run, ~1 s a step) or `spawn` (a fresh interpreter, 8-10 s of imports a step)",
    )  # fmt: skip
    max_concurrent_steps: int = setting(
        "TAXI_MAX_CONCURRENT_STEPS", 2, "steps the multiprocess executor runs at once (the core count here)", ge=1
    )
    max_concurrent_model_steps: int = setting(
        "TAXI_MAX_CONCURRENT_MODEL_STEPS", 1,
        "model fits among them (each fit uses every core; `k` with `TAXI_MAX_THREADS` = cores / k runs k side by side)",
        ge=1,
    )  # fmt: skip
    max_threads: int | None = setting(
        "TAXI_MAX_THREADS", None, "caps the threads of each model fit (unset: the CPUs this process may use)", ge=1
    )
    dask_address: str | None = setting(
        "TAXI_DASK_ADDRESS", None,
        "with `TAXI_EXECUTOR=dask`: the scheduler to run steps on (`tcp://host:8786`); unset, each run starts a local "
        "cluster. Also the cluster boosted models train across when a model step runs outside Dask",
        accepts="a scheduler address like tcp://10.0.0.5:8786",
    )  # fmt: skip
    dask_workers: int = setting(
        "TAXI_DASK_WORKERS", 2,
        "worker processes of that local cluster (one thread each, `TAXI_MAX_THREADS` = cores / workers)", ge=1,
    )  # fmt: skip
    distributed_min_rows: int = setting(
        "TAXI_DISTRIBUTED_MIN_ROWS", 2_000_000,
        "training rides from which XGBoost and LightGBM train across the Dask cluster's workers "
        "(`ml/distributed.py`); below it, or with no cluster, on one process", ge=1,
    )  # fmt: skip
    omp_wait_policy: Literal["PASSIVE", "ACTIVE"] = setting(
        "OMP_WAIT_POLICY", "PASSIVE",
        "how the OpenMP threads of XGBoost and LightGBM wait: spinning ones starve a shared machine "
        "(figures in `benchmarks/README.md`)",
    )  # fmt: skip
    dagster_home: Path = setting(
        "DAGSTER_HOME", PROJECT_ROOT / ".dagster_home", "the Dagster instance (what `.env` sets)",
        shown="`<project>/.dagster_home`",
    )  # fmt: skip
    # --- alerts (values stay in the environment: the notifier binds them as EnvVars) ------------
    smtp_host: str | None = setting("SMTP_HOST", None, "mail server of alerts; unset: email off")
    smtp_port: int | None = setting(
        "SMTP_PORT", None, "its port (STARTTLS; 25 turns STARTTLS off by default)", shown="`587`", ge=1, le=65535
    )
    smtp_email: str | None = setting("SMTP_EMAIL", None, "sender address, also the login name")
    smtp_password: SecretStr | None = setting("SMTP_PASSWORD", None, "login password; unset: no login")
    smtp_use_tls: bool | None = setting(
        "SMTP_USE_TLS", None, "STARTTLS on or off", shown="`true` (`false` on port 25)"
    )
    alert_email_to: str | None = setting("ALERT_EMAIL_TO", None, "comma-separated recipients of alerts")
    alert_webhook_url: SecretStr | None = setting(
        "ALERT_WEBHOOK_URL", None, "Slack-style incoming webhook of alerts; unset: webhook off"
    )

    @field_validator("taxi_type", "executor", "step_start_method", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("omp_wait_policy", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("start_month")
    @classmethod
    def _month(cls, value: str) -> str:
        try:
            months.parse(value)
        except ValueError:
            raise ValueError("a month YYYY-MM (e.g. 2023-01)") from None
        return value

    @field_validator("data_root")
    @classmethod
    def _writable_root(cls, value: str) -> str:
        """A local root must be a folder this process can write (or can create); an object
        store is not probed (no network at load)."""
        if storage.is_url(value):
            return value.rstrip("/")
        path = storage.as_path(value)
        existing = next(p for p in (path, *path.parents) if p.exists())
        if not existing.is_dir():
            raise ValueError(f"a writable folder or an object-store URL; {existing} is not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"a writable folder or an object-store URL; {existing} is not writable")
        return str(path)

    @field_validator("dask_address")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        if value and "://" not in value:
            raise ValueError("a scheduler address like tcp://10.0.0.5:8786")
        return value

    @field_validator("dagster_home")
    @classmethod
    def _home(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _derived_defaults(self) -> Settings:
        """Defaults that depend on other settings (or on what the shared folder holds)."""
        self.ui_base_url = self.ui_base_url.rstrip("/")
        source = self.data_source or default_data_source()
        self.data_source = source if "://" in source else str(Path(source).expanduser().resolve())
        if storage.is_url(self.data_root):
            # SQLite cannot live on an object store: the tracking database stays beside
            # Dagster's own, the artifacts go to the store.
            tracking = f"sqlite:///{self.dagster_home.resolve() / 'mlflow.db'}"
            artifacts = f"{self.data_root}/mlflow/artifacts"
        else:
            mlflow_dir = Path(self.data_root) / "mlflow"
            tracking, artifacts = f"sqlite:///{mlflow_dir / 'mlflow.db'}", (mlflow_dir / "artifacts").as_uri()
        self.mlflow_tracking_uri = self.mlflow_tracking_uri or tracking
        self.mlflow_artifact_location = self.mlflow_artifact_location or artifacts
        self.mlflow_experiment_name = self.mlflow_experiment_name or f"taxi-trip-duration-{self.taxi_type}"
        return self

    @cached_property
    def type_root(self):
        """Outputs of this deployment's taxi type (a Path, or a UPath on an object store):
        green and yellow never mix."""
        return storage.as_path(self.data_root) / self.taxi_type

    @property
    def training_set_freshness(self) -> timedelta:
        return timedelta(seconds=self.training_set_freshness_seconds)

    @property
    def model_freshness(self) -> timedelta:
        return timedelta(seconds=self.model_freshness_seconds)

    @property
    def s3_endpoint_url(self) -> str | None:
        """The outputs' S3-API endpoint, as botocore resolves it, with MLflow's as the fallback."""
        return self.aws_endpoint_url_s3 or self.aws_endpoint_url or self.mlflow_s3_endpoint_url


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
        "# here; see the README's Settings table.",
    ]
    lines += [f"{key}=${{{key}:-{value}}}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


# --- reading ----------------------------------------------------------------------------------


def _base_type(field: FieldInfo) -> Any:
    """``int`` of ``int | None``; a ``Literal[...]`` as it is."""
    union = get_origin(field.annotation) in (Union, UnionType)
    return next(t for t in get_args(field.annotation) if t is not type(None)) if union else field.annotation


def accepts(field: FieldInfo) -> str:
    """What a setting accepts, in words (``a whole number >= 1``, ``green or yellow``): the
    README's column and the error's "expected"."""
    extra = field.json_schema_extra or {}
    if "accepts" in extra:
        return str(extra["accepts"])
    kind = _base_type(field)
    if get_origin(kind) is Literal:
        values = [str(v) for v in get_args(kind)]
        return ", ".join(values[:-1]) + " or " + values[-1]
    if kind is bool:
        return "true or false (also 1/0, yes/no, on/off)"
    if kind not in (int, float):
        return {Path: "a path", SecretStr: "text (a secret: never echoed)"}.get(kind, "text")
    words = "a whole number" if kind is int else "a number"
    limits = {k: getattr(m, k) for m in field.metadata for k in ("ge", "le") if hasattr(m, k)}
    if "ge" in limits and "le" in limits:
        return f"{words} from {limits['ge']} to {limits['le']}"
    if "ge" in limits:
        return f"{words} >= {limits['ge']}"
    return f"{words} <= {limits['le']}" if "le" in limits else words


def describe(exc: ValidationError, model: type[BaseSettings]) -> str:
    """One line for every bad value: ``invalid setting TAXI_TYPE='purple': expected one of green, yellow``."""
    by_variable = {f.validation_alias: f for f in model.model_fields.values()}
    parts = []
    for error in exc.errors():
        variable = str(error["loc"][0]) if error["loc"] else "settings"
        field = by_variable.get(variable)
        secret = field is not None and _base_type(field) is SecretStr
        raw = "'***'" if secret else repr(error["input"])[:120]
        expected = str(error["ctx"]["error"]) if error["type"] == "value_error" or field is None else accepts(field)
        parts.append(f"{variable}={raw}: expected {expected}")
    return f"invalid setting{'s' if len(parts) > 1 else ''} " + "; ".join(parts)


def read_settings(model: type[BaseSettings] = Settings):
    """``model`` from the environment as it is now (no ``.env``, nothing exported); a bad value
    raises :class:`SettingsError`."""
    try:
        return model()
    except ValidationError as exc:
        raise SettingsError(describe(exc, model)) from None


def export_library_environment(settings: Settings) -> None:
    """Hand the libraries that read only the environment their values (subprocesses inherit them):

    OpenMP reads its wait policy once when XGBoost/LightGBM load; MLflow reads its HTTP timeout,
    retries and progress bar on every request; botocore (s3fs, MLflow's boto3) reads the S3
    endpoint in every process, Dask workers included, that turns a path string back into a path.
    """
    os.environ["OMP_WAIT_POLICY"] = settings.omp_wait_policy
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(settings.mlflow_http_request_timeout)
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(settings.mlflow_http_request_max_retries)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = str(settings.mlflow_enable_artifacts_progress_bar).lower()
    if settings.s3_endpoint_url and not (settings.aws_endpoint_url_s3 or settings.aws_endpoint_url):
        os.environ["AWS_ENDPOINT_URL_S3"] = settings.s3_endpoint_url


def child_environment(**overrides: str) -> dict[str, str]:
    """The environment of a subprocess the project starts (``dagster job launch``): this
    process's own, with ``overrides`` (the values this process resolved) on top."""
    return {**os.environ, **overrides}


def load_settings() -> Settings:
    """The project's ``.env`` into the environment (unset variables only: the shell wins; Dagster's
    CLI, subprocesses and ``dg.EnvVar`` see it too), then the validated settings, then the
    libraries' variables exported."""
    if not read_settings(DotenvSwitch).ignore_dotenv and DOTENV_FILE.is_file():
        from dotenv import load_dotenv

        load_dotenv(DOTENV_FILE, override=False, interpolate=True)
    settings = read_settings()
    export_library_environment(settings)
    return settings


# --- SETTINGS, read on first use --------------------------------------------------------------

SETTINGS: Settings  # built by __getattr__ below on first access


def _print_settings_errors_as_one_line(previous):
    def hook(kind, error, traceback):
        if issubclass(kind, SettingsError):
            print(error, file=sys.stderr)  # the line names the variable; a stack would add nothing
        else:
            previous(kind, error, traceback)

    return hook


def __getattr__(name: str) -> Any:
    """``SETTINGS``, loaded once: a bad value fails the importing module with one line."""
    if name != "SETTINGS":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    global SETTINGS
    try:
        SETTINGS = load_settings()
    except SettingsError as exc:
        if os.environ.get(VALIDATION_MODE_VARIABLE):
            raise SystemExit(str(exc)) from None
        # A process that dies of it (dagster asset materialize, python -c ...) prints the line;
        # one that catches it (a code server) shows it with the importing modules.
        sys.excepthook = _print_settings_errors_as_one_line(sys.excepthook)
        raise exc.with_traceback(None) from None  # the stack starts at the importing module
    return SETTINGS


@contextmanager
def exit_on_bad_settings(prog: str) -> Iterator[None]:
    """For command lines: a bad setting prints ``{prog}: error: <line>`` and exits 2."""
    try:
        yield
    except SettingsError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
