"""Online inference: the champion behind ``mlflow models serve``, a client for it, and the
model loading shared by ``taxi-assets predict`` and the ``predict`` job.

README snippet (Online inference)
---------------------------------
The champion of the latest month is always ``models:/taxi-trip-duration-green@champion``
(the ``champion_model`` asset moves the alias), so the serving command never changes when a
different estimator wins. Serve it from the project's environment::

    export MLFLOW_TRACKING_URI=sqlite:///$PWD/data/mlflow/mlflow.db   # or your tracking server
    mlflow models serve -m "models:/taxi-trip-duration-green@champion" \\
        --env-manager local -h 127.0.0.1 -p 5001

``--env-manager local`` serves with the installed ``taxi_assets`` package (the model stores
no copy of the code, see :mod:`taxi_assets.serving.pyfunc`). The alias is resolved when the
server starts: restart it after a promotion. Wait until ``GET /ping`` answers 200, then post
raw rides, one record per ride::

    curl -s -X POST http://127.0.0.1:5001/invocations \\
        -H 'Content-Type: application/json' \\
        -d '{"dataframe_records": [{"PULocationID": 236, "DOLocationID": 239, "trip_distance": 1.98},
                                   {"PULocationID": 74, "DOLocationID": 75, "trip_distance": 1.2}]}'
    {"predictions": [7.63, 9.82]}

Predictions are minutes, one per record, in request order (the figures above are the test
champion's). A request the model cannot score is answered ``400`` with a message naming the
field (and the record)::

    missing field      -> INVALID_PARAMETER_VALUE  "... Error: missing field(s) trip_distance: each record needs PULocationID, DOLocationID, trip_distance"
    non-numeric value  -> INVALID_PARAMETER_VALUE  "... Error: field 'PULocationID' must be a finite number, got 'abc' in record 0"
    negative distance  -> INVALID_PARAMETER_VALUE  "... Error: field 'trip_distance' must not be negative, got -1.0 in record 1"
    unknown zone id    -> INVALID_PARAMETER_VALUE  "... Error: field 'DOLocationID' must be a TLC zone id between 1 and 265, got 999 in record 0"
    fractional zone id -> INVALID_PARAMETER_VALUE  "... Error: field 'PULocationID' must be a TLC zone id between 1 and 265, got 236.5 in record 0"

(the model's own validation, the same text as in Python and in ``taxi-assets predict``; the
model has no MLflow signature that would check or cast the fields first, see
:func:`taxi_assets.serving.pyfunc.log_predictor`). The ``dataframe_split``, ``inputs``
(columns) and ``instances`` layouts are accepted as well.

Without a server: ``taxi-assets predict --pu 236 --do 239 --distance 1.98`` prints the
minutes of one ride; ``taxi-assets predict --json rides.json`` scores a file holding the same
``dataframe_records`` payload (or a list of records, or one record). In the Dagster UI, the
``predict`` job's launchpad does the same (see :mod:`taxi_assets.serving.jobs`). Latency:
``benchmarks/serving_latency.py``.

Python: :class:`ScoringServer` starts and stops such a server (its own process group, free
port on loopback) and :class:`ScoringClient` posts records to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_HOST = "127.0.0.1"
SQLITE_PREFIX = "sqlite:///"


# --- loading a registered model ----------------------------------------------------------------


class ModelNotFoundError(RuntimeError):
    """The requested model (usually the champion) is not in the tracking store."""


@dataclass(frozen=True)
class LoadedModel:
    """A loaded pyfunc model and what it resolved to (for logs and run metadata)."""

    model: Any  # mlflow.pyfunc.PyFuncModel
    model_uri: str
    tracking_uri: str
    version: str | None  # registered version behind a models:/ URI, else None


def parse_models_uri(model_uri: str) -> tuple[str, str | None, str | None] | None:
    """``models:/name@alias`` -> (name, None, alias); ``models:/name/3`` -> (name, "3", None).

    None for any other URI (runs:/, a path, ...), which is then loaded without a registry check.
    """
    prefix = "models:/"
    if not model_uri.startswith(prefix):
        return None
    rest = model_uri[len(prefix) :].strip("/")
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        return name, None, alias
    if "/" in rest:
        name, version = rest.rsplit("/", 1)
        return name, version, None
    return None


def pipeline_hint() -> str:
    return "run the pipeline first (`taxi-assets run --month 2024-02`, or materialize champion_model in Dagster)"


def _missing_sqlite_store(tracking_uri: str) -> Path | None:
    """The database file of a sqlite tracking URI when it does not exist (MLflow would create it)."""
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return None
    path = tracking_uri[len(SQLITE_PREFIX) :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    file = Path(path).expanduser()
    return None if file.exists() else file


@contextlib.contextmanager
def tracking_uri_set(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking (and so registry) URI at ``tracking_uri``, then
    restore exactly what was there.

    ``mlflow.set_tracking_uri`` also writes the ``MLFLOW_TRACKING_URI`` environment variable,
    and ``mlflow.get_tracking_uri()`` returns a resolved default (``sqlite:///<cwd>/mlflow.db``)
    when nothing is set, so "set it back to get_tracking_uri()" would leave the process pinned
    to that default. The explicit setting (None when unset) and the variable are restored instead.
    """
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    explicit = getattr(tracking_utils, "_tracking_uri", None)
    variable = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(explicit)
        if variable is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = variable


