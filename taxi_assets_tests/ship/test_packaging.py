"""The wheel stands alone: built from the project's files, installed into a fresh virtualenv with
its runtime dependencies only, and run in an empty folder outside the checkout the way a user of
a private index would (``taxi-assets init``, ``dagster definitions validate``, ``taxi-assets run``).

The fresh virtualenv is built once (module fixture ``installed``; ``--dist loadfile`` keeps the
file on one worker): pip installs the pinned runtime dependencies from its cache and the
configured registry, 3.5 min on two cores at load 7, 6 min at load 25; the two runs of
``taxi-assets run`` at one evaluation per model add 3 to 7 minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
import yaml

from taxi_assets import cli
from taxi_assets.registry.pyfunc import _requirements

REPO = Path(__file__).resolve().parents[2]
PROJECT_FILES = ("pyproject.toml", "setup.py", "README.md", "taxi_assets")


def _run(args: list, cwd: Path, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel --no-deps`` of a copy of the project's files (the checkout stays untouched)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in PROJECT_FILES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", root / "dist", source], cwd=root)
    (built,) = (root / "dist").glob("taxi_assets-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> SimpleNamespace:
    """A fresh virtualenv holding the wheel and its runtime dependencies (no test extra)."""
    root = tmp_path_factory.mktemp("venv")
    venv = root / "venv"
    started = time.monotonic()
    _run([sys.executable, "-m", "venv", venv], cwd=root)
    _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel], cwd=root)
    print(f"fresh venv with the wheel installed in {time.monotonic() - started:.0f}s")
    return SimpleNamespace(venv=venv, bin=venv / "bin")


def test_wheel_holds_the_code_location_and_its_package_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"taxi_assets", "taxi_assets-0.1.0.dist-info"}, top
    assert "taxi_assets/instance.yaml" in names
    assert "taxi_assets/defs/models/assets.py" in names
    assert not [n for n in names if "tests" in n or "__pycache__" in n]
    metadata = zipfile.ZipFile(wheel).read("taxi_assets-0.1.0.dist-info/METADATA").decode()
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    runtime = [r for r in requires if "extra ==" not in r]
    assert "xgboost-cpu==3.2.0" in runtime and not any(r.startswith("xgboost==") for r in requires)
    assert not any(r.startswith(("pytest", "ruff", "deptry", "moto")) for r in runtime)


def test_installed_wheel_runs_outside_the_checkout(installed, tmp_path, shared_data):
    """``taxi-assets init``, ``dagster definitions validate`` and ``taxi-assets run`` in an empty
    folder, with the code from the fresh virtualenv: green, and the runs are runs of the
    ``taxi_assets`` code location (what puts them under Jobs > taxi_pipeline in the UI)."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("TAXI_", "DAGSTER_", "MLFLOW_", "PYTHON")) and k != "VIRTUAL_ENV"
    }  # fmt: skip
    env.update(PATH=f"{installed.bin}{os.pathsep}{env.get('PATH', '')}", TAXI_DATA_SOURCE=str(shared_data),
               TAXI_MAX_EVALUATIONS="1")  # fmt: skip

    # the lean install: the wheel's code, the CPU build of XGBoost, no CUDA libraries, no test tools
    where = _run([installed.bin / "python", "-c", "import taxi_assets; print(taxi_assets.__file__)"], folder, env)
    assert Path(where.stdout.strip()).is_relative_to(installed.venv), where.stdout
    listed = _run([installed.bin / "python", "-m", "pip", "list", "--format=freeze"], folder, env).stdout.lower()
    distributions = {line.split("==")[0] for line in listed.splitlines()}
    assert "xgboost-cpu" in distributions and "xgboost" not in distributions
    assert not [d for d in distributions if d.startswith("nvidia")]
    assert not distributions & {"pytest", "ruff", "deptry", "moto", "taxi-assets-tests"}

    done = _run([installed.bin / "taxi-assets", "init"], folder, env)
    home = folder / ".dagster_home"
    assert f"DAGSTER_HOME={home}" in done.stdout
    assert (home / "dagster.yaml").read_text().startswith("# taxi-assets embedded instance")
    assert f"DAGSTER_HOME=${{DAGSTER_HOME:-{home}}}" in (folder / ".env").read_text()
    assert yaml.safe_load((folder / "workspace.yaml").read_text()) == cli.WORKSPACE  # for dagster dev -w

    done = _run([installed.bin / "dagster", "definitions", "validate", "-m", "taxi_assets.definitions"], folder, env)
    output = done.stdout + done.stderr
    assert "Validation successful for code location taxi_assets.definitions" in output
    assert "does not match" not in output

    done = _run([installed.bin / "taxi-assets", "run", "--month", "2024-02"], folder, env, timeout=1500)
    assert "== prepare_month[2024-01]: run " in done.stdout and "== taxi_pipeline[2024-02]: run " in done.stdout
    table = done.stdout.split("Validation RMSE on 2024-02 (minutes), best first:\n", 1)[1].splitlines()
    assert table[0].split() == ["model", "rmse", "mae", "r2", "baseline", "seconds"]
    assert len(table) == 9 and float(table[1].split()[1]) < 5.5, table
    assert (folder / "data" / "green" / "raw_trips" / "2024-01.parquet").is_file()

    with dg.DagsterInstance.from_config(str(home)) as instance:
        for job, month in (("prepare_month", "2024-01"), ("taxi_pipeline", "2024-02")):
            (record,) = instance.get_run_records(dg.RunsFilter(job_name=job))
            run = record.dagster_run
            assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags["dagster/partition"] == month
            assert run.remote_job_origin is not None, f"{job} run has no code-location origin"
            repository = run.remote_job_origin.repository_origin
            assert (repository.code_location_origin.location_name, repository.repository_name) == (
                "taxi_assets", "__repository__"
            )  # fmt: skip


def test_workspace_file_names_the_location_taxi_assets_run_launches():
    """``make dev`` (``dagster dev -w workspace.yaml``) and ``taxi-assets run`` load one code location."""
    assert yaml.safe_load((REPO / "workspace.yaml").read_text()) == cli.WORKSPACE


@pytest.mark.fast
def test_booster_requirements_name_the_installed_distributions():
    """A logged XGBoost model pins the distribution that provides ``xgboost`` here (xgboost-cpu):
    pinning ``xgboost`` failed the model step with PackageNotFoundError."""
    from importlib.metadata import version

    import lightgbm
    import xgboost

    xgb = _requirements(SimpleNamespace(estimator=xgboost.XGBRegressor()))
    assert xgb[-1] == f"xgboost-cpu=={version('xgboost-cpu')}" and "mlflow==" + version("mlflow") in xgb
    assert _requirements(SimpleNamespace(estimator=lightgbm.LGBMRegressor()))[-1] == f"lightgbm=={version('lightgbm')}"
