"""The code location: definitions assembled from the ``defs/`` folder (dg project conventions).

``dagster dev -m taxi_assets.definitions``, ``dg dev``, ``dg check defs`` and the workspace
file all load ``defs``. Every asset after ``raw_trips`` gets its automation condition here, in
one place (``defs/automation/conditions.py``), and code references link each asset to its
source (on GitHub when the checkout has a remote, else the local file).

The folder is loaded from the ``taxi_assets.defs`` module itself (``dg.ComponentTree``), not
through ``dg.load_from_defs_folder``, which needs the checkout's ``pyproject.toml`` (an installed
wheel has none) and takes the location name from it: every load under another name (a plain
``-m taxi_assets.definitions`` server is named ``taxi_assets.definitions``) then logged a
name-mismatch warning per component, hundreds a minute in a daemon.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import dagster as dg

from taxi_assets.defs.automation.conditions import condition_for  # also silences beta/preview notices


class _ReplacedCodeServerIsRoutine(logging.Filter):
    """``dagster-daemon run`` on ``-m``/``-w`` (a code server it manages) starts a new code server
    every minute and leaves the old one to stop when its heartbeats stop: that server's "No
    heartbeat received in 20 seconds, shutting down" is routine, so it is logged at INFO, not as
    a warning repeated every minute. Installed in the code server process, which imports this."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and str(record.msg).startswith("No heartbeat received in "):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


logging.getLogger("dagster.code_server").addFilter(_ReplacedCodeServerIsRoutine())


def _with_automation(spec: dg.AssetSpec) -> dg.AssetSpec:
    condition = condition_for(spec.key)
    return spec if condition is None else spec.replace_attributes(automation_condition=condition)


@functools.cache
def load_defs() -> dg.Definitions:
    """The resolved Definitions (cached: loading the folder twice would build everything twice)."""
    from taxi_assets import defs as defs_module

    tree = dg.ComponentTree.from_module(defs_module=defs_module, project_root=Path(__file__).resolve().parents[1])
    loaded = tree.build_defs()
    loaded = loaded.map_resolved_asset_specs(func=_with_automation)
    return link_code_references(loaded)


def link_code_references(definitions: dg.Definitions) -> dg.Definitions:
    """Code references on every asset: GitHub links when the checkout has a GitHub remote."""
    with_sources = dg.with_source_code_references(definitions.assets or [])
    repo_root = Path(__file__).resolve().parents[1]
    remote = _github_remote(repo_root)
    if remote is not None:
        with_sources = dg.link_code_references_to_git(
            assets_defs=with_sources, git_url=remote, git_branch="main", file_path_mapping=dg.AnchorBasedFilePathMapping(
                local_file_anchor=repo_root, file_anchor_path_in_repository=""
            )
        )
    return dg.Definitions.merge(
        dg.Definitions(assets=with_sources),
        dg.Definitions(
            asset_checks=definitions.asset_checks,
            jobs=definitions.jobs,
            schedules=definitions.schedules,
            sensors=definitions.sensors,
            resources=definitions.resources,
            executor=definitions.executor,
            loggers=definitions.loggers,
            metadata=definitions.metadata,
        ),
    )


def _github_remote(repo_root: Path) -> str | None:
    config = repo_root / ".git" / "config"
    try:
        text = config.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("url =") and "github.com" in line:
            url = line.split("=", 1)[1].strip()
            if url.startswith("git@github.com:"):
                url = "https://github.com/" + url[len("git@github.com:") :]
            return url.removesuffix(".git")
    return None


@dg.definitions
def defs() -> dg.Definitions:
    return load_defs()
