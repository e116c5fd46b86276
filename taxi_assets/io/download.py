"""Fetch one month of NYC TLC trip data (one parquet file) over HTTP(S) or from a local folder.

Either way the bytes go to a ``.part`` file in ``dest_dir`` that is renamed into place only once
pyarrow reads its footer: a failed fetch leaves no half file and never replaces a good copy.
One attempt per call: retrying is the caller's (the ``raw_trips`` step), so there is one retry layer.

:class:`DownloadError` (and :class:`DownloadTimeoutError`) is the one transient kind: HTTP 5xx/429,
a connection refused or broken, a timeout. Every other :class:`DataSourceError` is permanent: not
published (403/404, file missing), another status, a corrupt file, a link leaving the source
folder, a full or read-only ``dest_dir``. Messages never quote the file or the server's bytes.

HTTP goes through ``requests`` with ``timeout=(timeout, timeout)``: no connection, no answer, or
no body byte for ``timeout`` s fails; the read loop also fails a body bringing under 64 KiB in
``timeout`` s (a trickle keeps each read alive), so a stalled body fails within ``2 * timeout``.
Headers trickled byte by byte are bounded per read only (no overall deadline in requests).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import pyarrow.parquet as pq
import requests
import urllib3

TLC_BASE_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data"
TAXI_TYPES = ("green", "yellow")

_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_PARQUET_MAGIC = b"PAR1"
_CHUNK_BYTES = 1 << 20
# Fewer body bytes than this in ``timeout`` seconds is a stalled transfer (at 30 s: ~2 KB/s).
_PROGRESS_BYTES = 64 * 1024
_FULL_ERRNOS = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG) if code)
_NOT_PUBLISHED_STATUSES = (403, 404)


class DataSourceError(Exception):
    """A month could not be obtained; permanent unless it is a :class:`DownloadError`."""


class MonthNotPublishedError(DataSourceError):
    """The month's file does not exist at the source (yet): HTTP 403/404 or missing locally."""


class DownloadError(DataSourceError):
    """Transient: HTTP 5xx/429, a connection refused or broken, a timeout. Worth retrying."""


class DownloadTimeoutError(DownloadError):
    """The source stopped answering: no connection, no response, or a stalled body."""


class DestinationError(DataSourceError):
    """``dest_dir`` cannot take the file (read-only, no permission, ...)."""


class StorageFullError(DestinationError):
    """``dest_dir``'s file system is full, or a quota or file-size limit is reached."""


class CorruptFileError(DataSourceError):
    """Bytes were received but are not a readable parquet file (HTML, empty, no footer)."""


@dataclass(frozen=True)
class FetchedMonth:
    """A validated parquet file in ``dest_dir`` plus where it came from and its checksum."""

    path: Path
    source: str  # the URL or local file path the bytes were read from
    num_bytes: int
    sha256: str


def month_file_name(taxi_type: str, month: str) -> str:
    """Return the TLC file name for a month, e.g. ``green_tripdata_2024-01.parquet``."""
    if taxi_type not in TAXI_TYPES:
        raise ValueError(f"taxi_type must be one of {', '.join(TAXI_TYPES)}; got {taxi_type!r}")
    if not isinstance(month, str) or not _MONTH_RE.match(month):
        raise ValueError(f"month must be 'YYYY-MM' (e.g. '2024-01'); got {month!r}")
    return f"{taxi_type}_tripdata_{month}.parquet"


