"""Fetch one month of NYC TLC trip data (one parquet file) from a data source.

A *source* is either the TLC CloudFront base URL (or any mirror serving the same
file names over http(s)) or a local folder holding ``<taxi>_tripdata_YYYY-MM.parquet``
files (a plain path or a ``file://`` URL). Both kinds end the same way: a validated
parquet file at ``dest_dir/<file name>`` that the caller owns and may delete.

Retry policy (HTTP only)
    A month is tried at most ``retries + 1`` times. Transient failures are retried
    with exponential backoff (``backoff_seconds * 2**n`` before retry ``n``, n = 0, 1,
    ...): HTTP 5xx and 429, connection errors, timeouts, and bodies shorter than
    their Content-Length. 403/404 are never retried: TLC answers 403 for months it
    has not published yet, so they raise :class:`MonthNotPublishedError` at once,
    which a schedule/sensor can treat as "try again later" rather than as a failure.
    Any other status (401, 400, ...) is a configuration problem and is not retried.
    A body that arrives complete but is not parquet (an HTML error page served
    with 200, an empty file) is not retried either: a server that does this will
    most likely do it again, so :class:`CorruptFileError` is raised straight away.

Atomicity
    Bytes are streamed into a ``*.part`` temp file inside ``dest_dir`` and hashed
    on the way. The temp file is validated as parquet (magic bytes at both ends,
    footer metadata readable by pyarrow) *before* ``os.replace`` moves it to its
    final name, so the final name only ever holds a complete, readable file, and
    a failed fetch never clobbers a good copy already there. Every failure path
    deletes the temp file, so no half file is left behind.

Local folders
    The file is *copied* into ``dest_dir`` (same temp-file-then-``os.replace`` dance)
    rather than read in place, so callers treat both source kinds identically and
    may delete the returned path without ever touching the source data. For the
    same reason ``dest_dir`` must not be the source folder itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import pyarrow.parquet as pq
import requests

TLC_BASE_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data"
TAXI_TYPES = ("green", "yellow")

_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_PARQUET_MAGIC = b"PAR1"
_CHUNK_BYTES = 1 << 20
_NOT_PUBLISHED_STATUSES = (403, 404)


class DataSourceError(Exception):
    """Base class for every failure to obtain a month of trip data."""


class MonthNotPublishedError(DataSourceError):
    """The month's file does not exist at the source (yet): HTTP 403/404 or missing locally."""


class DownloadError(DataSourceError):
    """The file could not be transferred: retries exhausted, or a non-retryable HTTP status."""


class CorruptFileError(DataSourceError):
    """Bytes were received but are not a readable parquet file (truncated, HTML, empty)."""


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
    timeout: float = 60,
    retries: int = 3,
    backoff_seconds: float = 1.0,
    session: requests.Session | None = None,
    log: Callable[[str], None] | None = None,
) -> FetchedMonth:
    """Fetch one month into ``dest_dir/<file name>`` and return it validated.

    ``retries`` is the number of retries after the first attempt (HTTP only).
    Raises MonthNotPublishedError, DownloadError or CorruptFileError (all
    DataSourceError); see the module docstring for the policy.
    """
    file_name = month_file_name(taxi_type, month)
    if retries < 0:
        raise ValueError(f"retries must be >= 0; got {retries}")
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    log = log or (lambda message: None)
    base_url, folder = _parse_source(source)
    if folder is not None:
        return _copy_local(folder, file_name, dest_dir, log)
    url = f"{base_url}/{file_name}"
    own_session = session is None
    session = session or requests.Session()
    try:
        return _download_http(url, file_name, dest_dir, timeout, retries, backoff_seconds, session, log)
    finally:
        if own_session:
            session.close()


def month_available(
    source: str,
    taxi_type: str,
    month: str,
    *,
    timeout: float = 10,
    session: requests.Session | None = None,
) -> bool:
    """Cheaply tell whether the source has published the month (no body download).

    HTTP: HEAD, or a ``Range: bytes=0-3`` GET if the server answers HEAD with 405.
    True on 200/206, False on 403/404; anything else (or no connection) raises
    DownloadError so a sensor surfaces an outage instead of silently waiting.
    """
    file_name = month_file_name(taxi_type, month)
    base_url, folder = _parse_source(source)
    if folder is not None:
        return (folder / file_name).is_file()
    url = f"{base_url}/{file_name}"
    own_session = session is None
    session = session or requests.Session()
    try:
        try:
            response = session.head(url, timeout=timeout, allow_redirects=True)
            response.close()
            if response.status_code == 405:
                with session.get(
                    url, headers={"Range": "bytes=0-3"}, stream=True, timeout=timeout
                ) as response:
                    pass
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise DownloadError(
                f"could not probe {file_name} at {url}: {type(exc).__name__}: {exc}"
            ) from exc
    finally:
        if own_session:
            session.close()
    if response.status_code in (200, 206):
        return True
    if response.status_code in _NOT_PUBLISHED_STATUSES:
        return False
    raise DownloadError(
        f"could not probe {file_name} at {url}: unexpected HTTP {response.status_code} "
        f"to {response.request.method}"
    )


