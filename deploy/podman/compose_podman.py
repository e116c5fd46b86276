"""deploy/docker-compose.yml as podman commands, for a machine with podman but no compose tool
and no registry (deploy/test-containers.sh runs it).

Each service becomes one ``podman run`` read from the compose file itself: image, environment
(compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` from the process environment, then
``--env-file``), entrypoint/command, volumes, restart policy, healthcheck. Services start in
``depends_on`` order; ``service_healthy`` waits run the healthcheck (``podman healthcheck run``).
All containers join one network namespace of the stack's own (loopback only) where every
service name is 127.0.0.1: services reach each other by name, nothing listens on the host, and
ports are not published (``ip netns exec PREFIX curl localhost:3000``). Images are the compose
``image:`` names under ``PREFIX/``, containers ``PREFIX-SERVICE``, volumes ``PREFIX_VOLUME``;
``down`` removes exactly those and the ``run`` containers. A key it cannot translate is an error.

Commands: ``plan`` (print), ``build``, ``up``, ``run`` (one more container in the stack), ``down``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[1] / "docker-compose.yml"
LABEL = "io.taxi-assets.stack"
# runc: crun fails on this kind of machine's cgroups (PODMAN_RUNTIME overrides).
PODMAN = ["podman", "--runtime", os.environ.get("PODMAN_RUNTIME", "runc")]
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class ComposeError(Exception):
    """The compose file asks for something unset or unsupported (one line, no traceback)."""


def interpolate(text: str, variables: dict[str, str], strict: bool = True) -> str:
    """Compose's variable substitution: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
    ``${VAR-default}``, ``${VAR:?message}``, ``${VAR?message}`` (not ``strict``: a missing
    required variable becomes empty, for commands that only need names, such as ``down``)."""

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3) or ""
        value = variables.get(name)
        missing = value is None or (value == "" and operator is not None and operator.startswith(":"))
        if "$" in argument:
            raise ComposeError(f"nested substitution in ${{{name}{operator}{argument}...}} is not supported")
        if operator in (":-", "-"):
            return argument if missing else value
        if operator in (":?", "?"):
            if missing and strict:
                raise ComposeError(f"{name}: {argument or 'required variable is not set'}")
            return value or ""
        return value or ""

    return _VAR.sub(substitute, text)


def _interpolate_tree(node, variables, strict: bool):
    if isinstance(node, str):
        return interpolate(node, variables, strict)
    if isinstance(node, list):
        return [_interpolate_tree(item, variables, strict) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, variables, strict) for key, value in node.items()}
    return node


def read_env_file(path: Path | None) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, optional quotes), like compose's ``--env-file``."""
    values: dict[str, str] = {}
    if path is None:
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


@dataclass
class Service:
    name: str
    image: str  # the local tag (PREFIX/<compose image>)
    run_args: list[str]  # podman run arguments, without "podman run"
    depends_on: dict[str, str]  # service -> condition
    has_healthcheck: bool
    healthcheck: dict = field(default_factory=dict)
    build: dict | None = None  # interpolated compose build section


@dataclass
class Stack:
    prefix: str
    compose_dir: Path
    services: dict[str, Service]
    volumes: list[str]  # podman volume names

    @property
    def netns(self) -> str:
        return self.prefix

    def container(self, service: str) -> str:
        return f"{self.prefix}-{service}"

    def network_args(self) -> list[str]:
        args = ["--network", f"ns:/run/netns/{self.netns}"]
        for name in self.services:
            args += ["--add-host", f"{name}:127.0.0.1"]
        return args


def _environment(spec) -> list[str]:
    if spec is None:
        return []
    items = spec.items() if isinstance(spec, dict) else (entry.split("=", 1) if "=" in entry else (entry, None) for entry in spec)
    args = []
    for key, value in items:
        # A bare KEY takes the value from the environment podman runs in, as in compose.
        args += ["-e", key if value is None else f"{key}={value}"]
    return args


