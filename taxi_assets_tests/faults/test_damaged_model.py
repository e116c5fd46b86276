"""A registered model whose files are damaged is one clear error (``registry/serving.py``):
which model, version and file, and what to do; ``taxi-assets predict`` exits 2 with that one
line, the ``predict`` job fails with it.

A real champion (the serving fixtures' LinearRegression, logged by the project's pyfunc code)
in its own store; each case damages one file of it, then puts the file back. Before: ``KeyError:
247``, ``EOFError``, ``yaml.parser.ParserError`` tracebacks naming neither version nor file, exit 1.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from support.champion import EXAMPLE_RECORDS, Champion, build_champion
from taxi_assets import cli
from taxi_assets.definitions import load_defs
from taxi_assets.defs.resources.model_registry import MODEL_REGISTRY_KEY
from taxi_assets.registry.pyfunc import MODEL_CODE_FILE, PREDICTOR_PATH
from taxi_assets.registry.serving import ModelLoadError, load_model

RANDOM = random.Random(20).randbytes(2048)  # starts with bytes that are not UTF-8
INVALID_YAML = b"flavors:\n  python_function: [unclosed\n  loader_module: : x\n"
PREDICT = load_defs().resolve_job_def("predict")


def _half(good: bytes) -> bytes:
    return good[: len(good) // 2]


def _mlmodel_head(good: bytes) -> bytes:
    return good[:300]  # cut inside the python_function flavor


CASES = [
    ("MLmodel", "random", lambda good: RANDOM, "not text (a byte that is not UTF-8 at offset"),
    ("MLmodel", "truncated", _mlmodel_head, "incomplete: its python_function flavor has no loader_module (truncated?)"),
    ("MLmodel", "invalid YAML", lambda good: INVALID_YAML, "not valid YAML (line 3, column 16)"),
    (PREDICTOR_PATH, "random", lambda good: RANDOM, "unreadable ("),
    (PREDICTOR_PATH, "truncated", _half, "truncated (the data ends early)"),
    (PREDICTOR_PATH, "invalid YAML", lambda good: INVALID_YAML, "unreadable ("),
    (MODEL_CODE_FILE, "random", lambda good: RANDOM, "unreadable ("),
]


@pytest.fixture(scope="module")
def champion(tmp_path_factory) -> Champion:
    return build_champion(tmp_path_factory.mktemp("damaged-champion"))


@pytest.fixture(scope="module")
def model_folder(champion) -> Path:
    uri = MlflowClient(tracking_uri=champion.tracking_uri).get_model_version_download_uri(champion.model_name, "1")
    assert uri.startswith("file://")
    return Path(uri.removeprefix("file://"))


@pytest.fixture
def damage(model_folder):
    """``damage(artifact, change)``: the file rewritten as ``change(good bytes)``, restored after."""
    saved = {}

    def apply(artifact: str, change) -> None:
        path = model_folder / artifact
        saved[path] = path.read_bytes()
        path.write_bytes(change(saved[path]))

    yield apply
    for path, good in saved.items():
        path.write_bytes(good)


def expected_prefix(champion: Champion, folder: Path, artifact: str) -> str:
    return (
        f"registered model {champion.model_name} version 1 cannot be loaded: its {artifact} (in {folder.as_uri()}) "
        "is damaged: "
    )


@pytest.mark.parametrize("artifact, kind, change, reason", CASES, ids=[f"{a}-{k}" for a, k, _, _ in CASES])
def test_a_damaged_file_is_one_clear_error_everywhere(artifact, kind, change, reason, champion, model_folder, damage, capsys, monkeypatch):
    damage(artifact, change)

    with pytest.raises(ModelLoadError) as caught:
        load_model(champion.model_uri, champion.tracking_uri)
    error = caught.value
    assert (error.model_name, error.version, error.artifact) == (champion.model_name, "1", artifact)
    message = str(error)
    assert message.startswith(expected_prefix(champion, model_folder, artifact) + reason), message
    assert message.endswith(
        "promote a good version again (point the 'champion' alias at it in the MLflow UI) or re-materialize "
        "champion_model for a month"
    )
    assert "\n" not in message and "garbage" not in message and "unclosed" not in message

    # the CLI: exit 2, that one line
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion.tracking_uri)
    monkeypatch.setattr(cli, "SETTINGS", cli.SETTINGS.model_copy(update={"mlflow_tracking_uri": champion.tracking_uri}))
    code = cli.main(["predict", "--pu", "236", "--do", "239", "--distance", "1.98"])
    out, err = capsys.readouterr()
    assert (code, out, err) == (2, "", f"taxi-assets predict: error: {message}\n")

    # the predict job: fails with the same message
    run_config = {
        "ops": {"score_rides": {"config": {"records": EXAMPLE_RECORDS[:1]}}},
        "resources": {MODEL_REGISTRY_KEY: {"config": {"tracking_uri": champion.tracking_uri}}},
    }
    result = PREDICT.execute_in_process(run_config=run_config, raise_on_error=False)
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_failure_data.user_failure_data.description == f"predict: {message}"


def test_the_installed_command_prints_no_traceback(champion, model_folder, damage, tmp_path):
    damage(PREDICTOR_PATH, _half)
    command = Path(sys.executable).parent / "taxi-assets"
    done = subprocess.run(
        [str(command), "predict", "--pu", "236", "--do", "239", "--distance", "1.98"],
        env=dict(os.environ, MLFLOW_TRACKING_URI=champion.tracking_uri), capture_output=True, text=True,
        timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "taxi-assets predict: error: "
        + expected_prefix(champion, model_folder, PREDICTOR_PATH)
        + "truncated (the data ends early); promote a good version again (point the 'champion' alias at it in "
        "the MLflow UI) or re-materialize champion_model for a month\n"
    )


def test_the_good_model_still_loads_after_the_damage_is_repaired(champion):
    loaded = load_model(champion.model_uri, champion.tracking_uri)
    assert loaded.version == "1"
    assert loaded.model.predict(EXAMPLE_RECORDS[:1]).tolist() == pytest.approx(
        champion.predictor.predict(EXAMPLE_RECORDS[:1]).tolist(), abs=1e-12
    )