def fetch_month(
    source: str,
    taxi_type: str,
    month: str,
    dest_dir: Path,
    *,
    timeout: float = 30,
    log: Callable[[str], None] | None = None,
) -> FetchedMonth:
    """Fetch one month into ``dest_dir/<file name>`` (one attempt) and return it validated."""
    file_name = month_file_name(taxi_type, month)
    dest_dir = Path(dest_dir)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _destination_error(exc, file_name, dest_dir) from None
    log = log or (lambda message: None)
    url, folder = _locate(source, file_name)
    started = time.monotonic()
    if folder is None:
        log(f"GET {url}")
        part, num_bytes, sha256 = _download(url, file_name, dest_dir, timeout)
        origin, done = url, f"downloaded {file_name}"
    else:
        target = _local_file(folder, file_name)
        if target is None:
            raise MonthNotPublishedError(f"{file_name} is not published yet in local folder {folder} (file missing)")
        if (dest_dir / file_name).resolve() == target:
            raise ValueError(
                f"dest_dir {dest_dir} is the local source folder itself; fetching {file_name} "
                "would hand out the source file for deletion. Use a separate dest_dir."
            )
        part, num_bytes, sha256 = _write_part(_local_chunks(target, folder, file_name), file_name, dest_dir)
        origin, done = str(folder / file_name), f"copied {file_name} from {folder}"
    path = _finalize(part, dest_dir / file_name, origin, dest_dir)
    seconds = time.monotonic() - started
    log(f"{done}: {num_bytes:,} bytes in {seconds:.2f}s ({num_bytes / 1e6 / max(seconds, 1e-9):.1f} MB/s), "
        f"sha256 {sha256[:12]}…")  # fmt: skip
    return FetchedMonth(path=path, source=origin, num_bytes=num_bytes, sha256=sha256)


def month_available(source: str, taxi_type: str, month: str, *, timeout: float = 10) -> bool:
    """Whether the source has published the month, without downloading it.

    HTTP: HEAD (a ``Range: bytes=0-3`` GET if HEAD gets 405); True on 200/206, False on 403/404,
    DownloadError otherwise (so a sensor reports an outage instead of silently waiting).
    """
    file_name = month_file_name(taxi_type, month)
    url, folder = _locate(source, file_name)
    if folder is not None:
        return _local_file(folder, file_name) is not None
    what = f"could not probe {file_name} at {url}"
    try:
        response = requests.head(url, allow_redirects=True, timeout=(timeout, timeout))
        if response.status_code == 405:
            with requests.get(url, headers={"Range": "bytes=0-3"}, stream=True, timeout=(timeout, timeout)) as response:
                pass
    except requests.RequestException as exc:
        raise _request_error(exc, what, timeout) from None
    if response.status_code in (200, 206):
        return True
    if response.status_code in _NOT_PUBLISHED_STATUSES:
        return False
    raise DownloadError(f"{what}: unexpected HTTP {response.status_code} to {response.request.method}")


# --------------------------------------------------------------------------- HTTP


def _download(url: str, file_name: str, dest_dir: Path, timeout: float) -> tuple[Path, int, str]:
    what = f"could not download {file_name} from {url}"
    try:
        # identity encoding: the body is byte for byte the file, as Content-Length and sha256 say.
        response = requests.get(url, stream=True, timeout=(timeout, timeout), headers={"Accept-Encoding": "identity"})
    except requests.RequestException as exc:
        raise _request_error(exc, what, timeout) from None
    with response:
        status = response.status_code
        if status in _NOT_PUBLISHED_STATUSES:
            raise MonthNotPublishedError(
                f"{file_name} is not published yet at {url} (HTTP {status}); TLC publishes months with a ~2 month lag"
            )
        if status == 429 or status >= 500:
            raise DownloadError(f"{what}: HTTP {status}")
        if status != 200:
            raise DataSourceError(f"{what}: HTTP {status} (not retried)")
        return _write_part(_body_chunks(response, what, timeout), file_name, dest_dir)


