"""Atomic file publication: write beside the target, then rename over it.

A reader sees either the previous complete file or the new complete file, never a half-written
one; a failed or interrupted writer leaves the previous good output untouched. Two writers
racing on the same target each publish a complete file and the last rename wins, so the
result is always one writer's whole output.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_PREFIX = ".tmp-"


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temp path in ``target``'s folder; on success rename it onto ``target``.

    An object-store target (a ``UPath`` or URL such as ``s3://bucket/key``) gets a local temp
    file published by :func:`taxi_assets.io.storage.atomic_target` instead (an all-or-nothing
    upload), so callers write both kinds the same way."""
    if not isinstance(target, Path) and "://" in str(target) and not str(target).startswith("file://"):
        from taxi_assets.io.storage import as_path, atomic_target

        with atomic_target(as_path(target)) as tmp:
            yield tmp
        return
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{target.name}.", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; published outputs get the usual umask-based mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def is_temp_file(path: Path) -> bool:
    return path.name.startswith(TEMP_PREFIX)
