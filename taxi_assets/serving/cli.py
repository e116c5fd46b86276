"""``taxi-assets``: the project's command line.

``taxi-assets run --month 2024-02`` is the main job of the Quickstart: it materializes the
training months' raw and cleaned trips, then the whole graph for the validation month, as
real runs in the Dagster instance at ``DAGSTER_HOME`` (the project's ``.dagster_home`` when
unset, so history survives between runs and shows in ``dagster dev``), and prints the
models' validation RMSE.

``taxi-assets predict --pu 236 --do 239 --distance 1.98`` scores one ride with the registered
champion model (or ``--model-uri``); ``--json rides.json`` scores the records of a file (the
scoring server's ``{"dataframe_records": [...]}`` payload, a list of records, or one record).
The model comes from the MLflow store of ``MLFLOW_TRACKING_URI`` (read when the command runs;
default ``sqlite:///<data root>/mlflow/mlflow.db``). A bad request prints one error line
naming the field and exits 2 (nothing is loaded); no champion yet exits 1 and says to run the
pipeline first.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


# The embedded instance: SQLite storage in DAGSTER_HOME (Dagster's default) and no telemetry,
# since the project runs offline-first. deploy/dagster.yaml is the production counterpart.
DEV_INSTANCE_YAML = """\
# Written by `taxi-assets run` for the embedded defaults: runs, events and schedules in SQLite
# files beside this one. For Postgres and a run queue use deploy/dagster.yaml instead.
telemetry:
  enabled: false
"""


def _ensure_dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DEV_INSTANCE_YAML)
    return home


def run_pipeline(month: str, stream=sys.stdout) -> dict[str, dict]:
    """Materialize everything month ``month`` needs; return each model's validation metrics."""
    home = _ensure_dagster_home()
    import dagster as dg

    from taxi_assets.definitions import defs
    from taxi_assets.partitions import previous_months
    from taxi_assets.settings import SETTINGS

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    job = defs.resolve_job_def("taxi_pipeline")
    graph = defs.resolve_asset_graph()
    # INFO keeps the progress lines (trials, rows, RMSE) and drops Dagster's per-event DEBUG lines.
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    upstream = [dg.AssetKey("raw_trips"), dg.AssetKey("cleaned_trips")]
    with dg.DagsterInstance.get() as instance:
        print(f"Dagster instance: {home}; data root: {SETTINGS.type_root}; source: {SETTINGS.data_source}", file=stream)
        for earlier in previous_months(month, SETTINGS.train_months):
            print(f"== {earlier}: raw_trips, cleaned_trips", file=stream)
            job.execute_in_process(instance=instance, partition_key=earlier, asset_selection=upstream, run_config=quiet)
        print(f"== {month}: the whole graph", file=stream)
        result = job.execute_in_process(instance=instance, partition_key=month, run_config=quiet)
    models = sorted(k for k in graph.get_all_asset_keys() if graph.get(k).group_name == "models")
    table = {}
    for key in models:
        mats = result.asset_materializations_for_node(key.to_python_identifier())
        if mats:
            table[key.to_user_string()] = {k: getattr(v, "value", v) for k, v in mats[-1].metadata.items()}
    print_leaderboard(month, table, stream)
    return table


def print_leaderboard(month: str, table: dict[str, dict], stream=sys.stdout) -> None:
    rows = sorted(table.items(), key=lambda item: item[1].get("rmse", float("inf")))
    print(f"\nValidation RMSE on {month} (minutes), best first:", file=stream)
    print(f"{'model':<20}{'rmse':>10}{'mae':>10}{'r2':>10}{'baseline':>10}{'seconds':>10}", file=stream)
    for name, m in rows:
        print(
            f"{name:<20}{m.get('rmse', float('nan')):>10.4f}{m.get('mae', float('nan')):>10.4f}"
            f"{m.get('r2', float('nan')):>10.4f}{m.get('baseline_rmse', float('nan')):>10.4f}"
            f"{m.get('train_seconds', float('nan')):>10.1f}",
            file=stream,
        )


class RequestError(ValueError):
    """A ``predict`` request that cannot be scored (exit code 2)."""


RIDE_FLAGS = {"pu": ("--pu", "PULocationID"), "do": ("--do", "DOLocationID"), "distance": ("--distance", "trip_distance")}


