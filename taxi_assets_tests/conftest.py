"""Shared fixtures, and the test environment, set in :func:`pytest_configure` before any test
module imports ``taxi_assets`` (the settings are read on first use): tests never write into
the project's own data folder, DAGSTER_HOME or MLflow store, and the developer's ``.env``
never reaches them. Nothing here imports ``taxi_assets`` at module level."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pytest

if TYPE_CHECKING:
    import pandas as pd

    from taxi_assets.ml.dataset import TrainingSet

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TAXI_DATA_SOURCE", REPO_ROOT.parent / "shared" / "data" / "nyc-tlc")).resolve()
# Variables a developer may have exported that would point tests at their own stores or budgets.
UNSET_FOR_TESTS = ("MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_LOCATION", "TAXI_TYPE", "TAXI_TRAIN_MONTHS", "TAXI_MAX_EVALUATIONS")


# Set by pytest_configure to the process id that set the test environment (not a setting).
CONFIGURED_MARK = "PYTEST_TAXI_ASSETS_CONFIGURED_PID"


def _hypothesis_profiles() -> None:
    """Property-based tests: few examples, drawn the same way every run (``derandomize``), so a
    failure reproduces and a mutation run judges every mutant on the same inputs;
    ``HYPOTHESIS_PROFILE=explore`` searches wider and at random."""
    from hypothesis import HealthCheck, Phase, settings

    settings.register_profile("fast", max_examples=60, deadline=None, derandomize=True, database=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    settings.register_profile("explore", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    # `make mutation`: the same examples, no shrinking (a mutant only needs to fail, not be explained).
    settings.register_profile("mutation", settings.get_profile("fast"), phases=[Phase.explicit, Phase.reuse, Phase.generate])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


def pytest_configure(config):
    """The session's environment (each xdist worker gets its own temporary root)."""
    _hypothesis_profiles()
    settings = sys.modules.get("taxi_assets.settings")
    # A second session in the same process (mutmut runs pytest.main several times) finds the
    # settings read under the environment the first session set: that is not a leak.
    configured_before = os.environ.get(CONFIGURED_MARK) == str(os.getpid())
    if settings is not None and "SETTINGS" in vars(settings) and not configured_before:
        raise pytest.UsageError("taxi_assets settings were read before the test environment was set")
    os.environ[CONFIGURED_MARK] = str(os.getpid())
    root = Path(tempfile.mkdtemp(prefix="taxi-tests-"))
    os.environ.update(
        TAXI_IGNORE_DOTENV="1",  # the developer's .env never reaches the tests
        TAXI_RETRY_DELAY_SECONDS="1",  # transient-failure retries stay real, but quick
        TAXI_DATA_SOURCE=str(SHARED_DATA),
        TAXI_DATA_ROOT=str(root / "data"),
        DAGSTER_HOME=str(root / "dagster_home"),
    )
    for name in UNSET_FOR_TESTS:  # tests get the budgets and stores a user gets unless they set one
        os.environ.pop(name, None)
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)


def months_missing() -> str | None:
    """Why the real months cannot be read, or None when they are there."""
    if (SHARED_DATA / "green_tripdata_2024-01.parquet").exists():
        return None
    return (
        f"the shared TLC months are missing at {SHARED_DATA}: set TAXI_DATA_SOURCE to the folder "
        "holding green_tripdata_2023-02..2024-02.parquet (`make test-fast` runs without them)"
    )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    problem = months_missing()
    if problem:
        raise pytest.UsageError(problem)
    return SHARED_DATA


@pytest.fixture
def io_manager(tmp_path):
    from taxi_assets.defs.resources.io_manager import TaxiIOManager

    return TaxiIOManager(data_root=str(tmp_path / "outputs"))


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


@pytest.fixture
def mlflow_store(tmp_path) -> dict:
    """A per-test MLflow tracking database and artifact root (both real, on disk)."""
    return {
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
        "artifact_location": (tmp_path / "mlflow" / "artifacts").as_uri(),
    }


@pytest.fixture
def resources(io_manager, mlflow_store) -> dict:
    """Resources pointing at the shared real months and per-test output folders."""
    from taxi_assets.defs.resources.data_source import TlcDataSource
    from taxi_assets.defs.resources.notifier import AlertNotifier
    from taxi_assets.defs.resources.tracking import MlflowTracking

    return {
        "io_manager": io_manager,
        "data_source": TlcDataSource(base=str(SHARED_DATA)),
        "mlflow": MlflowTracking(**mlflow_store),
        "notifier": AlertNotifier(),
    }


@pytest.fixture(autouse=True)
def _restore_mlflow_tracking_uri():
    """``mlflow.set_tracking_uri`` also writes MLFLOW_TRACKING_URI: a test that sets it must not
    leak its temporary store into every later test and subprocess."""
    variable = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    utils = sys.modules.get("mlflow.tracking._tracking_service.utils")
    if utils is not None:
        utils._tracking_uri = None
    if variable is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = variable


