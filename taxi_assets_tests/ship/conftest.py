"""Shipping checks: what users install and deploy. The wheel built, installed into a fresh
virtualenv and run outside the checkout; deploy/docker-compose.yml as podman runs it; the
deployment files against each other and the code, and the code server a gRPC workspace loads.

Every test under this folder carries the ``ship`` marker: ``make test`` runs everything else
(``-m "not ship"``), ``make test-ship`` these (``-m ship``), and CI (``.ci/run``) both."""

from __future__ import annotations

from pathlib import Path

import pytest

SHIP = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Mark this folder's tests before ``-m`` deselects (pytest calls this hook with every
    collected item, whichever folder's conftest defines it)."""
    for item in items:
        if SHIP in item.path.resolve().parents:
            item.add_marker(pytest.mark.ship)
