"""Fetch one month of NYC TLC trip data (one parquet file) from a data source.

A *source* is either the TLC CloudFront base URL (or any mirror serving the same
file names over http(s)) or a local folder holding ``<taxi>_tripdata_YYYY-MM.parquet``
files (a plain path or a ``file://`` URL). Both kinds end the same way: a validated
parquet file at ``dest_dir/<file name>`` that the caller owns and may delete.

Retry policy (HTTP only)
    A month is tried at most ``retries + 1`` times. Transient failures are retried
    with exponential backoff (``backoff_seconds * 2**n`` before retry ``n``, n = 0, 1,
    ...): HTTP 5xx and 429, connection errors, timeouts, and bodies shorter than
    their Content-Length. Exhausted retries raise :class:`DownloadError`
    (:class:`DownloadTimeoutError` when the last attempt timed out): the transient
    kind, which the ``raw_trips`` asset hands to Dagster's step retries. 403/404 are never retried: TLC answers 403 for months it
    has not published yet, so they raise :class:`MonthNotPublishedError` at once,
    which a schedule/sensor can treat as "try again later" rather than as a failure.
    Any other status (401, 400, ...) is a configuration problem and is not retried.
    A body that arrives complete but is not parquet (an HTML error page served
    with 200, an empty file) is not retried either: a server that does this will
    most likely do it again, so :class:`CorruptFileError` is raised straight away.

Timeouts
    ``timeout`` bounds every attempt, not only each socket operation. requests gets
    ``timeout=(timeout, timeout)`` (connect, and each read), and a watchdog thread
    shuts the attempt's socket down when it makes no progress for ``timeout``
    seconds: the response headers must arrive within ``timeout`` of the start, and
    after them every ``_PROGRESS_BYTES`` (64 KiB) of body within ``timeout`` of the
    previous ones. So a server that sends headers (and maybe some bytes) and then
    hangs, or one that accepts the connection and never answers, fails the attempt
    after about ``timeout`` seconds, as does one that trickles a byte at a time (which
    would keep every single read alive). Each is a timeout, retried like the other
    transient failures. Worst case before :class:`DownloadTimeoutError` is raised:
    ``(retries + 1) * timeout + backoff_seconds * (2**retries - 1)`` (plus, for a body
    that flows and then stops, the time it flowed). A caller-supplied ``session``
    keeps its own adapters: the watchdog then guards the body only.

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

    Symbolic links: the month's file may be a link to a file *within* the source
    folder (``green_tripdata_2024-01.parquet -> archive/2024-01.parquet``), and the
    folder itself may be reached through links. A link that resolves outside the
    folder (``-> /etc/passwd``, ``-> ../other.parquet``) is refused with a
    :class:`DataSourceError` naming the file, before anything is opened; so is anything
    that is not a regular file (a FIFO, a device).

Destination
    Any failure to write into ``dest_dir`` (create it, create the temp file, write,
    rename) is one permanent :class:`DestinationError` naming the folder, the file and
    the OS reason: :class:`StorageFullError` for a full disk, an exhausted quota or a
    file-size limit (ENOSPC, EDQUOT, EFBIG), ``DestinationError`` itself otherwise
    (EROFS, EACCES, ...). It is not retried (another attempt would write into the same
    full disk) and the temp file is removed.

Errors never carry the file's bytes
    A file that is not parquet is described by what it lacks, its size and a
    classification (``looks like HTML``, text, XML, JSON, gzip, zip, binary), never by
    its content; pyarrow's reason for an unreadable footer, and requests/urllib3
    exception texts (which can quote the server's bytes, e.g. ``BadStatusLine('...')``
    or ``InvalidChunkLength(got length b'...')``), are reduced to their class and a
    generic reason (with the OS's own ``strerror`` where there is one).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import socket
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import pyarrow.parquet as pq
import requests
import urllib3
from requests.adapters import HTTPAdapter

TLC_BASE_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data"
TAXI_TYPES = ("green", "yellow")

_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_PARQUET_MAGIC = b"PAR1"
_CHUNK_BYTES = 1 << 20
# The stall watchdog's unit of progress: fewer than this many body bytes in ``timeout``
# seconds is a stalled transfer (at the default 60 s, a link slower than ~1 KB/s).
_PROGRESS_BYTES = 64 * 1024
_FULL_ERRNOS = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG) if code)
_NOT_PUBLISHED_STATUSES = (403, 404)


class DataSourceError(Exception):
    """Base class for every failure to obtain a month of trip data."""


class MonthNotPublishedError(DataSourceError):
    """The month's file does not exist at the source (yet): HTTP 403/404 or missing locally."""


