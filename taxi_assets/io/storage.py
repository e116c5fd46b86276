"""Where outputs live: a local folder or an object store named by an fsspec URL, and how an
object is published there so that no reader ever sees half of it.

A data root (``TAXI_DATA_ROOT``) is a local path (``/srv/taxi``, ``~/data``, ``file:///srv/taxi``:
a :class:`pathlib.Path`) or the URL of any fsspec filesystem (``s3://bucket/prefix``, ``gs://``,
``az://``, ``abfs://``: a :class:`upath.UPath`, the path type of Dagster's ``UPathIOManager``).
Both support ``/``, ``with_suffix``, ``exists``, ``stat``, ``unlink`` and ``open``, so the IO
manager and the report writer build keys one way for both. The filesystem's package must be
installed (``s3fs`` for ``s3://``, the ``s3`` extra; ``gcsfs``, ``adlfs``); credentials and
endpoints are the stores' own (README, "Scaling out"). :func:`atomic_target` publishes a
finished local file whole or not at all on every kind of store (:func:`publish` says how).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union
from urllib.parse import unquote, urlparse

TEMP_PREFIX = ".tmp-"  # the same prefix local temp files use (taxi_assets.io.atomic)
# Object stores whose uploads appear whole or not at all (see publish).
ATOMIC_UPLOAD_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"})

StoragePath = Union[Path, Any]  # a pathlib.Path, or an upath.UPath for an object store


def is_url(location: str | os.PathLike) -> bool:
    """Whether ``location`` names a filesystem other than the local one (``s3://...``)."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def is_remote(path: Any) -> bool:
    """Whether ``path`` (a data-root path) lives on a non-local filesystem."""
    return not isinstance(path, Path)


def as_path(location: str | os.PathLike) -> StoragePath:
    """A data root (or any output location) as a path: ``Path`` for local folders (``~``
    expanded, made absolute), ``UPath`` for object-store URLs (not resolved: there is nothing
    to resolve)."""
    if isinstance(location, Path) or (hasattr(location, "fs") and hasattr(location, "protocol")):
        return location  # already a path (a UPath keeps its own storage options)
    text = str(location).strip()
    if text.startswith("file://"):
        return Path(unquote(urlparse(text).path)).expanduser().resolve()
    if not is_url(text):
        return Path(text).expanduser().resolve()
    from upath import UPath

    return UPath(text.rstrip("/"))


def uri(path: StoragePath) -> str:
    """``path`` as a string another process can turn back into the same path (``as_path``)."""
    return str(path)


@contextlib.contextmanager
def atomic_target(target: StoragePath) -> Iterator[Path]:
    """Yield a local temp file; when the block succeeds, publish it as ``target``; the temp
    file is removed either way.

    A local target gets a temp file beside it, renamed over it
    (:func:`taxi_assets.io.atomic.atomic_path`: POSIX ``rename`` is atomic); any other target
    is uploaded by :func:`publish`. A failure while the object is serialized (a bad value, a
    full local disk) happens before anything is sent: the store is untouched and the previous
    output kept. Two writers racing on one key each publish a whole object and the last one
    wins, as with local files.
    """
    if not is_remote(target):
        from taxi_assets.io.atomic import atomic_path

        with atomic_path(target) as tmp:
            yield tmp
        return
    fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{target.name}.", suffix=target.suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        publish(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def publish(local_file: Path, target: StoragePath) -> None:
    """Upload a finished local file as ``target`` so that it appears whole or not at all.

    Object stores whose uploads are all-or-nothing (:data:`ATOMIC_UPLOAD_PROTOCOLS`): straight
    to the target key. On S3 a single PUT (files under s3fs' 50 MiB multipart threshold)
    creates the object only when the request completes, with its whole body (a PUT cut short
    creates nothing: S3 checks the length and, with s3fs, the MD5 it sends); a larger file
    goes up as a multipart upload, whose object exists only after ``CompleteMultipartUpload``
    (an aborted upload leaves invisible parts, which a bucket lifecycle rule
    ``AbortIncompleteMultipartUpload`` removes). GCS (resumable upload, finalized at the end)
    and Azure block blobs (``Put Block List`` commits the blocks) behave the same way. S3 has
    no rename: copying a temp key would cost a second full write for nothing.

    Any other fsspec filesystem (SFTP, HDFS, WebDAV...), where an upload may stream into the
    visible path: to a temp key ``.tmp-<name>.<random>`` beside the target, then moved onto
    it (``fs.mv``: a rename there).
    """
    fs, key = target.fs, target.path
    parent = str(target.parent.path)
    with contextlib.suppress(Exception):  # object stores have no folders; others need them
        fs.makedirs(parent, exist_ok=True)
    if target.protocol in ATOMIC_UPLOAD_PROTOCOLS or (
        isinstance(target.protocol, tuple) and set(target.protocol) & ATOMIC_UPLOAD_PROTOCOLS
    ):
        fs.put_file(str(local_file), key)
        return
    staged = f"{parent}/{TEMP_PREFIX}{target.name}.{uuid.uuid4().hex}"
    try:
        fs.put_file(str(local_file), staged)
        fs.mv(staged, key)
    finally:
        with contextlib.suppress(Exception):
            if fs.exists(staged):
                fs.rm(staged)


def is_temp_key(name: str) -> bool:
    return name.rsplit("/", 1)[-1].startswith(TEMP_PREFIX)