def _volume(spec, prefix: str, compose_dir: Path, named: set[str]) -> str:
    if not isinstance(spec, str):
        raise ComposeError(f"long-syntax volume {spec!r} is not supported")
    source, _, rest = spec.partition(":")
    if not rest:
        raise ComposeError(f"anonymous volume {spec!r} is not supported")
    if source.startswith((".", "/", "~")):
        path = (compose_dir / Path(source).expanduser()).resolve()
        if not path.exists():
            raise ComposeError(f"bind mount source {path} does not exist")
        return f"{path}:{rest}"
    if source not in named:
        raise ComposeError(f"volume {source!r} is not declared under the top-level volumes")
    return f"{prefix}_{source}:{rest}"


def _healthcheck_args(check: dict) -> list[str]:
    test = check["test"]
    if isinstance(test, str):
        command = test
    elif test[0] == "CMD":
        command = json.dumps(test[1:])
    elif test[0] == "CMD-SHELL":
        command = test[1]
    else:
        raise ComposeError(f"healthcheck test {test!r} is not supported")
    args = ["--health-cmd", command]
    for key in ("interval", "timeout", "retries", "start_period"):
        if key in check:
            args += [f"--health-{key.replace('_', '-')}", str(check[key])]
    return args


def load(
    prefix: str,
    env_file: Path | None = None,
    compose_file: Path = COMPOSE_FILE,
    extra_mounts: dict[str, list[str]] | None = None,
    environ: dict[str, str] | None = None,
    strict: bool = True,
) -> Stack:
    """The compose file as a Stack. ``extra_mounts`` adds ``SRC:DST[:MODE]`` volumes to
    services (what a compose override file would add, e.g. the TLC folder)."""
    variables = {**read_env_file(env_file), **(os.environ if environ is None else environ)}
    compose = _interpolate_tree(yaml.safe_load(compose_file.read_text()), variables, strict)
    compose_dir = compose_file.resolve().parent
    named = set(compose.get("volumes") or {})
    services: dict[str, Service] = {}
    stack = Stack(prefix, compose_dir, services, [f"{prefix}_{name}" for name in sorted(named)])
    for name, spec in compose["services"].items():
        unsupported = set(spec) - {
            "image", "build", "command", "entrypoint", "environment", "volumes", "ports", "expose",
            "healthcheck", "depends_on", "restart",
        }
        if unsupported:
            raise ComposeError(f"service {name}: keys {sorted(unsupported)} are not supported")
        image = f"{prefix}/{spec['image']}"
        args = ["--name", stack.container(name), "--label", f"{LABEL}={prefix}"]
        if "restart" in spec:
            args += ["--restart", spec["restart"]]
        args += _environment(spec.get("environment"))
        for volume in spec.get("volumes", []):
            args += ["-v", _volume(volume, prefix, compose_dir, named)]
        for mount in (extra_mounts or {}).get(name, []):
            args += ["-v", mount]
        healthcheck = spec.get("healthcheck") or {}
        if healthcheck:
            args += _healthcheck_args(healthcheck)
        if "entrypoint" in spec:
            entrypoint = spec["entrypoint"]
            args += ["--entrypoint", json.dumps(entrypoint if isinstance(entrypoint, list) else shlex.split(entrypoint))]
        command = spec.get("command")
        command = shlex.split(command) if isinstance(command, str) else list(command or [])
        depends = spec.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {dep: {"condition": "service_started"} for dep in depends}
        services[name] = Service(
            name=name,
            image=image,
            run_args=args + [image] + command,
            depends_on={dep: cond.get("condition", "service_started") for dep, cond in depends.items()},
            has_healthcheck=bool(healthcheck),
            healthcheck=healthcheck,
            build=spec.get("build"),
        )
    for name, service in services.items():
        for dep in service.depends_on:
            if dep not in services:
                raise ComposeError(f"service {name} depends on unknown service {dep}")
    return stack


