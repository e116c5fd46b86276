"""Loading registered models for serving, and the request payloads of the scoring server.

The champion of the latest month is always ``models:/taxi-trip-duration-<taxi>@champion``
(``champion_model`` moves the alias), so ``mlflow models serve -m
"models:/taxi-trip-duration-green@champion" --env-manager local`` never changes when another
estimator wins (README, "Online inference", with what MLflow's scoring server does before the
model sees a request). ``--env-manager local`` serves with the installed ``taxi_assets``
package: the model stores no copy of the code (:mod:`taxi_assets.registry.pyfunc`). No Dagster
import here: the CLI and the ``predict`` job share :func:`load_model`, which names a registered
model whose files cannot be read (:class:`ModelLoadError`: model, version, file, reason, what
to do).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    from taxi_assets.registry.tracking import sqlite_path

    file = sqlite_path(tracking_uri)
    return None if file is None or file.exists() else file


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
        from taxi_assets.registry.names import CHAMPION_ALIAS

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
    stack trace (and no empty sqlite store is created as a side effect). A model whose files
    cannot be read (random bytes, a truncated file, invalid YAML) is one
    :class:`ModelLoadError` naming the model, version and file and what to do.
    """
    missing = _missing_sqlite_store(tracking_uri)
    if missing is not None:
        raise ModelNotFoundError(
            f"no MLflow store at {missing} (tracking URI {tracking_uri}), so no model {model_uri}: {pipeline_hint()} "
            "or set MLFLOW_TRACKING_URI to the store that holds it"
        )
    version = resolve_version(model_uri, tracking_uri)
    import tempfile

    import mlflow
    from mlflow.exceptions import MlflowException

    from taxi_assets.registry.pyfunc import without_type_hint_advice
    from taxi_assets.registry.tracking import tracking_uri_set

    parsed = parse_models_uri(model_uri)
    name = parsed[0] if parsed else model_uri
    with tracking_uri_set(tracking_uri), without_type_hint_advice(), tempfile.TemporaryDirectory(prefix="taxi-model-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        except (MlflowException, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelNotFoundError(f"cannot load {model_uri} from {tracking_uri}: {first}") from None
        model = _load_local(Path(local), name, version, model_uri, tracking_uri)
    return LoadedModel(model=model, model_uri=model_uri, tracking_uri=tracking_uri, version=version)


class ModelLoadError(RuntimeError):
    """A registered model whose files cannot be read: which model, version and file, why, and
    what to do. ``artifact`` is the file's path inside the model's folder (``MLmodel``,
    ``artifacts/predictor.joblib``, the model's code file)."""

    def __init__(self, model_name: str, version: str | None, artifact: str, reason: str, location: str = ""):
        self.model_name, self.version, self.artifact, self.reason = model_name, version, artifact, reason
        which = f"registered model {model_name} version {version}" if version else f"model {model_name}"
        where = f" (in {location})" if location else ""
        super().__init__(
            f"{which} cannot be loaded: its {artifact}{where} is damaged: {reason}; promote a good version again "
            "(point the 'champion' alias at it in the MLflow UI) or re-materialize champion_model for a month"
        )


# What every logged model's python_function flavor states (MLflow reads each on loading).
_PYFUNC_KEYS = ("loader_module", "python_version", "env", "artifacts")


def _load_local(folder: Path, name: str, version: str | None, model_uri: str, tracking_uri: str):
    """``mlflow.pyfunc.load_model`` of a downloaded model folder; a file that cannot be read is a
    :class:`ModelLoadError` naming it (MLflow would raise a ``KeyError: 247`` or a YAML parser
    traceback naming neither the model nor the file)."""
    import mlflow
    from mlflow.models import Model

    from taxi_assets.registry.pyfunc import MODEL_CODE_FILE, DamagedArtifactError, unreadable

    location = _stored_location(model_uri, tracking_uri)

    def damaged(artifact: str, reason: str) -> ModelLoadError:
        return ModelLoadError(name, version, artifact, reason, location)

    try:
        flavors = Model.load(folder / "MLmodel").flavors
    except Exception as exc:  # random bytes, invalid YAML, a document that is not a model description
        raise damaged("MLmodel", unreadable(exc)) from None
    if not isinstance(flavors, dict) or not isinstance(flavors.get("python_function"), dict):
        raise damaged("MLmodel", "it describes no python_function model (truncated or overwritten?)")
    absent = [key for key in _PYFUNC_KEYS if key not in flavors["python_function"]]
    if absent:
        raise damaged("MLmodel", f"incomplete: its python_function flavor has no {absent[0]} (truncated?)")
    try:
        return mlflow.pyfunc.load_model(str(folder))
    except DamagedArtifactError as exc:
        raise damaged(exc.artifact, exc.reason) from None
    except Exception as exc:
        text = str(exc)
        if MODEL_CODE_FILE in text:  # MLflow: "Failed to run user code from .../trip_duration_model.py"
            cause = exc.__cause__ or exc.__context__ or exc
            raise damaged(MODEL_CODE_FILE, unreadable(cause)) from None
        # Nothing else in the folder is read on loading: MLmodel parsed but lacks what it must say.
        raise damaged("MLmodel", f"incomplete: MLflow cannot load the model it describes ({type(exc).__name__})") from None


def _stored_location(model_uri: str, tracking_uri: str) -> str:
    """Where the registry keeps the model's files (for the operator), or "" if unknown."""
    parsed = parse_models_uri(model_uri)
    if parsed is None:
        return model_uri
    from mlflow.tracking import MlflowClient

    name, version, alias = parsed
    try:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        if alias is not None:
            version = client.get_model_version_by_alias(name, alias).version
        return client.get_model_version_download_uri(name, version)
    except Exception:  # noqa: BLE001 - only for the message
        return ""


# --- request payloads -------------------------------------------------------------------------


def payload(records: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> dict:
    """The scoring server's JSON body for ``records`` (``{"dataframe_records": [...]}``)."""
    if isinstance(records, Mapping):
        records = [records]
    return {"dataframe_records": [dict(r) for r in records]}


def records_from_json_text(text: str | bytes) -> list[dict]:
    """:func:`records_from_json` of a JSON text: JSON nested too deeply for Python's parser
    (``[[[[...`` thousands deep) is a ``ValueError`` like any other bad request, not a
    ``RecursionError``; invalid JSON is ``ValueError("not valid JSON: ...")``."""
    import json

    try:
        document = json.loads(text)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply to be ride records") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"not valid JSON: {exc}") from None
    return records_from_json(document)


def records_from_json(document: Any) -> list[dict]:
    """Records from any of the accepted JSON shapes: the server payload
    ``{"dataframe_records": [...]}``, a list of records, or one record (``document`` is the
    parsed JSON; see :func:`records_from_json_text` for text). Anything else is a
    ``ValueError``; the records' values (booleans, nested values, ranges) are checked by
    :func:`~taxi_assets.ml.features.validate_request`.
    """
    if isinstance(document, dict) and "dataframe_records" in document:
        document = document["dataframe_records"]
        if not isinstance(document, list):  # the payload's records are always a list
            document = None
    if isinstance(document, dict):
        document = [document]
    if not isinstance(document, list) or not all(isinstance(r, dict) for r in document):
        raise ValueError(
            'expected {"dataframe_records": [{...}, ...]}, a list of records or one record '
            "{PULocationID, DOLocationID, trip_distance}"
        )
    return document


