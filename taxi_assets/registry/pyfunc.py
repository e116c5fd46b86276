"""The MLflow face of a trained model: a pyfunc that takes raw ride records and returns minutes.

The logged model is one artifact, the joblib-pickled
:class:`~taxi_assets.ml.predictor.TripDurationPredictor` (representation + estimator), so
``mlflow.pyfunc.load_model(uri).predict(df)`` and ``mlflow models serve`` accept the same
``{PULocationID, DOLocationID, trip_distance}`` records as the in-memory predictor, validate
them the same way and give the same minutes (the course's callers had to apply the
``DictVectorizer`` themselves). Registry layout (README, "MLflow"): one registered model per
estimator and taxi type (:func:`taxi_assets.registry.names.registered_model_name`), a version
per monthly materialization. No ``code_paths``: the code is imported from the installed
``taxi_assets`` package (:func:`log_predictor` says why), and loading a model imports only
``taxi_assets.registry.pyfunc`` and ``taxi_assets.ml``, no Dagster (tested).
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from taxi_assets.ml.cleaning import IMPOSSIBLE_DISTANCE_MILES
from taxi_assets.ml.features import REQUEST_FIELDS, InvalidRequestError
from taxi_assets.ml.predictor import TripDurationPredictor

PREDICTOR_ARTIFACT = "predictor"
PREDICTOR_FILE = "predictor.joblib"
# Where the predictor sits inside a logged model's folder (MLflow copies artifacts there).
PREDICTOR_PATH = f"artifacts/{PREDICTOR_FILE}"

# "Models from code": the logged model stores this script instead of a cloudpickled
# TripDurationModel instance, so loading a model unpickles nothing but the predictor.
MODEL_CODE_FILE = "trip_duration_model.py"
MODEL_CODE = """\
import mlflow

from taxi_assets.registry.pyfunc import TripDurationModel

mlflow.models.set_model(TripDurationModel())
"""


class DamagedArtifactError(RuntimeError):
    """A file of a logged model cannot be read: ``artifact`` is its path inside the model's
    folder, ``reason`` what is wrong with it (never its bytes)."""

    def __init__(self, artifact: str, reason: str):
        super().__init__(f"{artifact}: {reason}")
        self.artifact = artifact
        self.reason = reason


def unreadable(exc: BaseException) -> str:
    """Why a file could not be read, in words that quote none of its content: a YAML error's
    line and column, "truncated" for a file that ends early, else the error's type."""
    import yaml

    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        return "not valid YAML" + (f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else "")
    if isinstance(exc, UnicodeDecodeError):
        return f"not text (a byte that is not UTF-8 at offset {exc.start})"
    if isinstance(exc, EOFError):
        return "truncated (the data ends early)"
    if isinstance(exc, FileNotFoundError):
        return "missing"
    return f"unreadable ({type(exc).__name__})"


class InvalidTripRequestError(MlflowException, InvalidRequestError):
    """A bad request seen through MLflow: still an ``InvalidRequestError`` for Python callers,
    and an ``INVALID_PARAMETER_VALUE`` for the scoring server, which then answers 400 with
    this message (a plain exception is reported as "unexpected error", its message buried in
    a stack trace)."""

    def __init__(self, message: str):
        MlflowException.__init__(self, message, error_code=INVALID_PARAMETER_VALUE)