# --------------------------------------------------------------------------- helpers


def _parse_source(source: str) -> tuple[str | None, Path | None]:
    """Split a source into (base URL, None) for http(s) or (None, folder) for local."""
    scheme = urlparse(source).scheme.lower()
    if scheme in ("http", "https"):
        return source.rstrip("/"), None
    if scheme == "file":
        folder = Path(url2pathname(unquote(urlparse(source).path)))
    else:
        folder = Path(source)
    if not folder.is_dir():
        raise DataSourceError(f"local data source folder does not exist: {folder}")
    return None, folder


class _TransientFailure(Exception):
    """One HTTP attempt failed in a way worth retrying; ``problem`` says how."""

    def __init__(self, problem: str, truncated: bool = False):
        super().__init__(problem)
        self.problem = problem
        self.truncated = truncated


def _download_http(
    url: str,
    file_name: str,
    dest_dir: Path,
    timeout: float,
    retries: int,
    backoff_seconds: float,
    session: requests.Session,
    log: Callable[[str], None],
) -> FetchedMonth:
    attempts = retries + 1
    last_failure = _TransientFailure("no attempt made")
    for attempt in range(1, attempts + 1):
        log(f"GET {url} (attempt {attempt}/{attempts})")
        started = time.monotonic()
        try:
            part_path, num_bytes, sha256 = _stream_once(url, file_name, dest_dir, timeout, session)
        except _TransientFailure as failure:
            last_failure = failure
            if attempt < attempts:
                delay = backoff_seconds * 2 ** (attempt - 1)
                log(f"{file_name}: attempt {attempt}/{attempts} failed ({failure.problem}); "
                    f"retrying in {delay:.2f}s")
                time.sleep(delay)
            continue
        final_path = _finalize(part_path, dest_dir / file_name, url)
        seconds = time.monotonic() - started
        log(f"downloaded {file_name}: {num_bytes:,} bytes in {seconds:.2f}s "
            f"({num_bytes / 1e6 / max(seconds, 1e-9):.1f} MB/s), sha256 {sha256[:12]}…")
        return FetchedMonth(path=final_path, source=url, num_bytes=num_bytes, sha256=sha256)

    if last_failure.truncated:
        raise CorruptFileError(
            f"{file_name} from {url} is corrupt: {last_failure.problem} "
            f"(on the last of {attempts} attempts)"
        )
    raise DownloadError(
        f"could not download {file_name} from {url} after {attempts} attempts; "
        f"last error: {last_failure.problem}"
    )


def _stream_once(
    url: str, file_name: str, dest_dir: Path, timeout: float, session: requests.Session
) -> tuple[Path, int, str]:
    """One GET into a ``.part`` temp file; returns (temp path, bytes, sha256).

    Raises _TransientFailure for retryable problems, MonthNotPublishedError /
    DownloadError for final ones. The temp file is deleted on every failure.
    """
    try:
        # identity encoding: the body is then byte-for-byte the file, so
        # Content-Length and the sha256 both describe the parquet file itself.
        response = session.get(
            url, stream=True, timeout=timeout, headers={"Accept-Encoding": "identity"}
        )
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise _TransientFailure(f"{type(exc).__name__}: {exc}") from exc
    with response:
        status = response.status_code
        if status in _NOT_PUBLISHED_STATUSES:
            raise MonthNotPublishedError(
                f"{file_name} is not published yet at {url} (HTTP {status}); "
                f"TLC publishes months with a ~2 month lag"
            )
        if status == 429 or status >= 500:
            raise _TransientFailure(f"HTTP {status}")
        if status != 200:
            raise DownloadError(
                f"could not download {file_name} from {url}: HTTP {status} "
                f"is not retryable (1 attempt)"
            )
        expected = _content_length(response)
        # Let a short body end cleanly so we can count what really arrived and say
        # "Content-Length said N, got M" (urllib3 would raise without the partial bytes).
        response.raw.enforce_content_length = False
        part = tempfile.NamedTemporaryFile(
            dir=dest_dir, prefix=f"{file_name}.", suffix=".part", delete=False
        )
        part_path = Path(part.name)
        try:
            digest = hashlib.sha256()
            received = 0
            with part:
                try:
                    for chunk in response.iter_content(_CHUNK_BYTES):
                        part.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                except (requests.ConnectionError, requests.Timeout,
                        requests.exceptions.ChunkedEncodingError) as exc:
                    if expected is not None and received < expected:
                        raise _TransientFailure(
                            f"truncated: Content-Length said {expected} bytes, got {received}",
                            truncated=True,
                        ) from exc
                    raise _TransientFailure(
                        f"connection broken after {received} bytes: {type(exc).__name__}: {exc}"
                    ) from exc
            if expected is not None and received != expected:
                raise _TransientFailure(
                    f"truncated: Content-Length said {expected} bytes, got {received}",
                    truncated=True,
                )
        except BaseException:
            part_path.unlink(missing_ok=True)
            raise
    return part_path, received, digest.hexdigest()