class DownloadError(DataSourceError):
    """The file could not be transferred: retries exhausted, or a non-retryable HTTP status."""


class DownloadTimeoutError(DownloadError):
    """The source stopped answering (no connection, no response, or a stalled body) on the
    last attempt: transient, like every :class:`DownloadError` whose retries ran out."""


class DestinationError(DataSourceError):
    """``dest_dir`` cannot take the file (read-only, no permission, ...): permanent, not retried."""


class StorageFullError(DestinationError):
    """``dest_dir``'s file system is full, or a quota or file-size limit is reached."""


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
    Raises MonthNotPublishedError, DownloadError (DownloadTimeoutError),
    CorruptFileError or DestinationError (StorageFullError), all DataSourceError;
    see the module docstring for the policy.
    """
    file_name = month_file_name(taxi_type, month)
    if retries < 0:
        raise ValueError(f"retries must be >= 0; got {retries}")
    dest_dir = Path(dest_dir)
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _destination_error(exc, file_name, dest_dir) from None
    log = log or (lambda message: None)
    base_url, folder = _parse_source(source)
    if folder is not None:
        return _copy_local(folder, file_name, dest_dir, log)
    url = f"{base_url}/{file_name}"
    own_session = session is None
    session = session or _session()
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
    DownloadError (DownloadTimeoutError when the source does not answer within
    ``timeout``) so a sensor surfaces an outage instead of silently waiting. A local
    file that is a link leaving the folder raises DataSourceError.
    """
    file_name = month_file_name(taxi_type, month)
    base_url, folder = _parse_source(source)
    if folder is not None:
        return _local_file(folder, file_name) is not None
    url = f"{base_url}/{file_name}"
    own_session = session is None
    session = session or _session()
    try:
        with _Watchdog(timeout) as watchdog:
            try:
                response = watchdog.request(session, "HEAD", url, allow_redirects=True)
                response.close()
                if response.status_code == 405:
                    response = watchdog.request(session, "GET", url, headers={"Range": "bytes=0-3"}, stream=True)
                    response.close()
            except requests.RequestException as exc:
                if watchdog.fired or _is_timeout(exc):
                    raise DownloadTimeoutError(
                        f"could not probe {file_name} at {url}: {_timeout_problem(exc, timeout, None, None)}"
                    ) from None
                raise DownloadError(f"could not probe {file_name} at {url}: {_request_problem(exc)}") from None
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


def _session() -> requests.Session:
    """A session whose connections report their socket to the running attempt's watchdog."""
    session = requests.Session()
    adapter = _WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


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

    def __init__(self, problem: str, truncated: bool = False, timed_out: bool = False):
        super().__init__(problem)
        self.problem = problem
        self.truncated = truncated
        self.timed_out = timed_out


# --------------------------------------------------------------------------- the stall watchdog

_ATTEMPT = threading.local()  # .watchdog: the watchdog of the attempt running in this thread


