"""A data root on an object store, through the real client path: s3fs (and boto3 for MLflow's
artifacts) over HTTP to an S3-API server on 127.0.0.1 (moto's standalone ``moto_server``,
started here in its own process and stopped by PID). The IO manager round-trips every output
kind with the same errors as on disk; a writer killed in the middle of a multipart upload
leaves the previous object; and ``TAXI_DATA_ROOT=s3://bucket/prefix`` runs the pipeline end to
end with the Dagster CLI, MLflow's artifacts on the same store.

Credentials are moto's dummies (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` = ``testing``),
the endpoint ``AWS_ENDPOINT_URL`` (s3fs) and ``MLFLOW_S3_ENDPOINT_URL`` (MLflow's boto3)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from support.data import cleaned_month
from support.local import closed_port
from taxi_assets.defs.resources.io_manager import CorruptOutputError, NotMaterializedError, TaxiIOManager
from taxi_assets.io import storage
from taxi_assets_tests.processes import BIN, DagsterProcess, wait_until

BUCKET = "taxi-data"
KEY = dg.AssetKey("frame")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """``moto_server`` on a free 127.0.0.1 port with the bucket created; the S3 variables set
    for this module (restored afterwards)."""
    tmp = tmp_path_factory.mktemp("s3")
    port = closed_port()
    endpoint = f"http://127.0.0.1:{port}"
    variables = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    server = DagsterProcess([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], os.environ, tmp,
                            tmp / "moto.log").start()  # fmt: skip

    def up():
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                return True
        except OSError:
            return False

    try:
        wait_until(up, 60, 0.3, "moto_server")
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=BUCKET)
        yield {"endpoint": endpoint, "client": client, "env": variables, "server": server, "tmp": tmp}
    finally:
        server.stop(timeout=10)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def keys(s3, prefix: str) -> list[str]:
    pages = s3["client"].get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def test_io_manager_round_trips_on_s3(s3):
    root = f"s3://{BUCKET}/roundtrip"
    io = TaxiIOManager(data_root=root)
    assert str(io.base_dir) == f"{root}/green" and storage.is_remote(io.base_dir)

    frame = cleaned_month("2024-01")
    target = io.write(dg.AssetKey("cleaned_trips"), "2024-01", frame)
    assert str(target) == f"{root}/green/cleaned_trips/2024-01.parquet"
    assert target.stat().st_size == s3["client"].head_object(Bucket=BUCKET, Key="roundtrip/green/cleaned_trips/2024-01.parquet")["ContentLength"]
    pd.testing.assert_frame_equal(io.load(dg.AssetKey("cleaned_trips"), "2024-01"), frame)
    two = io.load(dg.AssetKey("cleaned_trips"), "2024-01", columns=["PULocationID", "duration"])
    assert list(two.columns) == ["PULocationID", "duration"] and len(two) == 54_373

    model = {"weights": np.arange(1000.0), "name": "m"}
    io.write(KEY, "2024-02", model)
    loaded = io.load(KEY, "2024-02")
    assert loaded["name"] == "m" and np.array_equal(loaded["weights"], model["weights"])
    # A format change replaces the stale twin, as on disk.
    io.write(KEY, "2024-02", pd.DataFrame({"a": [1, 2]}))
    assert keys(s3, "roundtrip/green/frame/") == ["roundtrip/green/frame/2024-02.parquet"]

    with pytest.raises(NotMaterializedError, match=r"frame\[2023-12\] has not been materialized \(no file at s3://taxi-data/roundtrip/green/frame/2023-12\.\*\)"):
        io.load(KEY, "2023-12")
    s3["client"].put_object(Bucket=BUCKET, Key="roundtrip/green/frame/2023-11.npz", Body=b"not a zip")
    with pytest.raises(CorruptOutputError, match=r"frame\[2023-11\]: the stored file s3://taxi-data/roundtrip/green/frame/2023-11\.npz cannot be read"):
        io.load(KEY, "2023-11")
    assert not [k for k in keys(s3, "roundtrip/") if storage.is_temp_key(k)]


def test_failed_serialization_sends_nothing(s3):
    io = TaxiIOManager(data_root=f"s3://{BUCKET}/failing")
    io.write(KEY, "2024-01", {"version": 1})
    before = keys(s3, "failing/")
    with pytest.raises(pickle.PicklingError):  # joblib has written the array to the temp file when the lambda fails
        io.write(KEY, "2024-01", [np.zeros(1_000_000), lambda: 0])
    assert keys(s3, "failing/") == before == ["failing/green/frame/2024-01.pkl"]
    assert io.load(KEY, "2024-01") == {"version": 1}


_WRITER = """
import sys, numpy as np
from taxi_assets.io import storage
target = storage.as_path(sys.argv[1])
with storage.atomic_target(target) as tmp:
    tmp.write_bytes(np.random.default_rng(0).bytes(int(sys.argv[2])))
