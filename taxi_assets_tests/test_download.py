"""Tests for taxi_assets.io.download against a real local HTTP server and the shared TLC files.

The server (ThreadingHTTPServer on 127.0.0.1, ephemeral port) routes by the first path
segment so each failure mode the downloader must survive has its own URL prefix:

    /tlc/<file>            real shared file; 2024-05 -> 403 (TLC's "not yet"), others missing -> 404
    /flaky/<file>          500 on the first request for a file, then the real file
    /always/<code>/<file>  always answers <code> (500, 429, 401, ...)
    /truncated/<file>      Content-Length of the whole file, sends half, closes the connection
    /html/<file>           200 with an HTML page
    /empty/<file>          200 with an empty body
    /slow/<file>           sleeps longer than the client timeout before answering
    /nohead/<file>         HEAD -> 405; GET with Range -> 206 (the month_available fallback)
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from taxi_assets.io.download import (
    TLC_BASE_URL,
    CorruptFileError,
    DataSourceError,
    DownloadError,
    FetchedMonth,
    MonthNotPublishedError,
    fetch_month,
    month_available,
    month_file_name,
)
from taxi_assets_tests.helpers import data_dir

DATA_DIR = data_dir()
JAN = "green_tripdata_2024-01.parquet"
DEC = "green_tripdata_2023-12.parquet"
FAST = dict(backoff_seconds=0.01)  # keep retries quick


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


class TLCServer:
    """A ThreadingHTTPServer with the routes above, recording every request it sees."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self._lock = threading.Lock()
        self._seen_flaky: set[str] = set()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def count(self, path: str, method: str = "GET") -> int:
        return sum(1 for m, p, _ in self.requests if p == path and m == method)

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_HEAD(self):
                self._route(head=True)

            def do_GET(self):
                self._route(head=False)

            def _send(self, status, body=b"", content_type="application/octet-stream", head=False):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _real_file(self, name, head):
                if name == "green_tripdata_2024-05.parquet":
                    return self._send(403, b"<Error>AccessDenied</Error>", "application/xml", head)
                path = DATA_DIR / name
                if not path.is_file():
                    return self._send(404, b"not found", "text/plain", head)
                self._send(200, path.read_bytes(), head=head)

            def _route(self, head):
                with server._lock:
                    server.requests.append((self.command, self.path, self.headers.get("Range")))
                parts = self.path.strip("/").split("/")
                mode, name = parts[0], parts[-1]
                if mode == "tlc":
                    self._real_file(name, head)
                elif mode == "flaky":
                    with server._lock:
                        first = self.path not in server._seen_flaky
                        server._seen_flaky.add(self.path)
                    if first:
                        self._send(500, b"internal error", "text/plain", head)
                    else:
                        self._real_file(name, head)
                elif mode == "always":
                    self._send(int(parts[1]), b"nope", "text/plain", head)
                elif mode == "truncated":
                    body = (DATA_DIR / name).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                elif mode == "html":
                    page = b"<!DOCTYPE html><html><body>Service moved</body></html>"
                    self._send(200, page, "text/html", head)
                elif mode == "empty":
                    self._send(200, b"", head=head)
                elif mode == "slow":
                    time.sleep(1.0)
                    self._real_file(name, head)
                elif mode == "nohead":
                    if head:
                        return self._send(405, b"", "text/plain", head=True)
                    path = DATA_DIR / name
                    if not path.is_file():
                        return self._send(404, b"not found", "text/plain")
                    assert self.headers.get("Range") == "bytes=0-3"
                    self._send(206, path.read_bytes()[:4])
                else:
                    self._send(400, b"unknown route", "text/plain", head)

        return Handler


@pytest.fixture
def server():
    srv = TLCServer()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()
        srv.thread.join(timeout=5)


@pytest.fixture
def dest_with_good_dec(tmp_path):
    """dest_dir already holding a good file for another month (Dec 2023); must survive failures."""
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / DEC).write_bytes((DATA_DIR / DEC).read_bytes())
    return dest


def assert_only_good_dec_left(dest: Path) -> None:
    assert files_in(dest) == [DEC]  # no *.part, no partial month file
    assert sha256_of(dest / DEC) == sha256_of(DATA_DIR / DEC)


# ----------------------------------------------------------------------------- names


