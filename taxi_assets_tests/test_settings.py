"""The settings (``taxi_assets/settings.py``): one typed object, the README's table in step with
it, one line per bad value from every command, and a core that reads no environment."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from taxi_assets.settings import Settings, SettingsError, accepts, read_settings

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CORE = ("ml", "io", "registry")
ENVIRONMENT_NAMES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
# variable -> (bad value, the line every command prints)
BAD = {
    "TAXI_MAX_EVALUATIONS": ("abc", "invalid setting TAXI_MAX_EVALUATIONS='abc': expected a whole number >= 0"),
    "TAXI_START_MONTH": ("2024-13", "invalid setting TAXI_START_MONTH='2024-13': expected a month YYYY-MM (e.g. 2023-01)"),
    "TAXI_TYPE": ("purple", "invalid setting TAXI_TYPE='purple': expected green or yellow"),
}


# --- the object and the README ------------------------------------------------------------------


def readme_rows() -> dict[str, tuple[str, str, str]]:
    """``variable -> (default, accepts, meaning)`` of the README's Settings table."""
    section = (REPO / "README.md").read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [re.match(r"^\| `([A-Z0-9_]+)` \| (.*?) \| (.*?) \| (.*) \|$", line) for line in section.splitlines()]
    return {m[1]: (m[2], m[3], m[4]) for m in rows if m}


def shown_default(field) -> str:
    extra = field.json_schema_extra or {}
    if "shown_default" in extra:
        return extra["shown_default"]
    if field.default is None:
        return "unset"
    return f"`{str(field.default).lower() if isinstance(field.default, bool) else field.default}`"


def declared_rows() -> dict[str, tuple[str, str, str]]:
    return {f.validation_alias: (shown_default(f), accepts(f), f.description) for f in Settings.model_fields.values()}


@pytest.mark.fast
def test_the_readme_table_is_the_settings_object():
    """Every declared variable is a README row with its default, what it accepts and its
    meaning, and every row is a declared variable (the message holds the table to paste)."""
    readme, declared = readme_rows(), declared_rows()
    table = "\n".join(f"| `{name}` | {default} | {accepted} | {meaning} |" for name, (default, accepted, meaning) in declared.items())
    assert len(readme) > 40
    assert list(readme) == list(declared), f"README rows differ from the settings; the table is:\n{table}"
    assert readme == declared, f"README rows differ from the settings; the table is:\n{table}"


@pytest.mark.fast
def test_only_the_settings_read_the_environment():
    """Outside settings.py ``os.environ`` is only ever assigned to (``os.environ[NAME] = ...``,
    for libraries that read nothing else), never read."""
    reads = []
    for path in sorted((REPO / "taxi_assets").rglob("*.py")):
        if path.name == "settings.py":
            continue
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            name = getattr(node, "attr", None) or getattr(node, "id", None) or getattr(node, "name", None)
            if not isinstance(node, (ast.Attribute, ast.Name, ast.alias)) or name not in ENVIRONMENT_NAMES:
                continue
            parent = parents.get(node)
            assigned = name == "environ" and isinstance(parent, ast.Subscript) and isinstance(parent.ctx, ast.Store)
            if not assigned:
                reads.append(f"{path.relative_to(REPO)}:{node.lineno} {ast.unparse(parent or node)[:60]}")
    assert reads == []


