"""``taxi-assets``: the project's command line, on top of everything else.

``taxi-assets init`` prepares this checkout for every entry point: ``$DAGSTER_HOME/dagster.yaml``
(the embedded instance, :mod:`taxi_assets.instance`) and a ``.env`` file in the project root that
Dagster's CLI also reads, so ``make run``, ``make dev``, ``dagster``/``dg`` commands and
``taxi-assets`` agree on the instance, data source and data root. ``taxi-assets run --month
2024-02`` (the Quickstart's main job) launches ``prepare_month`` for each training month, then
``taxi_pipeline`` for the month itself, as real runs of the code location (``dagster job
launch``: they appear in the UI), streams their progress and prints the models' validation
RMSE. ``taxi-assets predict`` scores rides with the registered champion (or ``--model-uri``):
a bad request or a damaged model exits 2 with one line naming it, no champion yet exits 1, and
output into a pipe closed early ends quietly with status 141 (README, "Online inference").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from taxi_assets.settings import exit_on_bad_settings

with exit_on_bad_settings("taxi-assets"):  # a bad setting: one line naming it, exit 2, any subcommand
    from taxi_assets.settings import PROJECT_ROOT, SETTINGS, child_environment, dotenv_text

LOCATION_NAME = "taxi_assets"
# The code location as the project's workspace.yaml (`dagster dev -w`, the daemon) names it:
# runs launched against it carry its origin, so they appear under their jobs in the UI.
WORKSPACE = {
    "load_from": [
        {"python_module": {"module_name": "taxi_assets.definitions", "attribute": "defs", "location_name": LOCATION_NAME}}
    ]
}
# The run worker's own console stays quiet: this command prints the run's events itself.
QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def init(stream=sys.stdout) -> Path:
    """Write the embedded instance config, and the project's ``.env`` and ``workspace.yaml``
    where they are missing (an installed wheel's folder); returns DAGSTER_HOME."""
    import yaml

    from taxi_assets.instance import write_instance_yaml

    home = SETTINGS.dagster_home
    os.environ["DAGSTER_HOME"] = str(home)  # what DagsterInstance.get() and the code server read
    config = write_instance_yaml(home)
    env_file = PROJECT_ROOT / ".env"
    if not env_file.exists():
        env_file.write_text(dotenv_text())
        print(f"wrote {env_file} (read by dagster/dg commands typed in {PROJECT_ROOT})", file=stream)
    workspace_file = PROJECT_ROOT / "workspace.yaml"
    if not workspace_file.exists():
        workspace_file.write_text(yaml.safe_dump(WORKSPACE, sort_keys=False))
        print(f"wrote {workspace_file} (dagster dev -w workspace.yaml)", file=stream)
    print(f"DAGSTER_HOME={home} (instance config {config})", file=stream)
    return home


# --- launching runs against the code location ------------------------------------------------


def _print_event(record, stream) -> None:
    entry = record.event_log_entry
    event = entry.dagster_event
    stamp = time.strftime("%H:%M:%S", time.localtime(entry.timestamp))
    if event is None:
        if entry.level >= 20:  # INFO and above: the assets' own progress lines
            print(f"{stamp} {entry.step_key or '':<22} {entry.user_message}", file=stream)
        return
    kind = event.event_type_value
    if kind in ("STEP_SUCCESS", "STEP_FAILURE", "RUN_FAILURE", "RUN_SUCCESS", "STEP_UP_FOR_RETRY"):
        detail = ""
        if kind == "STEP_FAILURE" and event.step_failure_data is not None:
            failure = event.step_failure_data
            detail = (failure.user_failure_data.description if failure.user_failure_data else None) or (
                failure.error.message.strip().splitlines()[0] if failure.error else ""
            )
        print(f"{stamp} {event.step_key or '':<22} {kind.lower().replace('_', ' ')} {detail}".rstrip(), file=stream)


def launch_and_wait(instance, launch_dir: Path, job_name: str, month: str, stream=sys.stdout):
    """Launch ``job_name`` for ``month`` against the code location with ``dagster job launch``
    (instance and workspace of ``launch_dir``), stream the run's progress from ``instance`` until
    it ends; returns the finished DagsterRun."""
    from dagster import DagsterRunStatus

    run_id = str(uuid.uuid4())
    tags = {"dagster/partition": month, "taxi/launched_by": "taxi-assets run"}
    command = [
        sys.executable, "-m", "dagster", "job", "launch", "-w", str(launch_dir / "workspace.yaml"), "-j", job_name,
        "--run-id", run_id, "--tags", json.dumps(tags), "--config-json", json.dumps(QUIET_CONSOLE),
    ]  # fmt: skip
    # What this process resolved, so the run cannot read another .env or default: the instance of
    # launch_dir (runs start at once, no daemon needed), this data source, data root and MLflow store.
    env = child_environment(
        DAGSTER_HOME=str(launch_dir),
        TAXI_DATA_SOURCE=SETTINGS.data_source,
        TAXI_DATA_ROOT=str(SETTINGS.data_root),
        MLFLOW_TRACKING_URI=SETTINGS.mlflow_tracking_uri,
        MLFLOW_ARTIFACT_LOCATION=SETTINGS.mlflow_artifact_location,
    )
    print(f"== {job_name}[{month}]: run {run_id}", file=stream)
    log = launch_dir / f"{job_name}-{month}.log"
    with open(log, "w") as out:
        # Its own session: Ctrl-C reaches this command only, which terminates the run itself.
        launcher = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    cursor, run = None, None
    try:
        while True:
            run = instance.get_run_by_id(run_id)  # before the records: a finished run's last event is in them
            if run is None:
                if launcher.poll() is not None:
                    output = log.read_text(errors="replace").strip().splitlines()
                    raise SystemExit(
                        f"taxi-assets run: `dagster job launch` could not launch {job_name}[{month}] "
                        f"(exit {launcher.returncode}):\n" + "\n".join(output[-15:])
                    )
                time.sleep(0.5)
                continue
            connection = instance.get_records_for_run(run_id, cursor=cursor, limit=500)
            for record in connection.records:
                _print_event(record, stream)
            cursor = connection.cursor
            if run.is_finished and not connection.has_more:
                return run
            if launcher.poll() and run.status in (DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING):
                output = log.read_text(errors="replace").strip().splitlines()
                raise SystemExit(
                    f"taxi-assets run: `dagster job launch` failed to start {job_name}[{month}] "
                    f"(exit {launcher.returncode}):\n" + "\n".join(output[-15:])
                )
            if not connection.records:
                time.sleep(0.5)
    except KeyboardInterrupt:
        if run is not None:
            print(f"interrupted: terminating run {run_id}", file=stream)
            instance.run_launcher.terminate(run_id)
        else:  # not created yet: stop the launch itself
            launcher.terminate()
        raise
    finally:
        # `dagster job launch` ends once its code server has seen the run finish.
        try:
            launcher.wait(timeout=120)
        except subprocess.TimeoutExpired:
            launcher.kill()
            launcher.wait()


def run_pipeline(month: str, stream=sys.stdout) -> dict[str, dict]:
    """Materialize everything month ``month`` needs; return each model's validation metrics."""
    init(stream=open(os.devnull, "w"))
    import dagster as dg
    import yaml

    from taxi_assets import months
    from taxi_assets.instance import immediate_launch_config

    months.parse(month)
    home = SETTINGS.dagster_home
    with dg.DagsterInstance.get() as instance, tempfile.TemporaryDirectory(prefix="taxi-assets-run-") as tmp:
        launch_dir = Path(tmp)
        (launch_dir / "dagster.yaml").write_text(yaml.safe_dump(immediate_launch_config(home), sort_keys=False))
        (launch_dir / "workspace.yaml").write_text(yaml.safe_dump(WORKSPACE, sort_keys=False))
        print(
            f"Dagster instance: {home}; data root: {SETTINGS.type_root}; source: {SETTINGS.data_source}",
            file=stream,
        )
        launches = [("prepare_month", m) for m in months.previous_months(month, SETTINGS.train_months)]
        for job_name, partition in [*launches, ("taxi_pipeline", month)]:
            run = launch_and_wait(instance, launch_dir, job_name, partition, stream)
            if run.status != dg.DagsterRunStatus.SUCCESS:
                print(
                    f"\n{job_name}[{partition}] ended {run.status.value}: see "
                    f"{SETTINGS.ui_base_url}/runs/{run.run_id} (make dev)",
                    file=stream,
                )
                raise SystemExit(1)
        table = model_metrics(instance, month)
    print_leaderboard(month, table, stream)
    return table


def model_metrics(instance, month: str) -> dict[str, dict]:
    """Each model's latest materialization metadata for ``month``."""
    import dagster as dg

    from taxi_assets.ml.estimators import ESTIMATORS

    table = {}
    for name in ESTIMATORS:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(name), asset_partitions=[month]), limit=1
        ).records
        if records:
            metadata = records[0].asset_materialization.metadata
            table[name] = {k: getattr(v, "value", v) for k, v in metadata.items()}
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
    from taxi_assets.ml.cleaning import IMPOSSIBLE_DISTANCE_MILES
    from taxi_assets.ml.features import InvalidRequestError, validate_request
    from taxi_assets.registry.serving import records_from_json_text

    given = {key: value for key, value in {"pu": pu, "do": do, "distance": distance}.items() if value is not None}
    if json_file is not None:
        if given:
            flags = ", ".join(RIDE_FLAGS[k][0] for k in given)
            raise RequestError(f"give either --json FILE or --pu/--do/--distance, not both (got --json and {flags})")
        path = Path(json_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise RequestError(f"cannot read {path}: {exc.strerror or exc}") from None
        except ValueError as exc:  # not UTF-8
            raise RequestError(f"{path} is not valid JSON: {exc}") from None
        try:
            records = records_from_json_text(text)
        except ValueError as exc:
            message = str(exc)
            if message.startswith("not valid JSON: "):
                raise RequestError(f"{path} is not valid JSON: {message.removeprefix('not valid JSON: ')}") from None
            raise RequestError(f"{path}: {message}") from None
    else:
        missing = [f"{flag} ({field})" for key, (flag, field) in RIDE_FLAGS.items() if key not in given]
        if missing:
            raise RequestError(
                f"missing {', '.join(missing)}: give --pu, --do and --distance for one ride, or --json FILE"
            )
        records = [{RIDE_FLAGS[key][1]: value for key, value in given.items()}]
    try:  # the rule the model applies, checked before anything is loaded
        validate_request(records, IMPOSSIBLE_DISTANCE_MILES)
    except InvalidRequestError as exc:
        raise RequestError(str(exc)) from None
    return records


def predict_rides(records: list[dict], model_uri: str | None = None, tracking_uri: str | None = None):
    """``(LoadedModel, minutes)`` for validated ``records`` (model: the champion by default).

    Raises :class:`taxi_assets.registry.serving.ModelNotFoundError` when the model is not there.
    """
    import pandas as pd

    from taxi_assets.ml.features import REQUEST_FIELDS
    from taxi_assets.registry.names import champion_uri
    from taxi_assets.registry.serving import load_model

    tracking_uri = tracking_uri or SETTINGS.mlflow_tracking_uri
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
    """``taxi-assets predict``: 0 and the minutes, 2 on a bad request or a damaged model, 1 when
    no model is there."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    from taxi_assets.ml.features import InvalidRequestError
    from taxi_assets.registry.serving import ModelLoadError, ModelNotFoundError

    try:
        records = request_records(args.pu, args.do, args.distance, args.json_file)
        loaded, minutes = predict_rides(records, args.model_uri)
    except (RequestError, InvalidRequestError, ModelLoadError) as exc:
        print(f"taxi-assets predict: error: {getattr(exc, 'message', None) or exc}", file=stderr)
        return 2
    except ModelNotFoundError as exc:
        print(f"taxi-assets predict: error: {exc}", file=stderr)
        return 1
    try:
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
        stdout.flush()  # here, not at exit, so a closed pipe is caught below
    except BrokenPipeError:
        return closed_pipe(stdout)
    return 0


def closed_pipe(stream) -> int:
    """The reader of ``stream`` went away (``| head``): stop quietly with the exit status of a
    command ended by SIGPIPE (141), pointing the descriptor at /dev/null so the interpreter's
    last flush finds nothing to complain about."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError, AttributeError):  # not a file descriptor (a test's buffer)
        pass
    return 141


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
    predict.add_argument("--distance", metavar="MILES", help="trip distance in miles (trip_distance, 0..100)")
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
        init()
    elif args.command == "run":
        run_pipeline(args.month)
    elif args.command == "predict":
        return predict_command(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