def test_month_file_name_and_validation():
    assert month_file_name("green", "2024-01") == JAN
    assert month_file_name("yellow", "2023-12") == "yellow_tripdata_2023-12.parquet"
    assert TLC_BASE_URL == "https://d37ci6vzurychx.cloudfront.net/trip-data"
    for bad in ("2024-1", "2024-13", "24-01", "2024/01", "2024-00"):
        with pytest.raises(ValueError) as err:
            month_file_name("green", bad)
        assert str(err.value) == f"month must be 'YYYY-MM' (e.g. '2024-01'); got {bad!r}"
    with pytest.raises(ValueError) as err:
        month_file_name("fhv", "2024-01")
    assert str(err.value) == "taxi_type must be one of green, yellow; got 'fhv'"


def test_fetch_month_rejects_bad_month_before_any_request(server, tmp_path):
    with pytest.raises(ValueError, match="month must be 'YYYY-MM'"):
        fetch_month(f"{server.base}/tlc", "green", "2024-1", tmp_path)
    assert server.requests == []


# ----------------------------------------------------------------------------- HTTP success


def test_http_download_matches_shared_file(server, tmp_path):
    messages: list[str] = []
    dest = tmp_path / "new" / "dir"  # created on demand
    got = fetch_month(f"{server.base}/tlc/", "green", "2024-01", dest, log=messages.append, **FAST)

    shared = DATA_DIR / JAN
    url = f"{server.base}/tlc/{JAN}"
    assert got == FetchedMonth(
        path=dest / JAN, source=url, num_bytes=shared.stat().st_size, sha256=sha256_of(shared)
    )
    assert sha256_of(got.path) == hashlib.sha256(shared.read_bytes()).hexdigest()
    assert pq.ParquetFile(got.path).metadata.num_rows == pq.ParquetFile(shared).metadata.num_rows
    assert files_in(dest) == [JAN]
    assert server.count(f"/tlc/{JAN}") == 1
    assert messages[0] == f"GET {url} (attempt 1/4)"
    assert messages[-1].startswith(f"downloaded {JAN}: {shared.stat().st_size:,} bytes in ")
    assert len(messages) == 2


def test_500_then_200_is_retried_once(server, dest_with_good_dec):
    messages: list[str] = []
    got = fetch_month(f"{server.base}/flaky", "green", "2024-01", dest_with_good_dec,
                      log=messages.append, **FAST)

    assert server.count(f"/flaky/{JAN}") == 2
    assert got.sha256 == sha256_of(DATA_DIR / JAN) == sha256_of(got.path)
    assert pq.ParquetFile(got.path).metadata.num_rows > 50_000
    assert files_in(dest_with_good_dec) == sorted([DEC, JAN])
    url = f"{server.base}/flaky/{JAN}"
    assert messages[:3] == [
        f"GET {url} (attempt 1/4)",
        f"{JAN}: attempt 1/4 failed (HTTP 500); retrying in 0.01s",
        f"GET {url} (attempt 2/4)",
    ]
    assert messages[3].startswith(f"downloaded {JAN}: ")


# ----------------------------------------------------------------------------- HTTP failures


@pytest.mark.parametrize("status", [403, 404])
def test_unpublished_month_is_not_retried(server, dest_with_good_dec, status):
    month = "2024-05" if status == 403 else "2024-06"
    name = month_file_name("green", month)
    with pytest.raises(MonthNotPublishedError) as err:
        fetch_month(f"{server.base}/tlc", "green", month, dest_with_good_dec, retries=3, **FAST)
    url = f"{server.base}/tlc/{name}"
    assert str(err.value) == (
        f"{name} is not published yet at {url} (HTTP {status}); "
        "TLC publishes months with a ~2 month lag"
    )
    assert isinstance(err.value, DataSourceError)
    assert server.count(f"/tlc/{name}") == 1
    assert_only_good_dec_left(dest_with_good_dec)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_persistent_retryable_status_exhausts_retries(server, dest_with_good_dec, status):
    messages: list[str] = []
    with pytest.raises(DownloadError) as err:
        fetch_month(f"{server.base}/always/{status}", "green", "2024-01", dest_with_good_dec,
                    retries=2, log=messages.append, **FAST)
    url = f"{server.base}/always/{status}/{JAN}"
    assert str(err.value) == (
        f"could not download {JAN} from {url} after 3 attempts; last error: HTTP {status}"
    )
    assert server.count(f"/always/{status}/{JAN}") == 3
    assert [m for m in messages if m.startswith("GET ")] == [
        f"GET {url} (attempt {n}/3)" for n in (1, 2, 3)
    ]
    assert f"{JAN}: attempt 2/3 failed (HTTP {status}); retrying in 0.02s" in messages
    assert_only_good_dec_left(dest_with_good_dec)