@pytest.mark.fast
def test_the_core_reads_no_environment():
    """No module under ml/, io/ or registry/ names os.environ, getenv and the like: values
    arrive as arguments."""
    offenders = []
    for path in sorted(p for package in CORE for p in (REPO / "taxi_assets" / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = getattr(node, "attr", None) or getattr(node, "id", None) or getattr(node, "name", None)
            if isinstance(node, (ast.Attribute, ast.Name, ast.alias)) and name in ENVIRONMENT_NAMES:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} {name}")
    assert offenders == []


@pytest.mark.fast
def test_settings_name_the_variable_the_value_and_what_is_expected(monkeypatch):
    cases = {
        "TAXI_TRAIN_MONTHS": ("two", "a whole number >= 1"),
        "TAXI_CHAMPION_TOLERANCE": ("-0.5", "a number >= 0"),
        "TAXI_DRIFT_UNSEEN_PU_DO_WARN": ("1.5", "a number from 0 to 1"),
        "TAXI_EXTENDED_FEATURES": ("maybe", "true or false (also 1/0, yes/no, on/off)"),
        "TAXI_MAX_THREADS": ("0", "a whole number >= 1"),
        "TAXI_EXECUTOR": ("spark", "multiprocess, in_process, dask, k8s or celery_k8s"),
        "TAXI_DASK_ADDRESS": ("10.0.0.5:8786", "a scheduler address like tcp://10.0.0.5:8786"),
        "SMTP_PORT": ("five-eight-seven", "a whole number from 1 to 65535"),
        **{variable: (value, line.split(": expected ", 1)[1]) for variable, (value, line) in BAD.items()},
    }
    for variable, (value, expected) in cases.items():
        with monkeypatch.context() as patch:
            patch.setenv(variable, value)
            with pytest.raises(SettingsError) as caught:
                read_settings()
        assert str(caught.value) == f"invalid setting {variable}={value!r}: expected {expected}"
    monkeypatch.setenv("TAXI_TRAIN_MONTHS", "0")
    monkeypatch.setenv("TAXI_TYPE", "purple")
    with pytest.raises(SettingsError) as caught:  # every bad value, still one line
        read_settings()
    assert str(caught.value) == (
        "invalid settings TAXI_TYPE='purple': expected green or yellow; TAXI_TRAIN_MONTHS='0': expected a whole number >= 1"
    )


@pytest.mark.fast
def test_values_are_typed_trimmed_and_secrets_never_echoed(monkeypatch):
    monkeypatch.setenv("TAXI_TRAIN_MONTHS", " 12 ")  # blanks around a value do not matter; blank is unset
    monkeypatch.setenv("TAXI_TYPE", " Yellow ")
    monkeypatch.setenv("TAXI_EXTENDED_FEATURES", " yes ")
    monkeypatch.setenv("TAXI_MAX_THREADS", "")
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2")
    monkeypatch.setenv("TAXI_UI_BASE_URL", "http://dagster.internal:3000/")
    settings = read_settings()
    assert (settings.train_months, settings.taxi_type, settings.extended_features, settings.max_threads) == (12, "yellow", True, None)
    assert settings.ui_base_url == "http://dagster.internal:3000"
    assert settings.mlflow_experiment_name == "taxi-trip-duration-yellow"
    assert "hunter2" not in repr(settings) and settings.smtp_password.get_secret_value() == "hunter2"
    for raw, expected in (("", False), ("0", False), ("off", False), ("1", True), ("TRUE", True)):
        monkeypatch.setenv("TAXI_EXTENDED_FEATURES", raw)
        assert read_settings().extended_features is expected


@pytest.mark.fast
def test_the_data_root_is_a_writable_folder_and_an_object_store_is_not_probed(monkeypatch, tmp_path):
    file = tmp_path / "a-file"
    file.write_text("not a folder")
    for root in (file, file / "below"):
        monkeypatch.setenv("TAXI_DATA_ROOT", str(root))
        with pytest.raises(SettingsError) as caught:
            read_settings()
        assert str(caught.value) == (
            f"invalid setting TAXI_DATA_ROOT={str(root)!r}: expected a writable folder or an object-store URL; {file} is not a folder"
        )
    unwritable = unwritable_folder(tmp_path)
    monkeypatch.setenv("TAXI_DATA_ROOT", str(unwritable / "data"))
    with pytest.raises(SettingsError, match=f"; {unwritable} is not writable$"):
        read_settings()
    monkeypatch.setenv("TAXI_DATA_ROOT", str(tmp_path / "not-yet" / "data"))  # created at the first write
    assert read_settings().data_root == str(tmp_path / "not-yet" / "data")
    assert not (tmp_path / "not-yet").exists()
    monkeypatch.setenv("TAXI_DATA_ROOT", "s3://no-such-bucket.invalid/prefix/")  # no network at load
    settings = read_settings()
    assert settings.data_root == "s3://no-such-bucket.invalid/prefix"
    assert settings.mlflow_artifact_location == "s3://no-such-bucket.invalid/prefix/mlflow/artifacts"


def unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process may not write: a read-only one of its own, or (as root, who may
    write any folder of a writable file system) a read-only mount such as /proc/sys."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/proc/sys"), Path("/sys/fs")):
        if candidate.is_dir() and not os.access(candidate, os.W_OK):
            return candidate
    pytest.skip("no unwritable folder on this machine (root on writable mounts)")


# --- the commands: one line, no traceback ---------------------------------------------------------


def run(args: list[str], cwd: Path, **variables: str) -> tuple[int, str]:
    """``args`` in ``cwd`` with ``variables`` set and an instance that prints no first-run notice."""
    home = cwd.parent / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "VIRTUAL_ENV": str(BIN.parent), "DAGSTER_HOME": str(home), **variables}
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def dagster_noise(line: str) -> bool:
    """The two lines of Dagster's notice that `dagster definitions validate` is superseded."""
    return "SupersessionWarning" in line or "return callback(" in line


def assert_one_line(code: int, output: str, line: str, exit_code: int | None = None) -> None:
    assert code != 0 and (exit_code is None or code == exit_code), output[-3000:]
    assert line in output.splitlines(), output[-3000:]
    assert "Traceback" not in output and "Stack Trace" not in output, output[-3000:]
    assert len([x for x in output.splitlines() if x.strip() and not dagster_noise(x)]) == 1, output[-3000:]


