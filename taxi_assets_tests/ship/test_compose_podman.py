"""deploy/podman/compose_podman.py runs deploy/docker-compose.yml as the compose file says: every
service's environment, command/entrypoint, volumes, healthcheck and start order reach its
``podman run``; compose's variable substitution and its errors; one build per image with the
compose build arguments; nothing it does not understand is silently dropped. (The containers
themselves run in deploy/test-containers.sh.)"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "deploy" / "docker-compose.yml"

_spec = importlib.util.spec_from_file_location("compose_podman", REPO / "deploy" / "podman" / "compose_podman.py")
cp = importlib.util.module_from_spec(_spec)
sys.modules["compose_podman"] = cp  # dataclasses look their module up
_spec.loader.exec_module(cp)

pytestmark = pytest.mark.fast

PASSWORDS = {"POSTGRES_PASSWORD": "pg-secret-1", "DAGSTER_PG_PASSWORD": "dg-secret-2", "MLFLOW_PG_PASSWORD": "ml-secret-3"}


@pytest.fixture
def env_file(tmp_path) -> Path:
    path = tmp_path / "stack.env"
    path.write_text("# passwords\n" + "".join(f"{k}={v}\n" for k, v in PASSWORDS.items()))
    return path


def options(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


def environment(args: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in options(args, "-e"))


def test_every_service_runs_with_the_compose_environment_command_and_volumes(env_file):
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    stack = cp.load("t", env_file, environ={"TAXI_DATA_SOURCE": "/srv/nyc-tlc", "TAXI_MAX_EVALUATIONS": "1"},
                    extra_mounts={"user_code": ["/host/tlc:/srv/nyc-tlc:ro"]})
    assert set(stack.services) == set(compose["services"])
    assert stack.volumes == [f"t_{name}" for name in sorted(compose["volumes"])]
    for name, spec in compose["services"].items():
        args = stack.services[name].run_args
        assert options(args, "--name") == [f"t-{name}"]
        assert set(environment(args)) == set(spec.get("environment") or {}), name
        image = f"t/{spec['image']}"
        command = [c.replace("${MLFLOW_PG_PASSWORD:?set MLFLOW_PG_PASSWORD in deploy/.env}", "ml-secret-3") for c in spec.get("command", [])]
        assert args[args.index(image) + 1:] == command, name
        if "entrypoint" in spec:
            assert json.loads(options(args, "--entrypoint")[0]) == spec["entrypoint"]
        assert options(args, "--restart") == [spec["restart"]]
        assert len(options(args, "-v")) == len(spec.get("volumes", [])) + (name == "user_code"), name

    user_code = stack.services["user_code"].run_args
    env = environment(user_code)
    assert env["DAGSTER_PG_PASSWORD"] == "dg-secret-2" and env["DAGSTER_PG_HOST"] == "postgres"
    assert env["TAXI_DATA_SOURCE"] == "/srv/nyc-tlc"  # the process environment wins over defaults
    assert env["TAXI_MAX_EVALUATIONS"] == "1" and env["TAXI_TYPE"] == "green"  # ${TAXI_TYPE:-green}
    assert env["MLFLOW_ARTIFACT_LOCATION"] == "mlflow-artifacts:/taxi-trip-duration-green"
    assert options(user_code, "-v") == [
        "t_taxi-data:/data", "t_dagster-storage:/opt/dagster/dagster_home/storage", "/host/tlc:/srv/nyc-tlc:ro",
    ]
    assert json.loads(options(user_code, "--health-cmd")[0]) == ["dagster", "api", "grpc-health-check", "-p", "4000"]
    assert options(user_code, "--health-retries") == ["30"]

    postgres = stack.services["postgres"].run_args
    assert options(postgres, "-v") == [
        "t_postgres-data:/var/lib/postgresql/data",
        f"{REPO}/deploy/postgres/docker-init-databases.sh:/docker-entrypoint-initdb.d/10-taxi-databases.sh:ro",
    ]
    assert options(postgres, "--health-cmd") == ["pg_isready -U postgres -d postgres"]
    mlflow = stack.services["mlflow"].run_args
    assert "postgresql+psycopg2://mlflow:ml-secret-3@postgres:5432/mlflow" in mlflow


def test_services_start_after_their_dependencies_in_one_network(env_file):
    stack = cp.load("t", env_file, environ={})
    order = cp.start_order(stack)
    assert order.index("postgres") < order.index("mlflow") < order.index("user_code")
    assert order.index("user_code") < order.index("webserver") and order.index("user_code") < order.index("daemon")
    assert stack.services["webserver"].depends_on == {"postgres": "service_healthy", "user_code": "service_healthy"}
    network = stack.network_args()
    assert network[:2] == ["--network", "ns:/run/netns/t"]
    assert sorted(options(network, "--add-host")) == sorted(f"{name}:127.0.0.1" for name in stack.services)


def test_variable_substitution_follows_compose():
    values = {"SET": "x", "EMPTY": ""}
    assert cp.interpolate("${SET:-d} ${EMPTY:-d} ${UNSET:-d} ${EMPTY-d} ${UNSET-d} $SET ${SET} $$SET", values) == "x d d  d x x $SET"
    with pytest.raises(cp.ComposeError, match="nested substitution"):
        cp.interpolate("${UNSET:-${SET}}", values)
    with pytest.raises(cp.ComposeError, match=r"^EMPTY: give it$"):
        cp.interpolate("${EMPTY:?give it}", values)
    assert cp.interpolate("${EMPTY?give it}", values) == ""


def test_a_missing_password_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    for name in PASSWORDS:
        monkeypatch.delenv(name, raising=False)
    assert cp.main(["--prefix", "t", "plan"]) == 1
    err = capsys.readouterr().err
    assert re.fullmatch(r"compose_podman: ([A-Z_]+_PASSWORD): set \1 in deploy/\.env\n", err), err


def test_plan_prints_every_service_without_its_passwords(env_file, capsys, monkeypatch):
    monkeypatch.delenv("TAXI_DATA_SOURCE", raising=False)
    assert cp.main(["--prefix", "t", "--env-file", str(env_file), "plan"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 5 and all(line.startswith("podman --runtime runc run -d ") for line in out.splitlines())
    assert not any(secret in out for secret in PASSWORDS.values())
    assert "DAGSTER_PG_PASSWORD=***" in out and "postgresql+psycopg2://mlflow:***@postgres:5432/mlflow" in out


def test_one_build_per_image_with_the_compose_build_args(env_file):
    stack = cp.load("t", env_file, environ={"BASE_IMAGE": "localhost/t/debian-base:bookworm"})
    builds = dict(cp.build_commands(stack, ["--network", "host"]))
    assert set(builds) == {"t/taxi-assets-mlflow:latest", "t/taxi-assets-user-code:latest", "t/taxi-assets-dagster:latest"}
    user_code = builds["t/taxi-assets-user-code:latest"]
    assert options(user_code, "-f") == [str(REPO / "deploy" / "Dockerfile")]
    assert options(user_code, "--ignorefile") == [str(REPO / "deploy" / "Dockerfile.dockerignore")]
    assert options(user_code, "--build-arg") == ["BASE_IMAGE=localhost/t/debian-base:bookworm"]
    assert user_code[-3:] == ["--network", "host", str(REPO)]
    default = cp.load("t", env_file, environ={})
    assert options(dict(cp.build_commands(default, []))["t/taxi-assets-dagster:latest"], "--build-arg") == [
        "BASE_IMAGE=python:3.11-slim"
    ]


def test_a_compose_key_it_cannot_translate_fails_instead_of_being_dropped(env_file, tmp_path):
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    compose["services"]["webserver"]["network_mode"] = "host"
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(compose))
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "docker-init-databases.sh").write_text("")
    with pytest.raises(cp.ComposeError, match=r"service webserver: keys \['network_mode'\] are not supported"):
        cp.load("t", env_file, compose_file=path, environ={})