class _Watchdog:
    """Shuts an HTTP attempt's socket down when it makes no progress for ``seconds``.

    Progress is the start, the response headers, and each ``_PROGRESS_BYTES`` of body (the
    caller calls :meth:`progress`). Shutting the socket down from this thread ends the read
    blocked in the attempt's thread at once (EOF or a connection error), which then checks
    :attr:`fired` to report a timeout whatever exception surfaced. Use as a context manager.
    """

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._last = time.monotonic()
        self._done = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="taxi-download-watchdog", daemon=True)

    def __enter__(self) -> _Watchdog:
        self._last = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._cond:
            self._done = True
            self._cond.notify()
        self._thread.join()

    def progress(self) -> None:
        self._last = time.monotonic()

    def watch(self, sock: socket.socket | None) -> None:
        """Guard ``sock`` (shut it down at once if the watchdog already fired)."""
        if sock is None:
            return
        with self._cond:
            if sock not in self._sockets:
                self._sockets.append(sock)
            if self.fired:
                _shutdown(sock)

    def request(self, session: requests.Session, method: str, url: str, **kwargs) -> requests.Response:
        """``session.request`` with this watchdog guarding the connection from the start (for
        sessions from :func:`_session`; other sessions from the response headers on)."""
        _ATTEMPT.watchdog = self
        try:
            response = session.request(method, url, timeout=(self.seconds, self.seconds), **kwargs)
        finally:
            _ATTEMPT.watchdog = None
        connection = getattr(response.raw, "connection", None)  # a caller's own session
        self.watch(getattr(connection, "sock", None))
        self.progress()
        return response

    def _run(self) -> None:
        with self._cond:
            while not self._done:
                remaining = self._last + self.seconds - time.monotonic()
                if remaining <= 0:
                    self.fired = True
                    for sock in self._sockets:
                        _shutdown(sock)
                    return
                self._cond.wait(remaining)


def _shutdown(sock: socket.socket) -> None:
    try:  # the plain socket's shutdown, also for TLS sockets: no TLS close-notify dance
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _announce_socket(sock) -> None:
    watchdog = getattr(_ATTEMPT, "watchdog", None)
    if watchdog is not None:
        watchdog.watch(sock)


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def getresponse(self):  # the request is sent: from here on the server must answer
        _announce_socket(self.sock)
        return super().getresponse()


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def getresponse(self):
        _announce_socket(self.sock)
        return super().getresponse()