@pytest.fixture(scope="module")
def dg_project(tmp_path_factory) -> Path:
    """A copy of the dg project (pyproject + the package, linked) with no .env: Dagster's CLI
    reads the .env of the folder it runs in, and the developer's must not reach the test."""
    folder = tmp_path_factory.mktemp("dg-project")
    (folder / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    (folder / "taxi_assets").symlink_to(REPO / "taxi_assets")
    return folder


CASES = [*BAD, "TAXI_DATA_ROOT"]


def case_value(case: str, tmp_path: Path) -> tuple[str, str]:
    """``(value, line)`` of a case; the data-root case is a file of ``tmp_path``."""
    if case != "TAXI_DATA_ROOT":
        return BAD[case]
    file = tmp_path / "data-root-is-a-file"
    file.write_text("")
    return str(file), f"invalid setting TAXI_DATA_ROOT='{file}': expected a writable folder or an object-store URL; {file} is not a folder"


@pytest.mark.parametrize("case", CASES)
def test_taxi_assets_prints_the_line_and_exits_2(case, tmp_path):
    value, line = case_value(case, tmp_path)
    code, output = run([str(BIN / "taxi-assets"), "predict", "--pu", "1", "--do", "2", "--distance", "3"], tmp_path, **{case: value})
    assert_one_line(code, output, f"taxi-assets: error: {line}", exit_code=2)


def test_taxi_assets_run_says_the_same(tmp_path):
    value, line = BAD["TAXI_START_MONTH"]
    code, output = run([str(BIN / "taxi-assets"), "run", "--month", "2024-02"], tmp_path, TAXI_START_MONTH=value)
    assert_one_line(code, output, f"taxi-assets: error: {line}", exit_code=2)


@pytest.mark.parametrize("case", CASES)
def test_dagster_definitions_validate_prints_the_line(case, tmp_path):
    value, line = case_value(case, tmp_path)
    code, output = run([str(BIN / "dagster"), "definitions", "validate", "-m", "taxi_assets.definitions"], tmp_path, **{case: value})
    assert_one_line(code, output, line, exit_code=1)


@pytest.mark.parametrize("case", CASES)
def test_dg_check_defs_prints_the_line(case, tmp_path, dg_project):
    value, line = case_value(case, tmp_path)
    code, output = run([str(BIN / "dg"), "check", "defs"], dg_project, **{case: value})
    output = output.replace("All component YAML validated successfully.\n", "")
    assert_one_line(code, output, line, exit_code=1)


def test_dagster_asset_materialize_prints_the_line(tmp_path):
    """Outside validation mode the error propagates (a code server shows it in the UI); a
    process that dies of it prints only the line."""
    value, line = BAD["TAXI_TYPE"]
    args = [str(BIN / "dagster"), "asset", "materialize", "-m", "taxi_assets.definitions", "--select", "raw_trips", "--partition", "2024-01"]
    code, output = run(args, tmp_path, TAXI_TYPE=value)
    assert_one_line(code, output, line, exit_code=1)


def test_dotenv_fills_unset_variables_with_interpolation_and_the_shell_wins(tmp_path):
    """What ``taxi-assets init`` writes (``${VAR:-default}``) and added lines, read by the
    settings the way Dagster's CLI reads them: a variable set in the shell wins."""
    from taxi_assets.settings import dotenv_text

    dotenv = tmp_path / ".env"
    dotenv.write_text(dotenv_text() + "TAXI_START_MONTH=2023-05\nTAXI_TRAIN_MONTHS=${TAXI_TRAIN_MONTHS:-3}\n")
    code = (
        "import sys, pathlib, taxi_assets.settings as s; s.DOTENV_FILE = pathlib.Path(sys.argv[1]); "
        "t = s.load_settings(); print(t.start_month, t.train_months, t.taxi_type, t.dagster_home)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TAXI_IGNORE_DOTENV", "DAGSTER_HOME", "TAXI_TRAIN_MONTHS")}
    out = subprocess.run([sys.executable, "-c", code, str(dotenv)], env={**env, "TAXI_TYPE": "yellow"},
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert out == ["2023-05", "3", "yellow", str(REPO / ".dagster_home")]
    out = subprocess.run([sys.executable, "-c", code, str(dotenv)], env={**env, "TAXI_START_MONTH": "2023-02", "TAXI_TRAIN_MONTHS": "2"},
                         capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert out[:3] == ["2023-02", "2", "green"]
    ignored = subprocess.run([sys.executable, "-c", code, str(dotenv)], env={**env, "TAXI_IGNORE_DOTENV": "1"},
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert ignored[:2] == ["2023-01", "1"]