def test_non_retryable_status_fails_at_once(server, dest_with_good_dec):
    with pytest.raises(DownloadError) as err:
        fetch_month(f"{server.base}/always/401", "green", "2024-01", dest_with_good_dec, **FAST)
    url = f"{server.base}/always/401/{JAN}"
    assert str(err.value) == (
        f"could not download {JAN} from {url}: HTTP 401 is not retryable (1 attempt)"
    )
    assert server.count(f"/always/401/{JAN}") == 1
    assert_only_good_dec_left(dest_with_good_dec)


def test_truncated_body_is_retried_then_reported_corrupt(server, dest_with_good_dec):
    with pytest.raises(CorruptFileError) as err:
        fetch_month(f"{server.base}/truncated", "green", "2024-01", dest_with_good_dec,
                    retries=1, **FAST)
    size = (DATA_DIR / JAN).stat().st_size
    url = f"{server.base}/truncated/{JAN}"
    assert str(err.value) == (
        f"{JAN} from {url} is corrupt: truncated: Content-Length said {size} bytes, "
        f"got {size // 2} (on the last of 2 attempts)"
    )
    assert server.count(f"/truncated/{JAN}") == 2
    assert_only_good_dec_left(dest_with_good_dec)


def test_html_page_with_200_is_not_parquet(server, dest_with_good_dec):
    with pytest.raises(CorruptFileError) as err:
        fetch_month(f"{server.base}/html", "green", "2024-01", dest_with_good_dec, **FAST)
    assert str(err.value) == (
        f"{JAN} from {server.base}/html/{JAN} is corrupt: "
        "not a parquet file (starts with '<!DOCTYPE html>')"
    )
    assert server.count(f"/html/{JAN}") == 1  # a complete-but-wrong body is not retried
    assert_only_good_dec_left(dest_with_good_dec)


def test_empty_body_is_corrupt(server, dest_with_good_dec):
    with pytest.raises(CorruptFileError) as err:
        fetch_month(f"{server.base}/empty", "green", "2024-01", dest_with_good_dec, **FAST)
    assert str(err.value) == f"{JAN} from {server.base}/empty/{JAN} is corrupt: empty file (0 bytes)"
    assert_only_good_dec_left(dest_with_good_dec)


def test_failed_refetch_keeps_existing_good_copy_of_same_month(server, tmp_path):
    first = fetch_month(f"{server.base}/tlc", "green", "2024-01", tmp_path, **FAST)
    with pytest.raises(CorruptFileError):
        fetch_month(f"{server.base}/html", "green", "2024-01", tmp_path, **FAST)
    assert files_in(tmp_path) == [JAN]
    assert sha256_of(first.path) == first.sha256 == sha256_of(DATA_DIR / JAN)


def test_connection_refused_is_retried_then_download_error(dest_with_good_dec):
    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/trip-data/{JAN}"
    messages: list[str] = []
    with pytest.raises(DownloadError) as err:
        fetch_month(f"http://127.0.0.1:{port}/trip-data", "green", "2024-01", dest_with_good_dec,
                    retries=1, log=messages.append, **FAST)
    assert str(err.value).startswith(
        f"could not download {JAN} from {url} after 2 attempts; last error: ConnectionError: "
    )
    assert sum(m.startswith("GET ") for m in messages) == 2
    assert_only_good_dec_left(dest_with_good_dec)


def test_timeout_is_retried_then_download_error(server, dest_with_good_dec):
    with pytest.raises(DownloadError) as err:
        fetch_month(f"{server.base}/slow", "green", "2024-01", dest_with_good_dec,
                    timeout=0.2, retries=1, **FAST)
    assert str(err.value).startswith(
        f"could not download {JAN} from {server.base}/slow/{JAN} after 2 attempts; "
        "last error: ReadTimeout: "
    )
    assert "Read timed out. (read timeout=0.2)" in str(err.value)
    assert server.count(f"/slow/{JAN}") == 2
    assert_only_good_dec_left(dest_with_good_dec)