class _WatchedHTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter on connections that report their socket to the running watchdog, so
    it can end an attempt stuck before the response headers as well as in the body."""

    _POOLS = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is urllib3.ProxyManager:  # an HTTP(S) proxy; SOCKS keeps its own pools
            manager.pool_classes_by_scheme = self._POOLS
        return manager


# --------------------------------------------------------------------------- error texts


def _causes(exc: BaseException):
    """``exc`` and everything behind it: causes, contexts, wrapped ``args`` and ``reason``."""
    seen, stack = set(), [exc]
    while stack:
        current = stack.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        stack.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))


def _is_timeout(exc: BaseException) -> bool:
    # urllib3's NewConnectionError (connection refused, ...) subclasses its ConnectTimeoutError
    return any(
        isinstance(e, (requests.Timeout, urllib3.exceptions.TimeoutError, socket.timeout))
        and not isinstance(e, urllib3.exceptions.NewConnectionError)
        for e in _causes(exc)
    )


def _timeout_problem(exc: BaseException | None, seconds: float, received: int | None, expected: int | None) -> str:
    if received is None:
        if exc is not None and any(
            isinstance(e, (requests.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError))
            and not isinstance(e, urllib3.exceptions.NewConnectionError)
            for e in _causes(exc)
        ):
            return f"timed out: no connection within {seconds:g} s"
        return f"timed out: no response within {seconds:g} s"
    total = f" of {expected:,}" if expected is not None else ""
    return f"timed out: no data for {seconds:g} s after {received:,}{total} bytes"


def _request_problem(exc: BaseException) -> str:
    """``<class>: <generic reason>`` for a requests failure, without the exception's text,
    which may quote what the server sent (a non-HTTP answer, a bad chunk header)."""
    causes = list(_causes(exc))

    def first(*kinds):
        return next((e for e in causes if isinstance(e, kinds)), None)

    if (error := first(socket.gaierror)) is not None:
        reason = f"name resolution failed ({error.strerror})" if error.strerror else "name resolution failed"
    elif first(requests.exceptions.SSLError, urllib3.exceptions.SSLError) is not None:
        reason = "TLS handshake or certificate failed"
    elif first(urllib3.exceptions.InvalidChunkLength, requests.exceptions.ChunkedEncodingError) is not None:
        reason = "invalid chunked encoding"
    elif first(http.client.RemoteDisconnected) is not None:
        reason = "the server closed the connection without answering"
    elif first(http.client.HTTPException, urllib3.exceptions.HeaderParsingError) is not None:
        reason = "the answer is not HTTP"
    elif (error := next((e for e in causes if isinstance(e, OSError) and e.strerror), None)) is not None:
        reason = error.strerror
    elif first(requests.exceptions.InvalidURL) is not None:
        reason = "invalid URL"
    else:
        reason = "failed"
    return f"{type(exc).__name__}: {reason}"


def _destination_error(exc: OSError, file_name: str, dest_dir: Path) -> DestinationError:
    """The permanent error for a failed write into ``dest_dir`` (full disk: StorageFullError)."""
    code = errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno else type(exc).__name__
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else "write failed")
    kind = StorageFullError if exc.errno in _FULL_ERRNOS else DestinationError
    return kind(
        f"cannot write {file_name} into {dest_dir}: {reason} ({code}); "
        "the partial file was removed and nothing was replaced"
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


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
        final_path = _finalize(part_path, dest_dir / file_name, url, dest_dir)
        seconds = time.monotonic() - started
        log(f"downloaded {file_name}: {num_bytes:,} bytes in {seconds:.2f}s "
            f"({num_bytes / 1e6 / max(seconds, 1e-9):.1f} MB/s), sha256 {sha256[:12]}…")
        return FetchedMonth(path=final_path, source=url, num_bytes=num_bytes, sha256=sha256)

    if last_failure.truncated:
        raise CorruptFileError(
            f"{file_name} from {url} is corrupt: {last_failure.problem} "
            f"(on the last of {_plural(attempts, 'attempt')})"
        )
    kind = DownloadTimeoutError if last_failure.timed_out else DownloadError
    raise kind(
        f"could not download {file_name} from {url} after {_plural(attempts, 'attempt')}; "
        f"last error: {last_failure.problem}"
    )


def _stream_once(
    url: str, file_name: str, dest_dir: Path, timeout: float, session: requests.Session
) -> tuple[Path, int, str]:
    """One GET into a ``.part`` temp file; returns (temp path, bytes, sha256).

    Raises _TransientFailure for retryable problems, MonthNotPublishedError /
    DownloadError / DestinationError for final ones. The temp file is deleted on every failure.
    """
    with _Watchdog(timeout) as watchdog:
        try:
            # identity encoding: the body is then byte-for-byte the file, so
            # Content-Length and the sha256 both describe the parquet file itself.
            response = watchdog.request(session, "GET", url, stream=True, headers={"Accept-Encoding": "identity"})
        except requests.RequestException as exc:
            if watchdog.fired or _is_timeout(exc):
                raise _TransientFailure(_timeout_problem(exc, timeout, None, None), timed_out=True) from None
            raise _TransientFailure(_request_problem(exc)) from None
        with response:
            return _receive(response, url, file_name, dest_dir, timeout, watchdog)


def _receive(
    response: requests.Response, url: str, file_name: str, dest_dir: Path, timeout: float, watchdog: _Watchdog
) -> tuple[Path, int, str]:
    """The body of one 200 answer into a ``.part`` file (the rest of :func:`_stream_once`)."""
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
    part, part_path = _temp_file(file_name, dest_dir)
    try:
        digest = hashlib.sha256()
        received = 0
        try:
            with part:
                try:
                    for chunk in response.iter_content(_PROGRESS_BYTES):
                        watchdog.progress()
                        _write(part, chunk, file_name, dest_dir)
                        digest.update(chunk)
                        received += len(chunk)
                except (requests.ConnectionError, requests.Timeout,
                        requests.exceptions.ChunkedEncodingError) as exc:
                    if watchdog.fired or _is_timeout(exc):
                        raise _TransientFailure(
                            _timeout_problem(exc, timeout, received, expected), timed_out=True
                        ) from None
                    if expected is not None and received < expected:
                        raise _TransientFailure(
                            f"truncated: Content-Length said {expected} bytes, got {received}",
                            truncated=True,
                        ) from None
                    raise _TransientFailure(
                        f"connection broken after {received} bytes: {_request_problem(exc)}"
                    ) from None
        except OSError as exc:  # closing (flushing) the temp file
            raise _destination_error(exc, file_name, dest_dir) from None
        if watchdog.fired and (expected is None or received != expected):
            # the watchdog's shutdown ends the body like a server closing early
            raise _TransientFailure(_timeout_problem(None, timeout, received, expected), timed_out=True)
        if expected is not None and received != expected:
            raise _TransientFailure(
                f"truncated: Content-Length said {expected} bytes, got {received}",
                truncated=True,
            )
    except BaseException:
        part_path.unlink(missing_ok=True)
        raise
    return part_path, received, digest.hexdigest()


def _temp_file(file_name: str, dest_dir: Path):
    """``(open file, path)`` of a new ``.part`` file in ``dest_dir`` (DestinationError if it cannot be made)."""
    try:
        part = tempfile.NamedTemporaryFile(dir=dest_dir, prefix=f"{file_name}.", suffix=".part", delete=False)
    except OSError as exc:
        raise _destination_error(exc, file_name, dest_dir) from None
    return part, Path(part.name)


def _write(part, chunk: bytes, file_name: str, dest_dir: Path) -> None:
    try:
        part.write(chunk)
    except OSError as exc:
        raise _destination_error(exc, file_name, dest_dir) from None


def _content_length(response: requests.Response) -> int | None:
    """Declared body size, or None if absent or not comparable (encoded body)."""
    value = response.headers.get("Content-Length")
    if value is None or response.headers.get("Content-Encoding", "identity") != "identity":
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _local_file(folder: Path, file_name: str) -> Path | None:
    """The month's file in ``folder`` with links resolved, or None when it is missing.

    Raises DataSourceError when it is a link leaving the folder, or not a regular file.
    """
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
        raise DataSourceError(
            f"{file_name} in the local source folder {folder} is not a regular file; refusing to read it"
        )
    return target


def _copy_local(folder: Path, file_name: str, dest_dir: Path, log: Callable[[str], None]) -> FetchedMonth:
    source_path = folder / file_name
    target = _local_file(folder, file_name)
    if target is None:
        raise MonthNotPublishedError(
            f"{file_name} is not published yet in local folder {folder} (file missing)"
        )
    final_path = dest_dir / file_name
    if final_path.resolve() == target:
        raise ValueError(
            f"dest_dir {dest_dir} is the local source folder itself; fetching {file_name} "
            f"would hand out the source file for deletion. Use a separate dest_dir."
        )
    started = time.monotonic()
    try:  # the checked target itself, no link followed, and still a regular file (fstat below)
        src = open(os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb")
    except OSError as exc:
        raise DataSourceError(f"cannot read {file_name} in the local source folder {folder}: {exc.strerror}") from None
    digest = hashlib.sha256()
    with src:
        if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
            raise DataSourceError(
                f"{file_name} in the local source folder {folder} is not a regular file; refusing to read it"
            )
        part, part_path = _temp_file(file_name, dest_dir)
        try:
            try:
                with part:
                    while True:
                        try:
                            chunk = src.read(_CHUNK_BYTES)
                        except OSError as exc:
                            raise DataSourceError(
                                f"cannot read {file_name} in the local source folder {folder}: {exc.strerror}"
                            ) from None
                        if not chunk:
                            break
                        _write(part, chunk, file_name, dest_dir)
                        digest.update(chunk)
            except OSError as exc:  # closing (flushing) the temp file
                raise _destination_error(exc, file_name, dest_dir) from None
        except BaseException:
            part_path.unlink(missing_ok=True)
            raise
    num_bytes = part_path.stat().st_size
    final_path = _finalize(part_path, final_path, str(source_path), dest_dir)
    log(f"copied {file_name} from {folder}: {num_bytes:,} bytes in "
        f"{time.monotonic() - started:.2f}s, sha256 {digest.hexdigest()[:12]}…")
    return FetchedMonth(path=final_path, source=str(source_path), num_bytes=num_bytes,
                        sha256=digest.hexdigest())


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
    """Raise CorruptFileError unless ``path`` is a parquet file whose footer pyarrow reads.

    The message says what is wrong and never quotes the file (see the module docstring).
    """
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
