"""The ``predict`` job: score a few rides with the champion from the Dagster UI or its API.

Dagster's counterpart of Mage's API trigger and playground: in *Jobs > predict > Launchpad* type
the rides (``ops: score_rides: config: records: [...]``, optionally ``model_uri``) and launch;
the ``score_rides`` step logs every prediction and records them as output metadata (a table,
``mean_prediction``, ``records`` and the exact minutes as JSON ``predictions``, read back by
:func:`read_predictions`). A whole month is the ``trip_duration_predictions`` asset; this job
takes at most :data:`MAX_RECORDS` rides. Records are typed (:class:`TripRecord`): the launchpad
scaffolds the three fields, and a missing or non-numeric one is refused by Dagster's config
check before a run starts, naming its path. What only the model can judge fails the run with
the message the scoring server and ``taxi-assets predict`` give. Launchpad and GraphQL
examples, and every failure's text: README, "Online inference".
"""

import math

import dagster as dg
from pydantic import Field

from taxi_assets.defs.resources.model_registry import ModelRegistry
from taxi_assets.ml.features import REQUEST_FIELDS, InvalidRequestError

PREDICT_OP = "score_rides"  # an op may not share the job's name in one code location
MAX_RECORDS = 10_000
MAX_LOGGED = 100  # per-record log lines and table rows; every prediction is in the JSON


class TripRecord(dg.Config):
    """One ride to score."""

    PULocationID: int = Field(description="Pickup TLC zone id, 1..265.")
    DOLocationID: int = Field(description="Dropoff TLC zone id, 1..265.")
    trip_distance: float = Field(description="Trip distance in miles, >= 0.")


class PredictConfig(dg.Config):
    """The rides to score and, optionally, which registered model scores them."""

    records: list[TripRecord] = Field(
        description=f"Rides to score, e.g. [{{PULocationID: 236, DOLocationID: 239, trip_distance: 1.98}}] (at most {MAX_RECORDS:,})."
    )
    model_uri: str | None = Field(
        default=None,
        description="MLflow model URI; default the champion, models:/taxi-trip-duration-{taxi type}@champion.",
    )


def markdown_table(records: list[dict], predictions: list[float], limit: int = MAX_LOGGED) -> str:
    lines = ["| # | PULocationID | DOLocationID | trip_distance | minutes |", "|---:|---:|---:|---:|---:|"]
    for i, (record, minutes) in enumerate(zip(records[:limit], predictions[:limit])):
        lines.append(
            f"| {i} | {record['PULocationID']} | {record['DOLocationID']} | {record['trip_distance']:g} | {minutes:.2f} |"
        )
    if len(records) > limit:
        lines.append(f"\n(first {limit} of {len(records):,} records; all predictions are in `predictions`)")
    return "\n".join(lines)


@dg.op(
    name=PREDICT_OP,
    out=dg.Out(dg.Nothing, description="Nothing stored: the predictions are this output's metadata."),
    description="Score the configured rides with the champion (or model_uri); log and record the minutes.",
)
def predict_op(context: dg.OpExecutionContext, config: PredictConfig, model_registry: ModelRegistry):
    import pandas as pd

    from taxi_assets.registry.serving import ModelLoadError, ModelNotFoundError

    records = [{name: getattr(r, name) for name in REQUEST_FIELDS} for r in config.records]
    if len(records) > MAX_RECORDS:
        raise dg.Failure(
            description=f"predict: {len(records):,} records is more than {MAX_RECORDS:,}: score a whole month "
            "with the trip_duration_predictions asset instead",
            allow_retries=False,
        )
    try:
        loaded = model_registry.load(config.model_uri)
    except (ModelNotFoundError, ModelLoadError) as exc:
        raise dg.Failure(description=f"predict: {exc}", allow_retries=False) from None
    frame = pd.DataFrame(
        {
            "PULocationID": pd.Series([r["PULocationID"] for r in records], dtype="int64"),
            "DOLocationID": pd.Series([r["DOLocationID"] for r in records], dtype="int64"),
            "trip_distance": pd.Series([r["trip_distance"] for r in records], dtype="float64"),
        }
    )
    try:
        predictions = [float(p) for p in loaded.model.predict(frame)]
    except InvalidRequestError as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise dg.Failure(description=f"predict: bad request: {message}", allow_retries=False) from None
    version = f" (version {loaded.version})" if loaded.version else ""
    context.log.info(f"scored {len(records)} record(s) with {loaded.model_uri}{version} from {loaded.tracking_uri}")
    for i, (record, minutes) in enumerate(zip(records[:MAX_LOGGED], predictions[:MAX_LOGGED])):
        context.log.info(
            f"record {i}: PU {record['PULocationID']} -> DO {record['DOLocationID']}, "
            f"{record['trip_distance']:g} mi: {minutes:.2f} min"
        )
    if len(records) > MAX_LOGGED:
        context.log.info(f"... {len(records) - MAX_LOGGED:,} more: see the output metadata 'predictions'")
    mean = sum(predictions) / len(predictions)
    yield dg.Output(
        None,
        metadata={
            "records": len(records),
            "mean_prediction": round(mean, 4) if math.isfinite(mean) else mean,
            "table": dg.MetadataValue.md(markdown_table(records, predictions)),
            "predictions": dg.MetadataValue.json(predictions),
            "model_uri": loaded.model_uri,
            # a model given by run URI has no registry version: no entry rather than a sentinel
            **({"model_version": int(loaded.version)} if loaded.version else {}),
        },
    )


@dg.job(
    name="predict",
    description=(
        "Online-style inference from the launchpad or the GraphQL API: score the rides in "
        "ops.score_rides.config.records with the champion model (or model_uri); predictions are "
        "logged and recorded as the step's output metadata."
    ),
    executor_def=dg.in_process_executor,  # one step: no second interpreter to start
)
def predict_job():
    predict_op()


def predictions_from_metadata(metadata) -> list[float]:
    """The exact minutes recorded by the ``score_rides`` step (its output's ``predictions`` entry)."""
    value = metadata["predictions"]
    return [float(v) for v in getattr(value, "data", value)]


def predict_output_metadata(events) -> dict:
    """The output metadata of the ``score_rides`` step among ``events`` (``DagsterEvent``s or
    ``EventLogEntry``s of one run)."""
    for event in events:
        dagster_event = getattr(event, "dagster_event", event)
        if dagster_event is None or not dagster_event.is_successful_output:
            continue
        if dagster_event.step_key == PREDICT_OP:
            return dict(dagster_event.step_output_data.metadata)
    raise LookupError(f"the run has no output of the {PREDICT_OP} step (did it fail?)")


def read_predictions(instance: dg.DagsterInstance, run_id: str) -> list[float]:
    """The predictions a ``predict`` run recorded, read from the instance's event log."""
    return predictions_from_metadata(
        predict_output_metadata(instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT))
    )