@contextlib.contextmanager
def _without_type_hint_advice() -> Iterator[None]:
    """Drop MLflow's "Add type hints to the `predict` method" warning while a model loads.

    MLflow emits it when the model code first imports :class:`TripDurationModel` and forces
    it with ``simplefilter("once")``, so ``-W ignore`` cannot silence it; it is advice for
    the model's author, not for someone scoring rides. Other warnings pass through.
    """
    original = warnings.showwarning

    def show(message, category, *args, **kwargs):
        if "Add type hints to the `predict` method" not in str(message):
            original(message, category, *args, **kwargs)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def resolve_version(model_uri: str, tracking_uri: str) -> str | None:
    """The registered version a ``models:/`` URI points to; raises ModelNotFoundError if none."""
    parsed = parse_models_uri(model_uri)
    if parsed is None:
        return None
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    name, version, alias = parsed
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if alias is not None:
            return str(client.get_model_version_by_alias(name, alias).version)
        return str(client.get_model_version(name, version).version)
    except MlflowException as exc:
        from taxi_assets.assets.serving import CHAMPION_ALIAS

        first = (str(getattr(exc, "message", exc)).strip().splitlines() or [type(exc).__name__])[0]
        if alias == CHAMPION_ALIAS:
            raise ModelNotFoundError(
                f"no champion registered yet: {model_uri} is not in the MLflow store {tracking_uri} "
                f"(MLflow: {first}); {pipeline_hint()}"
            ) from None
        raise ModelNotFoundError(
            f"no model {model_uri} in the MLflow store {tracking_uri} (MLflow: {first}); check the registered "
            "name and version or alias in the MLflow UI"
        ) from None