# ----------------------------------------------------------------------------- month_available


def test_month_available_over_http_head(server):
    base = f"{server.base}/tlc"
    assert month_available(base, "green", "2024-01") is True
    assert month_available(base, "green", "2024-05") is False  # 403
    assert month_available(base, "green", "2030-01") is False  # 404
    assert [m for m, _, _ in server.requests] == ["HEAD", "HEAD", "HEAD"]


def test_month_available_falls_back_to_ranged_get_on_405(server):
    base = f"{server.base}/nohead"
    assert month_available(base, "green", "2024-01") is True
    assert month_available(base, "green", "2030-01") is False
    assert server.requests == [
        ("HEAD", f"/nohead/{JAN}", None),
        ("GET", f"/nohead/{JAN}", "bytes=0-3"),
        ("HEAD", "/nohead/green_tripdata_2030-01.parquet", None),
        ("GET", "/nohead/green_tripdata_2030-01.parquet", "bytes=0-3"),
    ]


def test_month_available_raises_on_server_error(server):
    with pytest.raises(DownloadError) as err:
        month_available(f"{server.base}/always/500", "green", "2024-01")
    assert str(err.value) == (
        f"could not probe {JAN} at {server.base}/always/500/{JAN}: unexpected HTTP 500 to HEAD"
    )


# ----------------------------------------------------------------------------- local folder


def test_local_folder_source_copies_and_validates(tmp_path):
    messages: list[str] = []
    got = fetch_month(str(DATA_DIR), "green", "2024-01", tmp_path, log=messages.append)
    shared = DATA_DIR / JAN
    assert got == FetchedMonth(
        path=tmp_path / JAN, source=str(shared), num_bytes=shared.stat().st_size,
        sha256=sha256_of(shared),
    )
    assert files_in(tmp_path) == [JAN]
    assert messages[0].startswith(f"copied {JAN} from {DATA_DIR}: {shared.stat().st_size:,} bytes")
    got.path.unlink()  # the caller may delete it; the source is untouched
    assert shared.is_file()


def test_file_url_source(tmp_path):
    got = fetch_month(DATA_DIR.as_uri(), "green", "2023-12", tmp_path)
    assert got.path == tmp_path / DEC
    assert got.sha256 == sha256_of(DATA_DIR / DEC)


def test_local_folder_missing_month(dest_with_good_dec):
    with pytest.raises(MonthNotPublishedError) as err:
        fetch_month(str(DATA_DIR), "green", "2030-01", dest_with_good_dec)
    assert str(err.value) == (
        f"green_tripdata_2030-01.parquet is not published yet in local folder {DATA_DIR} "
        "(file missing)"
    )
    assert_only_good_dec_left(dest_with_good_dec)


def test_local_corrupt_file_is_rejected(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    body = (DATA_DIR / JAN).read_bytes()
    (source / JAN).write_bytes(body[:-100])  # footer cut off
    dest = tmp_path / "dest"
    with pytest.raises(CorruptFileError) as err:
        fetch_month(str(source), "green", "2024-01", dest)
    assert str(err.value) == (
        f"{JAN} from {source / JAN} is corrupt: not a complete parquet file "
        f"({len(body) - 100} bytes, no 'PAR1' footer magic at the end)"
    )
    assert files_in(dest) == []


def test_local_source_guards(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / JAN).write_bytes((DATA_DIR / JAN).read_bytes())
    with pytest.raises(ValueError, match="is the local source folder itself"):
        fetch_month(str(source), "green", "2024-01", source)
    assert files_in(source) == [JAN]
    with pytest.raises(DataSourceError) as err:
        fetch_month(str(tmp_path / "nowhere"), "green", "2024-01", tmp_path / "dest")
    assert str(err.value) == f"local data source folder does not exist: {tmp_path / 'nowhere'}"


def test_month_available_local_folder():
    assert month_available(str(DATA_DIR), "green", "2024-01") is True
    assert month_available(DATA_DIR.as_uri(), "green", "2024-02") is True
    assert month_available(str(DATA_DIR), "green", "2030-01") is False