def start_order(stack: Stack) -> list[str]:
    """Services with their dependencies first (compose file order otherwise)."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path:
            raise ComposeError(f"dependency cycle: {' -> '.join(path + (name,))}")
        for dep in stack.services[name].depends_on:
            visit(dep, path + (name,))
        order.append(name)

    for name in stack.services:
        visit(name, ())
    return order


def build_commands(stack: Stack, extra: list[str]) -> list[tuple[str, list[str]]]:
    """``(image, podman build command)`` for each image with a build section (the webserver
    and daemon share one)."""
    commands, seen = [], set()
    for service in stack.services.values():
        if not service.build or service.image in seen:
            continue
        seen.add(service.image)
        context = (stack.compose_dir / service.build.get("context", ".")).resolve()
        dockerfile = context / service.build.get("dockerfile", "Dockerfile")
        command = [*PODMAN, "build", "-f", str(dockerfile), "-t", service.image]
        ignore = Path(f"{dockerfile}.dockerignore")
        if ignore.is_file():  # BuildKit's per-Dockerfile ignore file
            command += ["--ignorefile", str(ignore)]
        for key, value in (service.build.get("args") or {}).items():
            command += ["--build-arg", f"{key}={value}"]
        commands.append((service.image, command + extra + [str(context)]))
    return commands


def build(stack: Stack, extra: list[str], log_dir: Path) -> None:
    """Build every image, each one's output in LOG_DIR/<image>.log (its tail shown on failure)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    for image, command in build_commands(stack, extra):
        log = log_dir / (image.replace("/", "_").replace(":", "_") + ".log")
        print(f"  building {image} (log {log})", flush=True)
        started = time.monotonic()
        with open(log, "w") as out:
            done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            print("".join(log.read_text().splitlines(keepends=True)[-40:]), file=sys.stderr)
            raise ComposeError(f"building {image} failed (exit {done.returncode}); full log {log}")
        print(f"  built {image} in {time.monotonic() - started:.0f} s", flush=True)