@contextlib.contextmanager
def without_type_hint_advice() -> Iterator[None]:
    """Drop MLflow's "Add type hints to the `predict` method" warning.

    MLflow emits it when a PythonModel subclass is defined (so when this module is imported,
    by a training step or a model being loaded) and forces it with ``simplefilter("once")``,
    so ``-W ignore`` cannot silence it. It is advice for the model's author that does not
    apply here: ``predict`` takes frames, records and columns alike and validates them itself
    (see :func:`log_predictor`). Other warnings pass through.
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


# Defining a PythonModel subclass is what makes MLflow print its type-hint advice.
with without_type_hint_advice():

    class TripDurationModel(mlflow.pyfunc.PythonModel):
        """Pyfunc wrapper: ``predict(records)`` -> minutes (float64 array), via the predictor artifact."""

        def load_context(self, context) -> None:
            try:
                predictor = joblib.load(context.artifacts[PREDICTOR_ARTIFACT])
            except Exception as exc:  # random bytes, a truncated file: pickle fails in many ways
                raise DamagedArtifactError(PREDICTOR_PATH, unreadable(exc)) from None
            if not isinstance(predictor, TripDurationPredictor):
                raise DamagedArtifactError(PREDICTOR_PATH, f"holds a {type(predictor).__name__}, not a predictor")
            self.predictor: TripDurationPredictor = predictor

        def predict(self, context, model_input, params=None) -> np.ndarray:
            try:  # a request: held to the distances the models know (ml/features.py)
                return self.predictor.predict(model_input, max_distance_miles=IMPOSSIBLE_DISTANCE_MILES)
            except InvalidRequestError as exc:
                raise InvalidTripRequestError(str(exc)) from exc


def _requirements(predictor: TripDurationPredictor) -> list[str]:
    """The model's pip requirements, as installed here. A booster is named by the distribution
    that provides its module in this environment (``xgboost-cpu`` for ``xgboost``)."""
    from importlib.metadata import packages_distributions, version

    packages = ["mlflow", "scikit-learn", "scipy", "numpy", "pandas", "joblib"]
    module = type(predictor.estimator).__module__.split(".")[0]
    if module in ("xgboost", "lightgbm"):
        packages.append(packages_distributions().get(module, [module])[0])
    return [f"{p}=={version(p)}" for p in packages]


def example_records(records: pd.DataFrame | list[dict] | dict) -> pd.DataFrame:
    """A request frame with exactly the request fields: zone ids int64, distance float64."""
    if isinstance(records, dict):
        records = [records]
    frame = pd.DataFrame(records)
    missing = [f for f in REQUEST_FIELDS if f not in frame.columns]
    if missing:
        raise ValueError(f"input example lacks field(s) {', '.join(missing)}")
    return pd.DataFrame(
        {
            "PULocationID": frame["PULocationID"].astype("int64"),
            "DOLocationID": frame["DOLocationID"].astype("int64"),
            "trip_distance": frame["trip_distance"].astype("float64"),
        }
    ).reset_index(drop=True)


# What a request holds, stored in each logged model's MLmodel file (``metadata``) beside its
# input example: the model carries no MLflow signature (see :func:`log_predictor`).
REQUEST_METADATA = {
    "request_fields": {
        "PULocationID": "pickup TLC zone id, a whole number 1-265",
        "DOLocationID": "dropoff TLC zone id, a whole number 1-265",
        "trip_distance": f"miles, a finite number from 0 to {IMPOSSIBLE_DISTANCE_MILES:g}",
    },
    "prediction": "trip duration in minutes, float64, one per record",
    "validation": "taxi_assets.ml.features.validate_request",
}


def log_predictor(
    predictor: TripDurationPredictor,
    name: str,
    input_example: pd.DataFrame | list[dict] | dict,
    registered_model_name: str | None = None,
    tags: dict[str, Any] | None = None,
):
    """Log ``predictor`` as a pyfunc model in the active run and register it.

    Returns mlflow's ``ModelInfo`` (``model_uri``, ``registered_model_version``, ...). The
    predictor scores ``input_example`` first, so an example the model cannot score fails
    before anything is logged.

    No MLflow signature, on purpose: the model validates every request itself
    (:func:`~taxi_assets.ml.features.validate_request`: the fields present, numbers, zone ids
    whole numbers 1-265, distances finite, from 0 to 100 miles; the first bad value named with its
    field and record), the same for ``mlflow models serve``, ``pyfunc.load_model(...).predict``,
    the CLI and the ``predict`` job. MLflow's schema enforcement in front of it only got in the
    way: typed ``long`` it cast zone ``236.5`` to 236 before the model saw it; typed ``double``
    it refused int64 frames in process; typed ``any`` it checked nothing the model does not
    and rebuilt every request's frame: the scoring server's ``invocations()`` took 1.33 ms a
    record with it, 0.85 ms without, and the served p50 fell by about 0.6 ms
    (``benchmarks/serving_latency.py``). The fields are documented in the model's
    ``metadata`` (:data:`REQUEST_METADATA`) and its input example.

    No ``code_paths`` either: the pyfunc class and the predictor are imported from the
    installed ``taxi_assets`` package, so serving runs in the project environment (``mlflow
    models serve ... --env-manager local``, or an image built from the project). Copying the
    package into each model would put a second ``taxi_assets`` on ``sys.path`` of every process
    that loads a model (shadowing the installed one in a fresh server, silently ignored in a
    process that already imported it). The pip requirements are pinned to the versions that
    trained the model, given explicitly (inference by import capture costs a subprocess and
    seconds).
    """
    if mlflow.active_run() is None:
        raise RuntimeError(f"log_predictor({name!r}) needs an active MLflow run: call it inside mlflow.start_run()")
    example = example_records(input_example)
    predictor.predict(example)
    with tempfile.TemporaryDirectory(prefix="taxi-predictor-") as tmp:
        path = Path(tmp) / PREDICTOR_FILE
        joblib.dump(predictor, path)
        code = Path(tmp) / MODEL_CODE_FILE
        code.write_text(MODEL_CODE)
        with warnings.catch_warnings():
            # Advice that does not apply: predict() takes frames, records and columns alike, and
            # validates them itself (no signature, see above).
            warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")
            return mlflow.pyfunc.log_model(
                name=name,
                python_model=str(code),
                artifacts={PREDICTOR_ARTIFACT: str(path)},
                signature=False,  # not inferred from the example either
                metadata=REQUEST_METADATA,
                input_example=example,
                registered_model_name=registered_model_name,
                pip_requirements=_requirements(predictor),
                tags=tags,
            )
