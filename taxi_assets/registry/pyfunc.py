"""The MLflow face of a trained model: a pyfunc that takes raw ride records and returns minutes.

The logged model is one artifact, the joblib-pickled
:class:`~taxi_assets.ml.predictor.TripDurationPredictor` (vectorizer + estimator), wrapped by
:class:`TripDurationModel`. So ``mlflow.pyfunc.load_model(uri).predict(df)`` and
``mlflow models serve`` accept the same ``{PULocationID, DOLocationID, trip_distance}``
records as the in-memory predictor, validate them the same way and give the same minutes;
the course's models needed the caller to load and apply the ``DictVectorizer`` separately.

Registry layout: one registered model per estimator and taxi type,
``taxi-trip-duration-{taxi_type}-{estimator}`` (:func:`taxi_assets.registry.names.registered_model_name`); each monthly
materialization adds a version, tagged with its month and validation RMSE. Versions of one
name are always comparable (same estimator, same feature code), and promoting a champion
across estimators is an alias on the winner's name, not a mixed version history.

Code: no ``code_paths``. The pyfunc class and the predictor are imported from the installed
``taxi_assets`` package, so serving runs in the project environment
(``mlflow models serve -m models:/<name>/<version> --env-manager local``, or an image built
from the project). Copying the package into each model with ``code_paths`` would put a
second ``taxi_assets`` on ``sys.path`` of every process that loads a model (shadowing the
installed one in a fresh server, silently ignored in a process that already imported it).
Loading the model imports only ``taxi_assets.registry.pyfunc`` and ``taxi_assets.ml``: no
Dagster (tested). The pip requirements are pinned to the versions that trained
the model (given explicitly: inference by import capture costs a subprocess and seconds).
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

from taxi_assets.ml.features import REQUEST_FIELDS, InvalidRequestError
from taxi_assets.ml.predictor import TripDurationPredictor

PREDICTOR_ARTIFACT = "predictor"
PREDICTOR_FILE = "predictor.joblib"

# "Models from code": the logged model stores this script instead of a cloudpickled
# TripDurationModel instance, so loading a model unpickles nothing but the predictor.
MODEL_CODE_FILE = "trip_duration_model.py"
MODEL_CODE = """\
import mlflow

from taxi_assets.registry.pyfunc import TripDurationModel

mlflow.models.set_model(TripDurationModel())
"""


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
            self.predictor: TripDurationPredictor = joblib.load(context.artifacts[PREDICTOR_ARTIFACT])

        def predict(self, context, model_input, params=None) -> np.ndarray:
            try:
                return self.predictor.predict(model_input)
            except InvalidRequestError as exc:
                raise InvalidTripRequestError(str(exc)) from exc


def _requirements(predictor: TripDurationPredictor) -> list[str]:
    """The model's pip requirements: the installed versions of what loading it imports. A
    booster is pinned by the distribution that installed its module (``xgboost-cpu`` provides
    ``xgboost``)."""
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
        "trip_distance": "miles, a finite number >= 0",
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
    whole numbers 1-265, distances finite and non-negative; the first bad value named with its
    field and record), the same for ``mlflow models serve``, ``pyfunc.load_model(...).predict``,
    the CLI and the ``predict`` job. MLflow's schema enforcement in front of it only got in the
    way: typed ``long`` it cast zone ``236.5`` to 236 before the model saw it; typed ``double``
    it refused int64 frames in process; typed ``any`` it checked nothing the model does not
    and rebuilt every request's frame: the scoring server's ``invocations()`` took 1.33 ms a
    record with it, 0.85 ms without, and the served p50 fell by about 0.6 ms
    (``benchmarks/serving_latency.py``). The fields are documented in the model's
    ``metadata`` (:data:`REQUEST_METADATA`) and its input example.
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