def mask(text: str) -> str:
    """Passwords out of printed commands: ``*_PASSWORD=...`` values and ``user:password@`` in URIs."""
    return re.sub(r"(PASSWORD=)\S+", r"\1***", re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", text))


def _podman(*args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
    """podman, with its complaints about the missing systemd (healthcheck timers) dropped:
    healthchecks are run on demand by wait_healthy instead."""
    done = subprocess.run([*PODMAN, *args], capture_output=True, text=True)
    noise = "unable to get systemd connection"
    for line in done.stderr.splitlines():
        if noise not in line and not quiet:
            print(line, file=sys.stderr)
    if check and done.returncode != 0:
        raise ComposeError(f"podman {' '.join(args[:2])} ... exited {done.returncode}")
    return done


def _running(container: str) -> bool:
    done = _podman("inspect", "--format", "{{.State.Status}}", container, check=False, quiet=True)
    return done.returncode == 0 and done.stdout.strip() == "running"


def _seconds(value, default: float) -> float:
    if value is None:
        return default
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", str(value))
    if not match or not any(match.groups()):
        raise ComposeError(f"duration {value!r} is not supported")
    return int(match.group(1) or 0) * 60 + float(match.group(2) or 0)


def wait_healthy(stack: Stack, name: str) -> float:
    """Run the service's healthcheck until it passes, as compose's retries allow; seconds waited."""
    check = stack.services[name].healthcheck
    interval = _seconds(check.get("interval"), 30)
    attempts = int(check.get("retries", 3)) + int(_seconds(check.get("start_period"), 0) / interval)
    started = time.monotonic()
    for _ in range(attempts):
        if not _running(stack.container(name)):
            raise ComposeError(f"{stack.container(name)} is not running (podman logs {stack.container(name)})")
        if _podman("healthcheck", "run", stack.container(name), check=False, quiet=True).returncode == 0:
            return time.monotonic() - started
        time.sleep(interval)
    raise ComposeError(f"{stack.container(name)} not healthy after {attempts} checks (podman logs {stack.container(name)})")


def up(stack: Stack) -> None:
    subprocess.run(["ip", "netns", "add", stack.netns], check=True)
    subprocess.run(["ip", "netns", "exec", stack.netns, "ip", "link", "set", "lo", "up"], check=True)
    for volume in stack.volumes:
        _podman("volume", "create", "--label", f"{LABEL}={stack.prefix}", volume, quiet=True)
    healthy: set[str] = set()
    for name in start_order(stack):
        service = stack.services[name]
        for dep, condition in service.depends_on.items():
            if condition == "service_healthy" and dep not in healthy:
                seconds = wait_healthy(stack, dep)
                healthy.add(dep)
                print(f"  {dep} healthy ({seconds:.0f} s)", flush=True)
            elif condition not in ("service_healthy", "service_started"):
                raise ComposeError(f"depends_on condition {condition} is not supported")
        _podman("run", "-d", *stack.network_args(), *service.run_args, quiet=True)
        print(f"  started {stack.container(name)}", flush=True)


def run(stack: Stack, name: str, image: str, command: list[str], env: list[str], volumes: list[str], detach: bool) -> int:
    """One more container in the stack's network, named PREFIX-NAME and removed by ``down``."""
    args = ["run", "--name", stack.container(name), "--label", f"{LABEL}={stack.prefix}", *stack.network_args()]
    for item in env:
        args += ["-e", item]
    for item in volumes:
        args += ["-v", item]
    args += ["-d"] if detach else ["--rm"]
    image = stack.services[image].image if image in stack.services else image
    return subprocess.run([*PODMAN, *args, image, *command]).returncode


def down(stack: Stack) -> None:
    """Remove the stack's containers (``run`` ones, then services in reverse start order, so
    Postgres stops after its clients), volumes and network namespace, by name."""
    listed = _podman("ps", "-a", "--filter", f"label={LABEL}={stack.prefix}", "--format", "{{.Names}}", check=False, quiet=True)
    services = [stack.container(name) for name in reversed(start_order(stack))]
    for container in sorted(set(listed.stdout.split()) - set(services)) + services:
        if _podman("container", "exists", container, check=False, quiet=True).returncode == 0:
            _podman("rm", "-f", "-t", "5", container, check=False)
            print(f"  removed container {container}")
    for volume in stack.volumes:
        if _podman("volume", "exists", volume, check=False, quiet=True).returncode == 0:
            _podman("volume", "rm", "-f", volume, check=False)
            print(f"  removed volume {volume}")
    if Path(f"/run/netns/{stack.netns}").exists():
        subprocess.run(["ip", "netns", "del", stack.netns], check=False)
        print(f"  removed network namespace {stack.netns}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefix", default="taxi-ct", help="names of images, containers, volumes, network namespace")
    parser.add_argument("--env-file", type=Path)
    parser.add_argument("--file", type=Path, default=COMPOSE_FILE)
    parser.add_argument("--mount", action="append", default=[], metavar="SERVICE=SRC:DST[:MODE]")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("plan")
    builder = sub.add_parser("build")
    builder.add_argument("--log-dir", type=Path, default=Path("/tmp/taxi-ct-build-logs"))
    builder.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more podman build flags")
    sub.add_parser("up")
    sub.add_parser("down")
    extra = sub.add_parser("run", usage="%(prog)s [-e K=V] [-v SRC:DST] [-d] NAME IMAGE -- COMMAND...")
    extra.add_argument("-e", "--env", action="append", default=[])
    extra.add_argument("-v", "--volume", action="append", default=[])
    extra.add_argument("-d", "--detach", action="store_true")
    extra.add_argument("name")
    extra.add_argument("image", help="a service name (its image) or an image")
    extra.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    mounts: dict[str, list[str]] = {}
    for item in args.mount:
        service, _, mount = item.partition("=")
        mounts.setdefault(service, []).append(mount)
    try:
        stack = load(args.prefix, args.env_file, args.file, mounts, strict=args.command != "down")
        if args.command == "plan":
            for name in start_order(stack):
                print(mask(shlex.join([*PODMAN, "run", "-d", *stack.network_args(), *stack.services[name].run_args])))
        elif args.command == "build":
            build(stack, args.extra[1:] if args.extra[:1] == ["--"] else args.extra, args.log_dir)
        elif args.command == "up":
            up(stack)
        elif args.command == "down":
            down(stack)
        elif args.command == "run":
            command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            return run(stack, args.name, args.image, command, args.env, args.volume, args.detach)
    except (ComposeError, subprocess.CalledProcessError, OSError) as exc:
        print(f"compose_podman: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
