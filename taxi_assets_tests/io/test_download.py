"""``taxi_assets/io/download.py``: which failures are transient (:class:`DownloadError`, retried
by the step) and which permanent, status by status, exception by exception, errno by errno, and
the words of each; against an in-process HTTP server serving a tiny synthetic parquet file (the
real months and slow servers are in ``test_download_servers.py``)."""

from __future__ import annotations

import errno
import gzip
import io
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
import urllib3

from support.local import closed_port
from taxi_assets.io import download
from taxi_assets.io.download import (
    CorruptFileError,
    DataSourceError,
    DestinationError,
    DownloadError,
    DownloadTimeoutError,
    MonthNotPublishedError,
    StorageFullError,
    fetch_month,
    month_available,
)

pytestmark = pytest.mark.fast

FILE = "green_tripdata_2024-01.parquet"


def tiny_parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"PULocationID": [1, 2], "trip_distance": [1.5, 2.5]}), sink)
    return sink.getvalue()


PARQUET = tiny_parquet()


class Server:
    """``routes[path] = (status, body)``; HEAD answers ``head[path]`` when set. Options per path:
    ``gzip`` (the body compressed, whatever was asked), ``location`` (a redirect's target),
    ``hang`` (GET waits until teardown), ``short`` (announce more bytes than sent, then close)."""

    def __init__(self):
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.head: dict[str, int] = {}
        self.options: dict[str, set[str]] = {}
        self.location: dict[str, str] = {}
        self.seen: list[tuple[str, str, str | None]] = []
        self.encodings: list[str | None] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, head: bool):
                server.seen.append((self.command, self.path, self.headers.get("Range")))
                server.encodings.append(self.headers.get("Accept-Encoding"))
                options = server.options.get(self.path, set())
                if "hang" in options and not head:
                    server.release.wait(30)
                    return
                status, body = server.routes.get(self.path, (404, b"missing"))
                if head and self.path in server.head:
                    status, body = server.head[self.path], b""
                self.send_response(status)
                if self.path in server.location:
                    self.send_header("Location", server.location[self.path])
                if "gzip" in options:
                    body = gzip.compress(body)
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body) + (1000 if "short" in options else 0)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def do_GET(self):
                self._answer(head=False)

            def do_HEAD(self):
                self._answer(head=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)


@pytest.fixture
def server():
    s = Server()
    s.thread.start()
    yield s
    s.release.set()
    s.httpd.shutdown()
    s.httpd.server_close()


def fetch(server, tmp_path, status: int, body: bytes = b"x"):
    server.routes[f"/{FILE}"] = (status, body)
    return fetch_month(server.base, "green", "2024-01", tmp_path, timeout=5)


def test_200_with_parquet_is_the_file(server, tmp_path):
    logged = []
    server.routes[f"/{FILE}"] = (200, PARQUET)
    got = fetch_month(server.base + "/", "green", "2024-01", tmp_path, timeout=5, log=logged.append)
    assert got.path == tmp_path / FILE and got.path.read_bytes() == PARQUET and got.num_bytes == len(PARQUET)
    assert got.source == f"{server.base}/{FILE}" and logged[0] == f"GET {server.base}/{FILE}"
    assert logged[1].startswith(f"downloaded {FILE}: {len(PARQUET):,} bytes in ")
    assert server.seen == [("GET", f"/{FILE}", None)] and server.encodings == ["identity"]  # the bytes as stored


def test_a_compressed_answer_is_decoded_before_it_is_judged(server, tmp_path):
    server.options[f"/{FILE}"] = {"gzip"}  # a server that compresses anyway
    assert fetch(server, tmp_path, 200, PARQUET).path.read_bytes() == PARQUET


def test_a_body_cut_short_is_transient_and_says_how_far_it_got(server, tmp_path):
    server.options[f"/{FILE}"] = {"short"}
    with pytest.raises(DownloadError) as caught:
        fetch(server, tmp_path, 200, PARQUET)
    assert type(caught.value) is DownloadError and list(tmp_path.iterdir()) == []
    size = len(PARQUET)
    assert str(caught.value) == (
        f"could not download {FILE} from {server.base}/{FILE}: connection broken after {size:,} of {size + 1000:,} bytes (ProtocolError)"
    )