def request_records(pu: str | None, do: str | None, distance: str | None, json_file: str | None) -> list[dict]:
    """The records a ``predict`` invocation asks for, validated (raises :class:`RequestError`)."""
    from taxi_assets.ml.features import InvalidRequestError, validate_request
    from taxi_assets.serving.online import records_from_json

    given = {key: value for key, value in {"pu": pu, "do": do, "distance": distance}.items() if value is not None}
    if json_file is not None:
        if given:
            flags = ", ".join(RIDE_FLAGS[k][0] for k in given)
            raise RequestError(f"give either --json FILE or --pu/--do/--distance, not both (got --json and {flags})")
        path = Path(json_file)
        try:
            document = json.loads(path.read_text())
        except OSError as exc:
            raise RequestError(f"cannot read {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise RequestError(f"{path} is not valid JSON: {exc}") from None
        try:
            records = records_from_json(document)
        except ValueError as exc:
            raise RequestError(f"{path}: {exc}") from None
    else:
        missing = [f"{flag} ({field})" for key, (flag, field) in RIDE_FLAGS.items() if key not in given]
        if missing:
            raise RequestError(
                f"missing {', '.join(missing)}: give --pu, --do and --distance for one ride, or --json FILE"
            )
        records = [{RIDE_FLAGS[key][1]: value for key, value in given.items()}]
    try:
        validate_request(records)
    except InvalidRequestError as exc:
        raise RequestError(str(exc)) from None
    return records


def predict_rides(records: list[dict], model_uri: str | None = None, tracking_uri: str | None = None):
    """``(LoadedModel, minutes)`` for validated ``records`` (model: the champion by default).

    Raises :class:`taxi_assets.serving.online.ModelNotFoundError` when the model is not there.
    """
    import pandas as pd

    from taxi_assets.assets.serving import champion_uri
    from taxi_assets.ml.features import REQUEST_FIELDS
    from taxi_assets.serving.online import load_model
    from taxi_assets.settings import SETTINGS

    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or SETTINGS.mlflow_tracking_uri
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    loaded = load_model(model_uri or champion_uri(SETTINGS.taxi_type), tracking_uri)
    frame = pd.DataFrame(records)
    typed = pd.DataFrame(
        {
            name: pd.to_numeric(frame[name]).astype("int64" if name.endswith("LocationID") else "float64")
            for name in REQUEST_FIELDS
        }
    )
    return loaded, [float(m) for m in loaded.model.predict(typed)]


def predict_command(args, stdout=None, stderr=None) -> int:
    """``taxi-assets predict``: 0 and the minutes, 2 on a bad request, 1 when no model is there."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    from taxi_assets.ml.features import InvalidRequestError
    from taxi_assets.serving.online import ModelNotFoundError

    try:
        records = request_records(args.pu, args.do, args.distance, args.json_file)
        loaded, minutes = predict_rides(records, args.model_uri)
    except (RequestError, InvalidRequestError) as exc:
        print(f"taxi-assets predict: error: {getattr(exc, 'message', None) or exc}", file=stderr)
        return 2
    except ModelNotFoundError as exc:
        print(f"taxi-assets predict: error: {exc}", file=stderr)
        return 1
    if args.output == "json":
        version = int(loaded.version) if loaded.version else None
        print(json.dumps({"model_uri": loaded.model_uri, "model_version": version, "predictions": minutes}), file=stdout)
    elif args.json_file is None:
        print(f"{minutes[0]:.2f}", file=stdout)
    else:
        for record, value in zip(records, minutes):
            print(
                f"PU {record['PULocationID']} -> DO {record['DOLocationID']}, {record['trip_distance']} mi: {value:.2f} min",
                file=stdout,
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="taxi-assets", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create DAGSTER_HOME with the embedded instance config (make dev runs it)")
    run = sub.add_parser("run", help="materialize the whole graph for one validation month")
    run.add_argument("--month", default="2024-02", help="validation month YYYY-MM (default 2024-02)")
    predict = sub.add_parser(
        "predict",
        help="predict trip minutes with the champion model",
        description="Predict trip durations (minutes) with the registered champion model, or --model-uri.",
    )
    predict.add_argument("--pu", metavar="ID", help="pickup TLC zone id (PULocationID, 1..265)")
    predict.add_argument("--do", metavar="ID", help="dropoff TLC zone id (DOLocationID, 1..265)")
    predict.add_argument("--distance", metavar="MILES", help="trip distance in miles (trip_distance, >= 0)")
    predict.add_argument(
        "--json", dest="json_file", metavar="FILE",
        help='records to score: {"dataframe_records": [...]}, a list of records, or one record',
    )  # fmt: skip
    predict.add_argument("--model-uri", help="MLflow model URI (default models:/taxi-trip-duration-<taxi type>@champion)")
    predict.add_argument(
        "--output", choices=["text", "json"], default="text",
        help="text: minutes (one ride) or one line per ride; json: {model_uri, model_version, predictions}",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.command == "init":
        print(f"DAGSTER_HOME={_ensure_dagster_home()}")
    elif args.command == "run":
        run_pipeline(args.month)
    elif args.command == "predict":
        return predict_command(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