# The files that take minutes, longest first (paths under taxi_assets_tests/). `make test` hands
# whole files to two workers in collection order (``--dist loadfile``): starting the long ones
# first keeps one worker from finishing a long file alone at the end. Only the order changes;
# every file still runs.
TESTS = Path(__file__).resolve().parent
LONGEST_FILES_FIRST = (
    "system/test_system.py",
    "ship/test_packaging.py",
    "ship/test_code_location_logs.py",
    "defs/test_executors.py",
    "faults/test_daemon_faults.py",
    "defs/automation/test_alerts.py",
    "ml/estimators/test_defaults.py",
    "system/test_yellow.py",
)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config, items):
    """Longest files first (above); and, once ``-m`` and ``-k`` have deselected what they
    deselect, a selection holding any test that is not fast stops here with one message when
    the real months are missing: only the fast tests (pure, synthetic data) run without them."""
    result = yield

    def rank(item) -> int:
        try:
            name = item.path.resolve().relative_to(TESTS).as_posix()
        except ValueError:  # a test file outside this folder
            return len(LONGEST_FILES_FIRST)
        return LONGEST_FILES_FIRST.index(name) if name in LONGEST_FILES_FIRST else len(LONGEST_FILES_FIRST)

    items.sort(key=rank)  # stable: the order within a file, and of the other files, is kept
    problem = months_missing()
    if problem and not hasattr(config, "workerinput") and any(item.get_closest_marker("fast") is None for item in items):
        raise pytest.UsageError(problem)
    return result


def pytest_sessionstart(session):
    """Under pytest-xdist the workers collect, so the controller judges by ``-m`` alone: a run
    of more than the fast tests needs the real months."""
    config = session.config
    distributed = not hasattr(config, "workerinput") and config.pluginmanager.hasplugin("dsession")
    problem = months_missing()
    if problem and distributed and config.option.markexpr.strip() != "fast":
        raise pytest.UsageError(problem)


@pytest.fixture
def restore_mlflow_globals():
    """For tests that set MLflow's process-wide tracking URI or leave a run active: the process
    is left as found (``pytestmark = pytest.mark.usefixtures("restore_mlflow_globals")``)."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run("FAILED")
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="session")
def small_training_set():
    """A training set of synthetic rides (600 train, 100 validation; no real month)."""
    import pandas as pd

    from taxi_assets.ml import dataset
    from taxi_assets_tests.rides import synthetic_rides

    return dataset.build_training_set(synthetic_rides(), pd.Timestamp("2024-02-01"), {"months": ["2024-01", "2024-02"]})


@pytest.fixture(scope="session")
def small_predictor(small_training_set):
    """A linear model on the one-hot representation of :func:`small_training_set`: a real
    predictor (clip, vectorizer, estimator) that fits in milliseconds."""
    from sklearn.linear_model import LinearRegression

    from taxi_assets.ml.predictor import TripDurationPredictor
    from taxi_assets.ml.representation import fit_representation

    step = fit_representation("onehot", small_training_set)
    model = LinearRegression().fit(step.from_training_set(small_training_set, "train"), small_training_set.y_train)
    return TripDurationPredictor(step, model, "linear_regression")


# --- the real reference window and a registered champion (several folders' tests) ----------------

REFERENCE_MONTHS = ("2024-01", "2024-02")


@dataclass(frozen=True)
class Reference:
    """The reference training set of the model tests: ``training_set[2024-02]`` built from the
    real 2024-01 and 2024-02 green files exactly as the asset builds it (train 54,378 x 5,094,
    validation 51,492 x 5,094; the course's feature set whatever ``TAXI_EXTENDED_FEATURES``
    says), and the cleaned rides of its validation rows, in the same order."""

    training_set: TrainingSet
    validation_rides: pd.DataFrame


@pytest.fixture(scope="session")
def reference() -> Reference:
    """Built once per test process (about 2 s) and shared read-only."""
    import pandas as pd

    from support.data import cleaned_month
    from taxi_assets.ml import dataset

    boundary = pd.Timestamp("2024-02-01")
    cleaned = pd.concat([cleaned_month(month) for month in REFERENCE_MONTHS], ignore_index=True)
    ts = dataset.build_training_set(cleaned, boundary, extended_features=False)  # the course's features
    _, validation = dataset.split_on_time(cleaned, boundary)
    return Reference(ts, validation.reset_index(drop=True))


@pytest.fixture(scope="session")
def reference_training_set(reference) -> TrainingSet:
    return reference.training_set


@pytest.fixture(scope="session")
def champion(tmp_path_factory):
    """A LinearRegression registered as the green champion in its own temporary MLflow store
    (:func:`support.champion.build_champion`); the tests only read it."""
    from support.champion import build_champion

    return build_champion(tmp_path_factory.mktemp("serving-champion"))