print("published", flush=True)
"""


def test_writer_killed_during_a_multipart_upload_leaves_the_previous_object(s3):
    """s3fs uploads files over 50 MiB in parts; the object only appears when the upload is
    completed, so killing the writer half-way leaves the old object whole."""
    target = f"s3://{BUCKET}/killed/green/big/2024-01.bin"
    s3["client"].put_object(Bucket=BUCKET, Key="killed/green/big/2024-01.bin", Body=b"previous version")
    caught = False
    for _attempt in range(3):
        writer = subprocess.Popen([sys.executable, "-c", _WRITER, target, str(160 * 1024 * 1024)], env=os.environ,
                                  stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while writer.poll() is None and time.monotonic() < deadline:
                uploads = s3["client"].list_multipart_uploads(Bucket=BUCKET, Prefix="killed/").get("Uploads", [])
                if uploads:
                    os.kill(writer.pid, signal.SIGKILL)
                    caught = True
                    break
                time.sleep(0.02)
        finally:
            if writer.poll() is None:
                os.kill(writer.pid, signal.SIGKILL)
            writer.wait(timeout=30)
        body = s3["client"].get_object(Bucket=BUCKET, Key="killed/green/big/2024-01.bin")["Body"].read()
        if caught:
            assert body == b"previous version"  # the half-sent parts are not an object
            break
        # The upload finished before the kill: then the object is the whole new version.
        assert len(body) == 160 * 1024 * 1024
    assert caught, "never caught the writer in the middle of its multipart upload"
    assert keys(s3, "killed/") == ["killed/green/big/2024-01.bin"]


def test_pipeline_end_to_end_on_s3(s3, tmp_path, shared_data):
    """raw -> cleaned -> training set -> a model logged to MLflow, all on s3://; then read back."""
    import mlflow

    root = f"s3://{BUCKET}/e2e"
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, DAGSTER_HOME=str(home), TAXI_DATA_ROOT=root, TAXI_DATA_SOURCE=str(shared_data),
               TAXI_IGNORE_DOTENV="1", TAXI_EXECUTOR="in_process")  # fmt: skip
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_ARTIFACT_LOCATION", None)

    def materialize(select: str, partition: str, config: dict | None = None):
        args = [str(BIN / "dagster"), "asset", "materialize", "-m", "taxi_assets.definitions", "--select", select,
                "--partition", partition] + (["--config-json", json.dumps(config)] if config else [])  # fmt: skip
        done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]

    materialize("raw_trips,cleaned_trips", "2024-01")
    materialize("raw_trips,cleaned_trips,training_set,linear_regression", "2024-02",
                {"ops": {"linear_regression": {"config": {"max_evaluations": 1}}}})  # fmt: skip

    stored = keys(s3, "e2e/")
    for month in ("2024-01", "2024-02"):
        assert f"e2e/green/raw_trips/{month}.parquet" in stored and f"e2e/green/cleaned_trips/{month}.parquet" in stored
    assert "e2e/green/training_set/2024-02.npz" in stored and "e2e/green/linear_regression/2024-02.pkl" in stored
    assert any(k.startswith("e2e/green/reports/cleaned_trips/2024-01/") and k.endswith(".png") for k in stored)
    artifacts = [k for k in stored if k.startswith("e2e/mlflow/artifacts/")]
    assert any(k.endswith("/MLmodel") for k in artifacts), stored
    assert not [k for k in stored if storage.is_temp_key(k)]
    assert not list(tmp_path.glob("s3*")) and not (Path.cwd() / "s3:").exists()  # nothing written locally by mistake

    io = TaxiIOManager(data_root=root)
    cleaned = io.load(dg.AssetKey("cleaned_trips"), "2024-01")
    pd.testing.assert_frame_equal(cleaned, cleaned_month("2024-01"))
    trained = io.load(dg.AssetKey("linear_regression"), "2024-02")
    assert trained.model_uri and trained.metrics["rmse"] < trained.baseline_rmse
    # The logged model comes back from the store through MLflow (boto3 to the same endpoint).
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    run = mlflow.tracking.MlflowClient().get_run(trained.mlflow_run_id)
    assert run.info.artifact_uri.startswith(f"{root}/mlflow/artifacts/")
    served = mlflow.pyfunc.load_model(trained.model_uri)
    records = pd.DataFrame({"PULocationID": [74, 236], "DOLocationID": [75, 239], "trip_distance": [1.2, 3.4]})
    np.testing.assert_allclose(np.asarray(served.predict(records), dtype=float), trained.predict(records), rtol=1e-12)


def test_distributed_training_reads_its_months_from_the_store(s3):
    """What each Dask worker does for one month (``ml.distributed.encode_month``) on an
    ``s3://`` source gives the same rows as on a local file."""
    from taxi_assets.ml.distributed import encode_month
    from taxi_assets.ml.representation import CompactFeatures

    frame = cleaned_month("2024-01")
    io = TaxiIOManager(data_root=f"s3://{BUCKET}/workers")
    url = str(io.write(dg.AssetKey("cleaned_trips"), "2024-01", frame))
    step = CompactFeatures.fit(frame["PULocationID"], frame["DOLocationID"], frame["trip_distance"], categorical=True)
    boundary, es_from = np.datetime64("2024-02-01", "us"), np.datetime64("2024-01-25", "us")
    part = encode_month(url, step, boundary, es_from)
    pickups = frame["pickup_datetime"].to_numpy(dtype="datetime64[us]")
    train, late = pickups < boundary, pickups >= es_from
    assert part["worker"] == "local" and len(part["y"]) == int((train & ~late).sum()) > 40_000
    assert len(part["y_es"]) == int((train & late).sum()) > 5_000
    np.testing.assert_array_equal(part["y_es"], frame["duration"].to_numpy()[train & late])
    expected = step.encode(frame["PULocationID"], frame["DOLocationID"], frame["trip_distance"])
    np.testing.assert_array_equal(part["X"], expected[train & ~late])