def _content_length(response: requests.Response) -> int | None:
    """Declared body size, or None if absent or not comparable (encoded body)."""
    value = response.headers.get("Content-Length")
    if value is None or response.headers.get("Content-Encoding", "identity") != "identity":
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _copy_local(folder: Path, file_name: str, dest_dir: Path, log: Callable[[str], None]) -> FetchedMonth:
    source_path = folder / file_name
    if not source_path.is_file():
        raise MonthNotPublishedError(
            f"{file_name} is not published yet in local folder {folder} (file missing)"
        )
    final_path = dest_dir / file_name
    if final_path.resolve() == source_path.resolve():
        raise ValueError(
            f"dest_dir {dest_dir} is the local source folder itself; fetching {file_name} "
            f"would hand out the source file for deletion. Use a separate dest_dir."
        )
    started = time.monotonic()
    digest = hashlib.sha256()
    part = tempfile.NamedTemporaryFile(dir=dest_dir, prefix=f"{file_name}.", suffix=".part", delete=False)
    part_path = Path(part.name)
    try:
        with part, source_path.open("rb") as src:
            while chunk := src.read(_CHUNK_BYTES):
                part.write(chunk)
                digest.update(chunk)
    except BaseException:
        part_path.unlink(missing_ok=True)
        raise
    num_bytes = part_path.stat().st_size
    final_path = _finalize(part_path, final_path, str(source_path))
    log(f"copied {file_name} from {folder}: {num_bytes:,} bytes in "
        f"{time.monotonic() - started:.2f}s, sha256 {digest.hexdigest()[:12]}…")
    return FetchedMonth(path=final_path, source=str(source_path), num_bytes=num_bytes,
                        sha256=digest.hexdigest())


def _finalize(part_path: Path, final_path: Path, source: str) -> Path:
    """Validate the temp file and move it to its final name; delete it if invalid."""
    try:
        _validate_parquet(part_path, final_path.name, source)
        os.replace(part_path, final_path)
    except BaseException:
        part_path.unlink(missing_ok=True)
        raise
    return final_path


def _validate_parquet(path: Path, file_name: str, source: str) -> None:
    """Raise CorruptFileError unless ``path`` is a parquet file whose footer pyarrow reads."""
    size = path.stat().st_size
    problem = None
    if size == 0:
        problem = "empty file (0 bytes)"
    else:
        with path.open("rb") as fh:
            head = fh.read(64)
            fh.seek(max(size - 4, 0))
            tail = fh.read(4)
        if not head.startswith(_PARQUET_MAGIC):
            preview = head[:15].decode("utf-8", errors="replace")
            problem = f"not a parquet file (starts with {preview!r})"
        elif size < 12 or tail != _PARQUET_MAGIC:
            problem = f"not a complete parquet file ({size} bytes, no 'PAR1' footer magic at the end)"
        else:
            try:
                with pq.ParquetFile(path) as parquet_file:
                    parquet_file.metadata  # noqa: B018 - reading the footer is the check
            except Exception as exc:  # pyarrow raises ArrowInvalid/OSError variants
                problem = f"parquet metadata unreadable: {type(exc).__name__}: {exc}"
    if problem:
        raise CorruptFileError(f"{file_name} from {source} is corrupt: {problem}")
