"""The deployment files agree with each other and with the code: compose services vs the
Dockerfiles and the workspace, the instance's env vars vs the compose environments, the image
pins vs pyproject.toml, the Helm values vs deploy/dagster.yaml; the instance file passes
Dagster's own validation; and the code location really is served over gRPC to a workspace
with a ``grpc_server`` entry, as the webserver and daemon load it in production."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config
from dagster._grpc.client import DagsterGrpcClient

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent


def load_yaml(relative: str):
    return yaml.safe_load((REPO / relative).read_text())


def compose() -> dict:
    return load_yaml("deploy/docker-compose.yml")


def dockerfile_cmd(path: Path) -> list[str]:
    (line,) = [line for line in path.read_text().splitlines() if line.startswith("CMD ")]
    return json.loads(line[len("CMD ") :])


def pyproject_pins() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(dep.split("==") for dep in deps)


def env_names(node) -> set[str]:
    """Every ``{env: NAME}`` in an instance config."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(env_names(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(env_names(v) for v in node)) if node else set()
    return set()


BASE_IMAGE_ARG = "${BASE_IMAGE:-python:3.11-slim}"
DOCKERFILES = ("deploy/Dockerfile", "deploy/Dockerfile.dagster", "deploy/mlflow/Dockerfile")


def test_every_image_takes_its_base_as_a_build_argument():
    """python:3.11-slim by default (Docker users), any Debian base with Python 3.11 otherwise
    (deploy/test-containers.sh passes one made by debootstrap); compose passes BASE_IMAGE on."""
    for path in (*DOCKERFILES, "deploy/podman/Dockerfile.postgres"):
        lines = [line for line in (REPO / path).read_text().splitlines() if line and not line.startswith("#")]
        default = "debian:bookworm-slim" if "postgres" in path else "python:3.11-slim"
        assert lines[:2] == [f"ARG BASE_IMAGE={default}", "FROM ${BASE_IMAGE}"], path
        assert sum(line.startswith("FROM ") for line in lines) == 1, path
    built = {service["build"]["dockerfile"]: service["build"]["args"] for service in compose()["services"].values() if "build" in service}
    assert set(built) == set(DOCKERFILES)
    assert all(args == {"BASE_IMAGE": BASE_IMAGE_ARG} for args in built.values())


def test_compose_services_match_the_dockerfiles_and_workspace():
    services = compose()["services"]
    assert set(services) == {"postgres", "mlflow", "user_code", "webserver", "daemon"}
    user_code = services["user_code"]
    assert user_code["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile", "args": {"BASE_IMAGE": BASE_IMAGE_ARG}}
    cmd = dockerfile_cmd(DEPLOY / "Dockerfile")
    assert user_code["command"] == cmd == [
        "dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "taxi_assets.definitions",
        "--location-name", "taxi_assets",
    ]
    port = cmd[cmd.index("-p") + 1]
    assert f"EXPOSE {port}" in (DEPLOY / "Dockerfile").read_text()
    assert user_code["expose"] == [port]
    assert user_code["healthcheck"]["test"] == ["CMD", "dagster", "api", "grpc-health-check", "-p", port]

    (entry,) = load_yaml("deploy/workspace.docker.yaml")["load_from"]
    assert entry == {"grpc_server": {"host": "user_code", "port": int(port), "location_name": "taxi_assets"}}
    # The code server names itself like the workspace entry (it would take the module's name).
    assert cmd[cmd.index("--location-name") + 1] == entry["grpc_server"]["location_name"]

    # The webserver and daemon read the workspace where Dockerfile.dagster copies it.
    dagster_df = (DEPLOY / "Dockerfile.dagster").read_text()
    assert "COPY deploy/workspace.docker.yaml /opt/dagster/dagster_home/workspace.yaml" in dagster_df
    assert "COPY deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml" in dagster_df
    assert services["webserver"]["entrypoint"][-2:] == ["-w", "/opt/dagster/dagster_home/workspace.yaml"]
    assert services["daemon"]["entrypoint"] == ["dagster-daemon", "run", "-w", "/opt/dagster/dagster_home/workspace.yaml"]
    assert services["webserver"]["ports"] == ["3000:3000"]
    for name in ("webserver", "daemon"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile.dagster"
        assert services[name]["depends_on"]["user_code"] == {"condition": "service_healthy"}
    # Every file a service mounts or builds from exists.
    for name, service in services.items():
        if "build" in service:
            assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).is_file(), f"{name} mounts missing {source}"