def load_model(model_uri: str, tracking_uri: str) -> LoadedModel:
    """Load ``model_uri`` with ``mlflow.pyfunc.load_model`` from the store at ``tracking_uri``.

    Checks first that the store exists and that a ``models:/`` URI resolves, so "nothing
    trained yet" is one :class:`ModelNotFoundError` telling to run the pipeline, not MLflow's
    stack trace (and no empty sqlite store is created as a side effect).
    """
    missing = _missing_sqlite_store(tracking_uri)
    if missing is not None:
        raise ModelNotFoundError(
            f"no MLflow store at {missing} (tracking URI {tracking_uri}), so no model {model_uri}: {pipeline_hint()} "
            "or set MLFLOW_TRACKING_URI to the store that holds it"
        )
    version = resolve_version(model_uri, tracking_uri)
    import mlflow
    from mlflow.exceptions import MlflowException

    with tracking_uri_set(tracking_uri), _without_type_hint_advice():
        try:
            model = mlflow.pyfunc.load_model(model_uri)
        except (MlflowException, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelNotFoundError(f"cannot load {model_uri} from {tracking_uri}: {first}") from None
    return LoadedModel(model=model, model_uri=model_uri, tracking_uri=tracking_uri, version=version)


# --- request payloads -------------------------------------------------------------------------


def payload(records: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> dict:
    """The scoring server's JSON body for ``records`` (``{"dataframe_records": [...]}``)."""
    if isinstance(records, Mapping):
        records = [records]
    return {"dataframe_records": [dict(r) for r in records]}


def records_from_json(document: Any) -> list[dict]:
    """Records from any of the accepted JSON shapes: the server payload
    ``{"dataframe_records": [...]}``, a list of records, or one record."""
    if isinstance(document, dict) and "dataframe_records" in document:
        document = document["dataframe_records"]
    if isinstance(document, dict):
        document = [document]
    if not isinstance(document, list) or not all(isinstance(r, dict) for r in document):
        raise ValueError(
            'expected {"dataframe_records": [{...}, ...]}, a list of records or one record '
            "{PULocationID, DOLocationID, trip_distance}"
        )
    return document


# --- the scoring server -----------------------------------------------------------------------


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def serve_command(
    model_uri: str,
    port: int,
    host: str = DEFAULT_HOST,
    workers: int | None = None,
    python: str = sys.executable,
) -> list[str]:
    """``mlflow models serve`` for ``model_uri`` in this environment (``--env-manager local``)."""
    command = [python, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
               "--host", host, "--port", str(port)]  # fmt: skip
    if workers:
        command += ["--workers", str(workers)]
    return command


def serve_env(tracking_uri: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: ``base`` (default ``os.environ``) with the tracking store set."""
    env = dict(os.environ if base is None else base)
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    # `mlflow models serve` execs `uvicorn` by name: put this interpreter's scripts first on
    # PATH, so it works from a venv that was never activated (make test, CI, cron).
    scripts = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "")]) if env.get("PATH") else scripts
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


class ScoringServer:
    """``mlflow models serve`` as a subprocess in its own process group.

    ``with ScoringServer(uri, tracking_uri, log_path) as server: server.url`` starts it on a
    free loopback port, waits until ``/ping`` answers (raising with the log tail if the server
    exits or does not answer in ``ready_timeout`` seconds) and on exit stops only its own
    process group (SIGTERM, then SIGKILL after ``stop_timeout``).
    """

    def __init__(
        self,
        model_uri: str,
        tracking_uri: str,
        log_path: Path,
        host: str = DEFAULT_HOST,
        port: int | None = None,
        workers: int | None = None,
        ready_timeout: float = 120.0,
        stop_timeout: float = 20.0,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ):
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.log_path = Path(log_path)
        self.host = host
        self.port = port or free_port(host)
        self.workers = workers
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.env = serve_env(tracking_uri, env)
        self.cwd = cwd or self.log_path.parent
        self.process: subprocess.Popen | None = None
        self.started_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def command(self) -> list[str]:
        return serve_command(self.model_uri, self.port, self.host, self.workers)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def start(self) -> ScoringServer:
        started = time.monotonic()
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.cwd,
            )  # fmt: skip
        try:
            self._wait_ready(started)
        except BaseException:
            self.stop()
            raise
        self.started_seconds = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        import urllib.error
        import urllib.request

        deadline = started + self.ready_timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mlflow models serve exited with code {self.process.returncode} before answering /ping:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow models serve did not answer {self.url}/ping within {self.ready_timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.25)

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None and not _group_alive(process.pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        # uvicorn workers may outlive the parent by a moment; they are in the same group
        deadline = time.monotonic() + self.stop_timeout
        while _group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def __enter__(self) -> ScoringServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the client -------------------------------------------------------------------------------


class ScoringError(RuntimeError):
    """The scoring server refused a request (``status`` 4xx/5xx, MLflow's ``error_code``)."""

    def __init__(self, status: int, error_code: str | None, message: str):
        super().__init__(f"HTTP {status} {error_code or ''}: {message}".replace("  ", " "))
        self.status = status
        self.error_code = error_code
        self.message = message


class ScoringClient:
    """Posts records to a scoring server over one keep-alive ``requests.Session``."""

    def __init__(self, url: str, timeout: float = 30.0):
        import requests

        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def post(self, records: Sequence[Mapping[str, Any]] | Mapping[str, Any]):
        """The raw ``requests.Response`` for ``records`` (for status and body checks)."""
        return self.session.post(
            f"{self.url}/invocations",
            data=json.dumps(payload(records)),
            headers={"Content-Type": "application/json"},
            timeout=self.timeout,
        )

    def predict(self, records: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> list[float]:
        """Minutes for each record; raises :class:`ScoringError` when the server refuses."""
        response = self.post(records)
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text}
        if response.status_code != 200:
            raise ScoringError(response.status_code, body.get("error_code"), str(body.get("message", body)))
        return [float(p) for p in body["predictions"]]

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> ScoringClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