def _body_chunks(response: requests.Response, what: str, timeout: float) -> Iterator[bytes]:
    """The body as it arrives, failing a stalled one. ``read1`` returns what one socket read
    brings, so the deadline is checked after every read (``iter_content`` would block until a
    whole chunk had arrived, byte by trickled byte)."""
    length = response.headers.get("Content-Length", "")
    identity = response.headers.get("Content-Encoding", "identity") == "identity"
    of = f" of {int(length):,}" if length.isdigit() and identity else ""
    received, window_start, window_bytes = 0, time.monotonic(), 0
    while True:
        try:
            chunk = response.raw.read1(_CHUNK_BYTES, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError:
            raise DownloadTimeoutError(f"{what}: timed out: no data for {timeout:g} s after {received:,}{of} bytes") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # reset, cut short, bad chunk framing
            raise DownloadError(f"{what}: connection broken after {received:,}{of} bytes ({_reason(exc)})") from None
        if not chunk:
            return
        received += len(chunk)
        window_bytes += len(chunk)
        yield chunk
        if time.monotonic() - window_start >= timeout:
            if window_bytes < _PROGRESS_BYTES:
                raise DownloadTimeoutError(
                    f"{what}: timed out: under {_PROGRESS_BYTES // 1024} KiB in {timeout:g} s "
                    f"after {received:,}{of} bytes"
                )
            window_start, window_bytes = time.monotonic(), 0


def _request_error(exc: requests.RequestException, what: str, timeout: float) -> DataSourceError:
    """The error for a request that got no response: timeouts and connection errors are transient."""
    if isinstance(exc, requests.ConnectTimeout):
        return DownloadTimeoutError(f"{what}: timed out: no connection within {timeout:g} s")
    if isinstance(exc, requests.Timeout):
        return DownloadTimeoutError(f"{what}: timed out: no response within {timeout:g} s")
    if isinstance(exc, requests.ConnectionError):
        return DownloadError(f"{what} ({_reason(exc)})")
    return DataSourceError(f"{what} ({_reason(exc)}; not retried)")


def _reason(exc: BaseException) -> str:
    """The exception's class, and the OS's reason behind it if any: never its text, which may
    quote what the server sent (a non-HTTP answer, a bad chunk header)."""
    seen, stack = set(), [exc]
    while stack:
        current = stack.pop(0)
        if current is None or id(current) in seen:
            continue
        if isinstance(current, OSError) and current.strerror:
            return f"{type(exc).__name__}: {current.strerror}"
        seen.add(id(current))
        stack += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        stack += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
    return type(exc).__name__


# --------------------------------------------------------------------------- local folders


def _locate(source: str, file_name: str) -> tuple[str | None, Path | None]:
    """``(URL of the file, None)`` for an http(s) source, ``(None, folder)`` for a local one."""
    parsed = urlparse(source)
    if parsed.scheme.lower() in ("http", "https"):
        return f"{source.rstrip('/')}/{file_name}", None
    folder = Path(url2pathname(unquote(parsed.path))) if parsed.scheme.lower() == "file" else Path(source)
    if not folder.is_dir():
        raise DataSourceError(f"local data source folder does not exist: {folder}")
    return None, folder


def _local_file(folder: Path, file_name: str) -> Path | None:
    """The month's file in ``folder`` with links resolved, or None when it is missing; refuses a
    link leaving the folder and anything that is not a regular file (a FIFO would block)."""
    path = folder / file_name
    if not os.path.lexists(path):
        return None
    target = path.resolve()
    if not target.is_relative_to(folder.resolve()):
        raise DataSourceError(
            f"{file_name} in the local source folder {folder} is a symbolic link to a file outside "
            "that folder; refusing to read it (put the file itself, or a link within the folder, there)"
        )
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return None  # a dangling link within the folder: the month is not there
    except OSError as exc:
        raise DataSourceError(f"cannot read {file_name} in the local source folder {folder}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise DataSourceError(f"{file_name} in the local source folder {folder} is not a regular file; refusing to read it")
    return target


def _local_chunks(target: Path, folder: Path, file_name: str) -> Iterator[bytes]:
    """The checked file's bytes, opened without following a link swapped in since the check."""
    cannot = f"cannot read {file_name} in the local source folder {folder}"
    try:
        src = open(os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb")
    except OSError as exc:
        raise DataSourceError(f"{cannot}: {exc.strerror}") from None
    with src:
        if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            raise DataSourceError(f"{file_name} in the local source folder {folder} is not a regular file; refusing to read it")
        while True:
            try:
                chunk = src.read(_CHUNK_BYTES)
            except OSError as exc:
                raise DataSourceError(f"{cannot}: {exc.strerror}") from None
            if not chunk:
                return
            yield chunk


# --------------------------------------------------------------------------- writing and validating


def _write_part(chunks: Iterator[bytes], file_name: str, dest_dir: Path) -> tuple[Path, int, str]:
    """``chunks`` into a new ``.part`` file in ``dest_dir``: ``(path, bytes, sha256)``; the file is
    removed on any failure, and a failed write (or flush) is a DestinationError."""
    try:
        part = tempfile.NamedTemporaryFile(dir=dest_dir, prefix=f"{file_name}.", suffix=".part", delete=False)
    except OSError as exc:
        raise _destination_error(exc, file_name, dest_dir) from None
    path, digest, size = Path(part.name), hashlib.sha256(), 0
    try:
        with part:
            for chunk in chunks:
                part.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:  # only writes raise OSError here: the chunk readers raise DataSourceError
        path.unlink(missing_ok=True)
        raise _destination_error(exc, file_name, dest_dir) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path, size, digest.hexdigest()


def _finalize(part_path: Path, final_path: Path, source: str, dest_dir: Path) -> Path:
    """Validate the temp file and move it to its final name; delete it if invalid."""
    try:
        _validate_parquet(part_path, final_path.name, source)
        try:
            os.replace(part_path, final_path)
        except OSError as exc:
            raise _destination_error(exc, final_path.name, dest_dir) from None
    except BaseException:
        part_path.unlink(missing_ok=True)
        raise
    return final_path


def _destination_error(exc: OSError, file_name: str, dest_dir: Path) -> DestinationError:
    """The permanent error for a failed write into ``dest_dir`` (full disk: StorageFullError)."""
    code = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno else type(exc).__name__
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else "write failed")
    kind = StorageFullError if exc.errno in _FULL_ERRNOS else DestinationError
    return kind(
        f"cannot write {file_name} into {dest_dir}: {reason} ({code}); "
        "the partial file was removed and nothing was replaced"
    )


def _looks_like(head: bytes) -> str:
    """A content-free guess at what a non-parquet file is, from its first bytes."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed data"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in text:
        return "HTML"
    if text.startswith(b"<"):
        return "XML"
    if text.startswith((b"{", b"[")):
        return "JSON"
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end of the sample
        decoded = head[: exc.start].decode("utf-8") if exc.start >= len(head) - 3 else None
    if decoded is not None and all(c.isprintable() or c in "\t\r\n" for c in decoded):
        return "text"
    return "binary data"


def _validate_parquet(path: Path, file_name: str, source: str) -> None:
    """Raise CorruptFileError unless ``path`` is a parquet file whose footer pyarrow reads; the
    message says what is wrong, never what the file holds."""
    size = path.stat().st_size
    problem = None
    if size == 0:
        problem = "empty file (0 bytes)"
    else:
        with path.open("rb") as fh:
            head = fh.read(512)
            fh.seek(max(size - 4, 0))
            tail = fh.read(4)
        if not head.startswith(_PARQUET_MAGIC):
            problem = (
                f"not a parquet file (no 'PAR1' magic bytes at the start; {size:,} bytes, "
                f"looks like {_looks_like(head)})"
            )
        elif size < 12 or tail != _PARQUET_MAGIC:
            problem = f"not a complete parquet file ({size} bytes, no 'PAR1' footer magic at the end)"
        else:
            try:
                with pq.ParquetFile(path) as parquet_file:
                    parquet_file.metadata  # noqa: B018 - reading the footer is the check
            except Exception as exc:  # noqa: BLE001 - pyarrow's text may quote the file: class only
                problem = f"parquet footer unreadable ({type(exc).__name__}); {size:,} bytes"
    if problem:
        raise CorruptFileError(f"{file_name} from {source} is corrupt: {problem}")