def test_instance_env_vars_are_set_in_every_dagster_container():
    needed = env_names(load_yaml("deploy/dagster.yaml"))
    assert needed == {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"}
    services = compose()["services"]
    for name in ("user_code", "webserver", "daemon"):
        environment = services[name]["environment"]
        assert needed <= set(environment), f"{name} lacks {sorted(needed - set(environment))}"
        assert environment["DAGSTER_PG_HOST"] == "postgres"
        assert environment["DAGSTER_PG_PORT"] == "5432"
    # The databases the init script creates are the ones the services use.
    init = (DEPLOY / "postgres" / "docker-init-databases.sh").read_text()
    assert "CREATE DATABASE dagster OWNER dagster;" in init and "CREATE DATABASE mlflow OWNER mlflow;" in init
    assert set(services["postgres"]["environment"]) >= {"DAGSTER_PG_PASSWORD", "MLFLOW_PG_PASSWORD"}
    # Code reaches MLflow by service name; the server accepts that Host header and proxies artifacts.
    code_env = services["user_code"]["environment"]
    # Optional knobs pass through from deploy/.env; blank/3 are the code's own defaults.
    assert code_env["TAXI_MAX_EVALUATIONS"] == "${TAXI_MAX_EVALUATIONS:-}"
    assert code_env["TAXI_BOOTSTRAP_MONTHS"] == "${TAXI_BOOTSTRAP_MONTHS:-3}"
    assert code_env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert code_env["MLFLOW_ARTIFACT_LOCATION"].startswith("mlflow-artifacts:/")
    mlflow_cmd = services["mlflow"]["command"]
    assert mlflow_cmd[:2] == ["mlflow", "server"]
    flags = {mlflow_cmd[i]: mlflow_cmd[i + 1] for i in range(2, len(mlflow_cmd) - 1) if mlflow_cmd[i].startswith("--") and not mlflow_cmd[i + 1].startswith("--")}
    assert flags["--host"] == "0.0.0.0" and flags["--port"] == "5000"
    assert re.fullmatch(r"postgresql\+psycopg2://mlflow:\$\{MLFLOW_PG_PASSWORD:\?[^}]+\}@postgres:5432/mlflow", flags["--backend-store-uri"])
    assert "--serve-artifacts" in mlflow_cmd
    assert "mlflow:5000" in flags["--allowed-hosts"].split(",")
    assert services["mlflow"]["ports"] == ["5000:5000"]


def test_images_pin_the_project_versions():
    pins = pyproject_pins()
    for path in ("deploy/Dockerfile.dagster", "deploy/mlflow/Dockerfile"):
        found = dict(re.findall(r"([a-z0-9-]+)==([0-9][0-9.]*)", (REPO / path).read_text()))
        assert found, path
        for package, version in found.items():
            assert pins[package] == version, f"{path} pins {package}=={version}, pyproject.toml {pins[package]}"
    dagster_df = (DEPLOY / "Dockerfile.dagster").read_text()
    for package in ("dagster", "dagster-webserver", "dagster-graphql", "dagster-postgres", "psycopg2-binary"):
        assert f"{package}=={pins[package]}" in dagster_df


REQUIREMENTS_SCRIPT = DEPLOY / "pinned_requirements.py"


def test_dockerfile_installs_requirements_with_the_script():
    """The user-code image installs what deploy/pinned_requirements.py prints, run in the image."""
    text = (DEPLOY / "Dockerfile").read_text()
    assert "COPY pyproject.toml deploy/pinned_requirements.py ./" in text
    assert 'RUN TAXI_EXTRAS="$TAXI_EXTRAS" python pinned_requirements.py > /tmp/requirements.txt' in text
    assert "pip install -r /tmp/requirements.txt" in text
    assert 'ARG TAXI_EXTRAS=""' in text  # runtime dependencies only unless asked


@pytest.mark.parametrize("extras", ["", "test"])
def test_dockerfile_installs_the_pyproject_requirements(extras, tmp_path):
    (tmp_path / "pyproject.toml").write_bytes((REPO / "pyproject.toml").read_bytes())
    out = subprocess.run(
        [sys.executable, str(REQUIREMENTS_SCRIPT)],
        cwd=tmp_path, env={**os.environ, "TAXI_EXTRAS": extras}, capture_output=True, text=True, check=True,
    ).stdout.split()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    expected = project["dependencies"] + (project["optional-dependencies"]["test"] if extras else [])
    assert out == expected
    if not extras:  # the lean image: a CPU-only XGBoost, no test tool
        assert "xgboost-cpu==3.2.0" in out and not any(d.split("==")[0] in ("xgboost", "pytest", "moto[server]", "ruff") for d in out)


def test_dockerfile_rejects_an_unknown_extra(tmp_path):
    (tmp_path / "pyproject.toml").write_bytes((REPO / "pyproject.toml").read_bytes())
    done = subprocess.run(
        [sys.executable, str(REQUIREMENTS_SCRIPT)],
        cwd=tmp_path, env={**os.environ, "TAXI_EXTRAS": "gpu"}, capture_output=True, text=True,
    )
    assert done.returncode == 1
    assert "TAXI_EXTRAS names unknown extras ['gpu']; pyproject.toml has [" in done.stderr


def test_instance_file_passes_dagster_validation(tmp_path):
    (tmp_path / "dagster.yaml").write_bytes((DEPLOY / "dagster.yaml").read_bytes())
    config, custom_class = dagster_instance_config(str(tmp_path))
    assert custom_class is None
    pg = config["storage"]["postgres"]["postgres_db"]
    assert pg["hostname"] == {"env": "DAGSTER_PG_HOST"} and pg["scheme"] == "postgresql+psycopg2"
    coordinator = config["run_coordinator"]
    assert (coordinator["module"], coordinator["class"]) == ("dagster", "QueuedRunCoordinator")
    assert {"key": "taxi/workload", "value": "training", "limit": 2} in coordinator["config"]["tag_concurrency_limits"]
    assert config["run_monitoring"]["enabled"] is True and config["run_retries"]["max_retries"] == 2
    assert config["telemetry"] == {"enabled": False}
    # No literal secret: every Postgres field is an env reference.
    assert all(isinstance(value, dict) for key, value in pg.items() if key not in ("scheme", "params"))


def test_helm_values_run_our_image_with_the_same_queue():
    values = load_yaml("deploy/helm/values.yaml")
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["image"]["repository"].endswith("/taxi-assets-user-code")
    assert deployment["codeServerArgs"] == ["-m", "taxi_assets.definitions"]
    env = {item["name"]: item["value"] for item in deployment["env"]}
    assert env["TAXI_DATA_ROOT"] == "/data" and env["TAXI_EXECUTOR"] == "multiprocess"
    assert env["MLFLOW_ARTIFACT_LOCATION"].startswith("mlflow-artifacts:/")
    assert deployment["envSecrets"] == [{"name": "taxi-mlflow"}]  # holds MLFLOW_TRACKING_URI
    mounts = {m["name"]: m["mountPath"] for m in deployment["volumeMounts"]}
    assert mounts == {"taxi-data": "/data"}

    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert {m["name"]: m["mountPath"] for m in launcher["config"]["k8sRunLauncher"]["volumeMounts"]} == mounts

    instance = load_yaml("deploy/dagster.yaml")
    queued = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queued["maxConcurrentRuns"] == instance["run_coordinator"]["config"]["max_concurrent_runs"]
    assert queued["tagConcurrencyLimits"] == instance["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert values["dagsterDaemon"]["runRetries"]["maxRetries"] == instance["run_retries"]["max_retries"]
    assert values["postgresql"]["enabled"] is False
    assert values["postgresql"]["postgresqlScheme"] == instance["storage"]["postgres"]["postgres_db"]["scheme"]
    assert values["telemetry"] == {"enabled": False}


def test_ci_runs_the_suite_and_builds_every_image():
    workflow = load_yaml(".github/workflows/ci.yml")
    steps = workflow["jobs"]["tests"]["steps"]
    assert any(step.get("run", "").strip().endswith("bash .ci/run") for step in steps)
    images = workflow["jobs"]["images"]
    built = {item["dockerfile"] for item in images["strategy"]["matrix"]["include"]}
    assert built == {"deploy/Dockerfile", "deploy/Dockerfile.dagster", "deploy/mlflow/Dockerfile"}
    assert all((REPO / path).is_file() for path in built)
    assert any(step.get("uses", "").startswith("docker/setup-buildx-action") for step in images["steps"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_code_server_serves_the_assets_to_a_grpc_workspace(tmp_path):
    """The production topology in one machine: a code server process, and a separate process
    (dagster-graphql, the webserver's GraphQL layer) loading it through a grpc_server entry."""
    import taxi_assets.definitions as local

    port = free_port()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump(
        {"load_from": [{"grpc_server": {"host": "127.0.0.1", "port": port, "location_name": "taxi_assets"}}]}
    ))
    log = open(tmp_path / "code-server.log", "w")
    server = subprocess.Popen(
        [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(port), "-m", "taxi_assets.definitions"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        # The same check as the compose/Helm probes (`dagster api grpc-health-check`), in-process.
        client = DagsterGrpcClient(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 90
        while True:
            try:
                if client.health_check_query() == "SERVING":
                    break
            except Exception:  # not listening yet
                pass
            assert server.poll() is None, f"code server exited: {(tmp_path / 'code-server.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "code server not healthy within 90 s"
            time.sleep(0.3)
        query = (
            "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {"
            " __typename ... on RepositoryLocation { repositories { assetNodes { assetKey { path } groupName } } }"
            " ... on PythonError { message } } } } } }"
        )
        done = subprocess.run(
            [str(BIN / "dagster-graphql"), "-w", str(workspace), "--ephemeral-instance", "-t", query],
            capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        (entry,) = json.loads(done.stdout)["data"]["workspaceOrError"]["locationEntries"]
        assert entry["name"] == "taxi_assets"
        location = entry["locationOrLoadError"]
        assert location["__typename"] == "RepositoryLocation", location
        served = {
            "/".join(node["assetKey"]["path"]): node["groupName"]
            for repo in location["repositories"]
            for node in repo["assetNodes"]
        }
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
    expected = {key.to_user_string() for key in local.load_defs().resolve_asset_graph().get_all_asset_keys()}
    assert set(served) == expected
    assert served["raw_trips"] == "ingestion" and served["training_set"] == "preparation"
    assert served["linear_regression"] == "models" and served["xgboost"] == "models"