@pytest.fixture
def silent():
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def test_a_server_that_never_answers_is_a_timeout(silent, tmp_path):
    url = f"http://127.0.0.1:{silent}"
    with pytest.raises(DownloadTimeoutError) as caught:
        fetch_month(url, "green", "2024-01", tmp_path, timeout=0.3)
    assert str(caught.value) == f"could not download {FILE} from {url}/{FILE}: timed out: no response within 0.3 s"
    with pytest.raises(DownloadTimeoutError) as caught:
        month_available(url, "green", "2024-01", timeout=0.3)
    assert str(caught.value) == f"could not probe {FILE} at {url}/{FILE}: timed out: no response within 0.3 s"


def test_a_failed_write_is_permanent_and_names_file_and_folder(server, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    server.routes[f"/{FILE}"] = (200, PARQUET)
    monkeypatch.setattr(download.tempfile, "NamedTemporaryFile", full)
    with pytest.raises(StorageFullError) as caught:
        fetch_month(server.base, "green", "2024-01", tmp_path, timeout=5)
    assert str(caught.value).startswith(f"cannot write {FILE} into {tmp_path}: No space left on device (ENOSPC)")


@pytest.mark.parametrize("status", [403, 404])
def test_not_published_is_permanent(server, tmp_path, status):
    with pytest.raises(MonthNotPublishedError) as caught:
        fetch(server, tmp_path, status)
    assert str(caught.value) == (
        f"{FILE} is not published yet at {server.base}/{FILE} (HTTP {status}); TLC publishes months with a ~2 month lag"
    )
    assert not isinstance(caught.value, DownloadError) and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("status", [429, 500, 502, 503, 599])
def test_5xx_and_429_are_transient(server, tmp_path, status):
    with pytest.raises(DownloadError) as caught:
        fetch(server, tmp_path, status)
    assert type(caught.value) is DownloadError
    assert str(caught.value) == f"could not download {FILE} from {server.base}/{FILE}: HTTP {status}"


@pytest.mark.parametrize("status", [201, 204, 301, 400, 401, 410, 428, 430, 499])
def test_other_statuses_are_permanent(server, tmp_path, status):
    with pytest.raises(DataSourceError) as caught:
        fetch(server, tmp_path, status)
    assert type(caught.value) is DataSourceError
    assert str(caught.value) == f"could not download {FILE} from {server.base}/{FILE}: HTTP {status} (not retried)"


def test_a_200_that_is_not_parquet_is_corrupt_and_permanent(server, tmp_path):
    with pytest.raises(CorruptFileError) as caught:
        fetch(server, tmp_path, 200, b"<html>moved</html>")
    assert not isinstance(caught.value, DownloadError) and "looks like HTML" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_refused_connection_is_transient(tmp_path):
    port = closed_port()
    with pytest.raises(DownloadError) as caught:
        fetch_month(f"http://127.0.0.1:{port}", "green", "2024-01", tmp_path, timeout=5)
    assert type(caught.value) is DownloadError
    assert str(caught.value) == f"could not download {FILE} from http://127.0.0.1:{port}/{FILE} (ConnectionError: Connection refused)"


# --- month_available -------------------------------------------------------------------------------


def test_month_available_reads_the_status_of_a_head(server):
    path = f"/{FILE}"
    server.routes[path] = (200, PARQUET)
    assert month_available(server.base, "green", "2024-01") is True
    assert server.seen == [("HEAD", path, None)]
    server.head[path] = 206
    assert month_available(server.base, "green", "2024-01") is True
    for status in (403, 404):
        server.head[path] = status
        assert month_available(server.base, "green", "2024-01") is False
    for status in (500, 429, 401, 204):
        server.head[path] = status
        with pytest.raises(DownloadError) as caught:
            month_available(server.base, "green", "2024-01")
        assert str(caught.value) == f"could not probe {FILE} at {server.base}{path}: unexpected HTTP {status} to HEAD"


def test_month_available_asks_for_four_bytes_when_head_is_not_allowed(server):
    path = f"/{FILE}"
    server.head[path] = 405
    server.routes[path] = (206, b"PAR1")
    assert month_available(server.base, "green", "2024-01") is True
    assert server.seen == [("HEAD", path, None), ("GET", path, "bytes=0-3")]
    server.routes[path] = (404, b"")
    assert month_available(server.base, "green", "2024-01") is False
    server.routes[path] = (503, b"")
    with pytest.raises(DownloadError) as caught:
        month_available(server.base, "green", "2024-01")
    assert str(caught.value).endswith(": unexpected HTTP 503 to GET")


def test_month_available_follows_redirects(server):
    server.head[f"/{FILE}"] = 302
    server.location[f"/{FILE}"] = "/elsewhere"
    server.routes["/elsewhere"] = (200, b"")
    assert month_available(server.base, "green", "2024-01") is True
    assert ("HEAD", "/elsewhere", None) in server.seen


def test_month_available_times_out_on_a_ranged_get_that_hangs(server):
    path = f"/{FILE}"
    server.head[path] = 405
    server.options[path] = {"hang"}
    with pytest.raises(DownloadTimeoutError) as caught:
        month_available(server.base, "green", "2024-01", timeout=0.3)
    assert str(caught.value) == f"could not probe {FILE} at {server.base}{path}: timed out: no response within 0.3 s"


def test_month_available_in_a_local_folder(tmp_path):
    assert month_available(str(tmp_path), "green", "2024-01") is False
    (tmp_path / FILE).write_bytes(PARQUET)
    assert month_available(str(tmp_path), "green", "2024-01") is True
    assert month_available(tmp_path.as_uri(), "green", "2024-02") is False


def test_month_available_on_a_refused_connection_is_transient():
    port = closed_port()
    with pytest.raises(DownloadError) as caught:
        month_available(f"http://127.0.0.1:{port}", "green", "2024-01", timeout=3)
    assert str(caught.value) == f"could not probe {FILE} at http://127.0.0.1:{port}/{FILE} (ConnectionError: Connection refused)"


# --- exceptions and errnos -------------------------------------------------------------------------


def test_request_errors_timeouts_and_connections_are_transient_the_rest_permanent():
    what = "could not download x"
    cases = [
        (requests.ConnectTimeout(), DownloadTimeoutError, "could not download x: timed out: no connection within 2.5 s"),
        (requests.ReadTimeout(), DownloadTimeoutError, "could not download x: timed out: no response within 2.5 s"),
        (requests.Timeout(), DownloadTimeoutError, "could not download x: timed out: no response within 2.5 s"),
        (requests.ConnectionError(), DownloadError, "could not download x (ConnectionError)"),
        (requests.exceptions.ChunkedEncodingError(), DataSourceError, "could not download x (ChunkedEncodingError; not retried)"),
        (requests.exceptions.InvalidURL(), DataSourceError, "could not download x (InvalidURL; not retried)"),
    ]
    for exc, kind, message in cases:
        error = download._request_error(exc, what, 2.5)
        assert (type(error), str(error)) == (kind, message)


class Raw:
    def __init__(self, steps):
        self.steps = list(steps)

    def read1(self, size, decode_content=True):
        assert size == 1 << 20
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


def response(steps, length: str | None = "300000", encoding: str | None = None):
    headers = {k: v for k, v in (("Content-Length", length), ("Content-Encoding", encoding)) if v is not None}
    return type("Response", (), {"headers": headers, "raw": Raw(steps)})()


def chunks(resp, timeout=30.0):
    return list(download._body_chunks(resp, "could not download x", timeout))


def test_body_errors_stalls_and_breaks_are_transient_and_say_how_far_they_got():
    assert chunks(response([b"ab", b"cd", b""])) == [b"ab", b"cd"]
    read_timeout = urllib3.exceptions.ReadTimeoutError(None, "url", "read timed out")
    with pytest.raises(DownloadTimeoutError) as caught:
        chunks(response([b"ab", b"c", read_timeout]), timeout=7)
    assert str(caught.value) == "could not download x: timed out: no data for 7 s after 3 of 300,000 bytes"
    with pytest.raises(DownloadError) as caught:
        chunks(response([b"abcd", urllib3.exceptions.ProtocolError("cut")], length=None))
    assert type(caught.value) is DownloadError
    assert str(caught.value) == "could not download x: connection broken after 4 bytes (ProtocolError)"
    with pytest.raises(DownloadError) as caught:
        chunks(response([ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")], encoding="gzip"))
    assert str(caught.value) == "could not download x: connection broken after 0 bytes (ConnectionResetError: Connection reset by peer)"
    with pytest.raises(DownloadError) as caught:
        chunks(response([b"a", OSError("x")], length="12abc", encoding="identity"))
    assert str(caught.value) == "could not download x: connection broken after 1 bytes (OSError)"


class Clock:
    """``time.monotonic`` for the body reader: each call returns the next reading."""

    def __init__(self, *readings):
        self.readings = list(readings)

    def __call__(self):
        return self.readings.pop(0)


KIB = 1024


def test_the_progress_window_counts_every_byte_since_it_opened(monkeypatch):
    # window opens at 0; 40 KiB at 0.5 s; 40 KiB at 1.0 s: 80 KiB in the 1 s window: enough
    monkeypatch.setattr(download.time, "monotonic", Clock(0.0, 0.5, 1.0, 1.0, 1.5))
    assert len(chunks(response([b"x" * 40 * KIB, b"x" * 40 * KIB, b""]), timeout=1)) == 2
    # exactly one byte short of 64 KiB when the window closes (at exactly the timeout): a stall
    monkeypatch.setattr(download.time, "monotonic", Clock(0.0, 1.0))
    with pytest.raises(DownloadTimeoutError) as caught:
        chunks(response([b"x" * (64 * KIB - 1), b""]), timeout=1)
    assert str(caught.value) == "could not download x: timed out: under 64 KiB in 1 s after 65,535 of 300,000 bytes"
    # the second window starts empty again
    monkeypatch.setattr(download.time, "monotonic", Clock(0.0, 1.0, 1.0, 2.0))
    with pytest.raises(DownloadTimeoutError) as caught:
        chunks(response([b"x" * 64 * KIB, b"x" * (64 * KIB - 1), b""]), timeout=1)
    assert str(caught.value).endswith(f"after {128 * KIB - 1:,} of 300,000 bytes")


def test_a_trickling_body_is_a_timeout_and_a_steady_one_is_not():
    small = b"x" * 1000
    with pytest.raises(DownloadTimeoutError) as caught:
        chunks(response([small, small, b""]), timeout=0)
    assert str(caught.value) == "could not download x: timed out: under 64 KiB in 0 s after 1,000 of 300,000 bytes"
    big = b"x" * (64 * 1024)
    assert len(b"".join(chunks(response([big, big, b""]), timeout=0))) == 2 * len(big)  # 64 KiB per window is enough
    assert len(chunks(response([small] * 5 + [b""]), timeout=60)) == 5  # a window not yet over


@pytest.mark.parametrize(
    "code, kind",
    [(errno.ENOSPC, StorageFullError), (errno.EDQUOT, StorageFullError), (errno.EFBIG, StorageFullError),
     (errno.EROFS, DestinationError), (errno.EACCES, DestinationError)],
)  # fmt: skip
def test_destination_errors_are_permanent_and_a_full_disk_says_so(tmp_path, code, kind):
    error = download._destination_error(OSError(code, "reason text"), FILE, tmp_path)
    assert type(error) is kind and not isinstance(error, DownloadError)
    assert str(error) == (
        f"cannot write {FILE} into {tmp_path}: reason text ({errno.errorcode[code]}); the partial file was removed and nothing was replaced"
    )


def test_a_destination_error_with_an_unknown_errno_names_its_number(tmp_path):
    assert str(download._destination_error(OSError(9999, "odd"), FILE, tmp_path)).startswith(
        f"cannot write {FILE} into {tmp_path}: odd (9999); "
    )


def test_a_destination_error_without_a_reason_names_the_os_reason_or_the_class(tmp_path):
    assert str(download._destination_error(OSError(errno.ENOSPC, ""), FILE, tmp_path)).startswith(
        f"cannot write {FILE} into {tmp_path}: No space left on device (ENOSPC); "
    )
    assert str(download._destination_error(PermissionError(), FILE, tmp_path)).startswith(
        f"cannot write {FILE} into {tmp_path}: write failed (PermissionError); "
    )
