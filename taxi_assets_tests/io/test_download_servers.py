"""Tests for taxi_assets.io.download against a real local HTTP server and the shared TLC files.

The server is :class:`~taxi_assets_tests.tlc_server.TLCServer` (127.0.0.1, ephemeral port): one
URL prefix per failure mode the downloader must survive (``/flaky/``, ``/truncated/``, ``/hang/``,
``/trickle/``, ...; the table is in ``taxi_assets_tests/tlc_server.py``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from support.data import data_dir
from taxi_assets.io.download import (
    TLC_BASE_URL,
    CorruptFileError,
    DataSourceError,
    DestinationError,
    DownloadError,
    DownloadTimeoutError,
    FetchedMonth,
    MonthNotPublishedError,
    StorageFullError,
    fetch_month,
    month_available,
    month_file_name,
)
from taxi_assets_tests.tlc_server import PASSWD, TLCServer

DATA_DIR = data_dir()
JAN = "green_tripdata_2024-01.parquet"
DEC = "green_tripdata_2023-12.parquet"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def server():
    srv = TLCServer()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
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


@pytest.mark.fast
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
    got = fetch_month(f"{server.base}/tlc/", "green", "2024-01", dest, log=messages.append)

    shared = DATA_DIR / JAN
    url = f"{server.base}/tlc/{JAN}"
    assert got == FetchedMonth(
        path=dest / JAN, source=url, num_bytes=shared.stat().st_size, sha256=sha256_of(shared)
    )
    assert sha256_of(got.path) == hashlib.sha256(shared.read_bytes()).hexdigest()
    assert pq.ParquetFile(got.path).metadata.num_rows == pq.ParquetFile(shared).metadata.num_rows
    assert files_in(dest) == [JAN]
    assert server.count(f"/tlc/{JAN}") == 1
    assert messages[0] == f"GET {url}"
    assert messages[-1].startswith(f"downloaded {JAN}: {shared.stat().st_size:,} bytes in ")
    assert len(messages) == 2


# ----------------------------------------------------------------------------- HTTP failures
#
# One attempt per call: the caller retries (the raw_trips step, tested through Dagster in
# defs/preparation/test_assets.py). Here: which errors are transient (DownloadError) and which are not.


def test_5xx_then_200_is_one_transient_failure_then_the_file(server, dest_with_good_dec):
    url = f"{server.base}/flaky/{JAN}"
    with pytest.raises(DownloadError) as err:
        fetch_month(f"{server.base}/flaky", "green", "2024-01", dest_with_good_dec)
    assert str(err.value) == f"could not download {JAN} from {url}: HTTP 500"
    assert_only_good_dec_left(dest_with_good_dec)
    got = fetch_month(f"{server.base}/flaky", "green", "2024-01", dest_with_good_dec)  # the caller's retry
    assert server.count(f"/flaky/{JAN}") == 2
    assert got.sha256 == sha256_of(DATA_DIR / JAN) == sha256_of(got.path)
    assert files_in(dest_with_good_dec) == sorted([DEC, JAN])


@pytest.mark.parametrize("status", [403, 404])
def test_unpublished_month_is_permanent(server, dest_with_good_dec, status):
    month = "2024-05" if status == 403 else "2024-06"
    name = month_file_name("green", month)
    with pytest.raises(MonthNotPublishedError) as err:
        fetch_month(f"{server.base}/tlc", "green", month, dest_with_good_dec)
    url = f"{server.base}/tlc/{name}"
    assert str(err.value) == (
        f"{name} is not published yet at {url} (HTTP {status}); "
        "TLC publishes months with a ~2 month lag"
    )
    assert not isinstance(err.value, DownloadError)
    assert server.count(f"/tlc/{name}") == 1
    assert_only_good_dec_left(dest_with_good_dec)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_5xx_and_429_are_transient(server, dest_with_good_dec, status):
    with pytest.raises(DownloadError) as err:
        fetch_month(f"{server.base}/always/{status}", "green", "2024-01", dest_with_good_dec)
    assert type(err.value) is DownloadError
    assert str(err.value) == f"could not download {JAN} from {server.base}/always/{status}/{JAN}: HTTP {status}"
    assert server.count(f"/always/{status}/{JAN}") == 1
    assert_only_good_dec_left(dest_with_good_dec)


def test_other_status_is_permanent(server, dest_with_good_dec):
    with pytest.raises(DataSourceError) as err:
        fetch_month(f"{server.base}/always/401", "green", "2024-01", dest_with_good_dec)
    assert type(err.value) is DataSourceError
    assert str(err.value) == f"could not download {JAN} from {server.base}/always/401/{JAN}: HTTP 401 (not retried)"
    assert server.count(f"/always/401/{JAN}") == 1
    assert_only_good_dec_left(dest_with_good_dec)


def test_body_cut_short_is_transient(server, dest_with_good_dec):
    with pytest.raises(DownloadError) as err:
        fetch_month(f"{server.base}/truncated", "green", "2024-01", dest_with_good_dec)
    size = (DATA_DIR / JAN).stat().st_size
    assert type(err.value) is DownloadError
    assert str(err.value) == (
        f"could not download {JAN} from {server.base}/truncated/{JAN}: "
        f"connection broken after {size // 2:,} of {size:,} bytes (ProtocolError)"
    )
    assert server.count(f"/truncated/{JAN}") == 1
    assert_only_good_dec_left(dest_with_good_dec)


def test_html_page_with_200_is_not_parquet(server, dest_with_good_dec):
    with pytest.raises(CorruptFileError) as err:
        fetch_month(f"{server.base}/html", "green", "2024-01", dest_with_good_dec)
    assert str(err.value) == (
        f"{JAN} from {server.base}/html/{JAN} is corrupt: "
        "not a parquet file (no 'PAR1' magic bytes at the start; 54 bytes, looks like HTML)"
    )
    assert not isinstance(err.value, DownloadError)  # a complete-but-wrong body is permanent
    assert_only_good_dec_left(dest_with_good_dec)


def test_empty_body_is_corrupt(server, dest_with_good_dec):
    with pytest.raises(CorruptFileError) as err:
        fetch_month(f"{server.base}/empty", "green", "2024-01", dest_with_good_dec)
    assert str(err.value) == f"{JAN} from {server.base}/empty/{JAN} is corrupt: empty file (0 bytes)"
    assert_only_good_dec_left(dest_with_good_dec)


def test_failed_refetch_keeps_existing_good_copy_of_same_month(server, tmp_path):
    first = fetch_month(f"{server.base}/tlc", "green", "2024-01", tmp_path)
    with pytest.raises(CorruptFileError):
        fetch_month(f"{server.base}/html", "green", "2024-01", tmp_path)
    assert files_in(tmp_path) == [JAN]
    assert sha256_of(first.path) == first.sha256 == sha256_of(DATA_DIR / JAN)


def test_connection_refused_is_transient(dest_with_good_dec):
    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError) as err:
        fetch_month(f"http://127.0.0.1:{port}/trip-data", "green", "2024-01", dest_with_good_dec)
    assert type(err.value) is DownloadError
    assert str(err.value) == (
        f"could not download {JAN} from http://127.0.0.1:{port}/trip-data/{JAN} (ConnectionError: Connection refused)"
    )
    assert_only_good_dec_left(dest_with_good_dec)


def test_slow_answer_is_a_timeout(server, dest_with_good_dec):
    with pytest.raises(DownloadTimeoutError) as err:
        fetch_month(f"{server.base}/slow", "green", "2024-01", dest_with_good_dec, timeout=0.2)
    assert str(err.value) == (
        f"could not download {JAN} from {server.base}/slow/{JAN}: timed out: no response within 0.2 s"
    )
    assert server.count(f"/slow/{JAN}") == 1
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


# ----------------------------------------------------------------------------- hanging sources
#
# A source that stops sending is a timeout (DownloadTimeoutError, transient: the raw_trips step
# retries it), within about ``timeout`` seconds: requests' read timeout catches a silent server,
# the progress deadline of the read loop a trickle that keeps each read alive.


@contextmanager
def silent_listener():
    """A TCP port that completes the handshake (kernel backlog) but never answers a byte."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def raw_reply_server(reply: bytes):
    """A TCP server that answers every connection with ``reply`` (not HTTP) and closes it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(reply)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()


@pytest.mark.parametrize("sent", [0, 1000])
def test_headers_then_hang_is_a_timeout_not_a_corrupt_file(server, dest_with_good_dec, sent):
    started = time.monotonic()
    with pytest.raises(DownloadError) as err:
        fetch_month(f"{server.base}/hang/{sent}", "green", "2024-01", dest_with_good_dec, timeout=0.5)
    elapsed = time.monotonic() - started
    size = (DATA_DIR / JAN).stat().st_size
    assert type(err.value) is DownloadTimeoutError  # transient, not "corrupt"
    assert str(err.value) == (
        f"could not download {JAN} from {server.base}/hang/{sent}/{JAN}: "
        f"timed out: no data for 0.5 s after {sent:,} of {size:,} bytes"
    )
    assert 0.4 < elapsed < 2.0  # one read timeout, not minutes
    assert server.count(f"/hang/{sent}/{JAN}") == 1
    assert_only_good_dec_left(dest_with_good_dec)


def test_trickling_source_is_stopped_by_the_progress_deadline(server, dest_with_good_dec):
    """One byte every 50 ms never trips a 0.5 s read timeout; the read loop's deadline ends it."""
    started = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as err:
        fetch_month(f"{server.base}/trickle", "green", "2024-01", dest_with_good_dec, timeout=0.5)
    elapsed = time.monotonic() - started
    size = (DATA_DIR / JAN).stat().st_size
    assert re.fullmatch(
        re.escape(f"could not download {JAN} from {server.base}/trickle/{JAN}: timed out: under 64 KiB in 0.5 s after ")
        + r"\d{1,2}" + re.escape(f" of {size:,} bytes"),
        str(err.value),
    ), str(err.value)
    assert 0.4 < elapsed < 2.0  # the server would trickle for 10 s
    assert_only_good_dec_left(dest_with_good_dec)


def test_headers_that_stop_midway_are_a_timeout(server, dest_with_good_dec):
    started = time.monotonic()
    with pytest.raises(DownloadTimeoutError) as err:
        fetch_month(f"{server.base}/stallheaders", "green", "2024-01", dest_with_good_dec, timeout=0.5)
    assert str(err.value) == (
        f"could not download {JAN} from {server.base}/stallheaders/{JAN}: timed out: no response within 0.5 s"
    )
    assert time.monotonic() - started < 2.0
    assert_only_good_dec_left(dest_with_good_dec)


def test_server_that_accepts_but_never_answers_is_a_timeout(dest_with_good_dec):
    with silent_listener() as base:
        started = time.monotonic()
        with pytest.raises(DownloadTimeoutError) as err:
            fetch_month(base, "green", "2024-01", dest_with_good_dec, timeout=0.5)
        elapsed = time.monotonic() - started
        assert str(err.value) == f"could not download {JAN} from {base}/{JAN}: timed out: no response within 0.5 s"
        assert 0.4 < elapsed < 2.0
        with pytest.raises(DownloadTimeoutError) as probe:
            month_available(base, "green", "2024-01", timeout=0.5)
        assert str(probe.value) == f"could not probe {JAN} at {base}/{JAN}: timed out: no response within 0.5 s"
    assert_only_good_dec_left(dest_with_good_dec)


# ----------------------------------------------------------------------------- no echoed content


def test_non_http_answer_is_not_echoed(dest_with_good_dec):
    """A source that is not an HTTP server (here it answers with /etc/passwd-like text)."""
    with raw_reply_server(PASSWD) as base:
        with pytest.raises(DownloadError) as err:
            fetch_month(base, "green", "2024-01", dest_with_good_dec, timeout=2)
        with pytest.raises(DownloadError) as probe:
            month_available(base, "green", "2024-01", timeout=2)
    assert str(err.value) == f"could not download {JAN} from {base}/{JAN} (ConnectionError)"
    assert str(probe.value) == f"could not probe {JAN} at {base}/{JAN} (ConnectionError)"
    assert_only_good_dec_left(dest_with_good_dec)


def test_garbage_chunked_body_is_not_echoed(server, dest_with_good_dec):
    with pytest.raises(DownloadError) as err:
        fetch_month(f"{server.base}/chunked-garbage", "green", "2024-01", dest_with_good_dec)
    assert str(err.value) == (
        f"could not download {JAN} from {server.base}/chunked-garbage/{JAN}: connection broken after 0 bytes (ProtocolError)"
    )
    assert_only_good_dec_left(dest_with_good_dec)


def _source_with(tmp_path: Path, body: bytes) -> Path:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / JAN).write_bytes(body)
    return source


@pytest.mark.fast
@pytest.mark.parametrize(
    "body, kind",
    [
        (PASSWD * 30, "text"),
        (b"  <!doctype html><html><title>root:x:0:0</title></html>", "HTML"),
        (b'<?xml version="1.0"?><Error><Code>root:x:0:0</Code></Error>', "XML"),
        (b'{"error": "root:x:0:0"}', "JSON"),
        (gzip.compress(PASSWD), "gzip-compressed data"),
        (b"\x00\x01\x02root:x:0:0\xff\xfe" * 10, "binary data"),
    ],
    ids=["text", "html", "xml", "json", "gzip", "binary"],  # printable node ids (mutmut re-runs tests by id)
)
def test_not_parquet_says_what_it_is_not_never_its_bytes(tmp_path, body, kind):
    source = _source_with(tmp_path, body)
    with pytest.raises(CorruptFileError) as err:
        fetch_month(str(source), "green", "2024-01", tmp_path / "dest")
    assert str(err.value) == (
        f"{JAN} from {source / JAN} is corrupt: not a parquet file "
        f"(no 'PAR1' magic bytes at the start; {len(body):,} bytes, looks like {kind})"
    )
    assert "root:x" not in str(err.value)
    assert files_in(tmp_path / "dest") == []


@pytest.mark.fast
def test_unreadable_parquet_footer_is_named_by_class_not_by_pyarrow_text(tmp_path):
    inner = PASSWD + b"secret-footer"
    body = b"PAR1" + inner + struct.pack("<i", len(inner)) + b"PAR1"
    source = _source_with(tmp_path, body)
    with pytest.raises(CorruptFileError) as err:
        fetch_month(str(source), "green", "2024-01", tmp_path / "dest")
    assert str(err.value) == (
        f"{JAN} from {source / JAN} is corrupt: parquet footer unreadable (OSError); "
        f"{len(body):,} bytes"
    )


# ----------------------------------------------------------------------------- symlinks


def test_symlink_leaving_the_source_folder_is_refused(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / JAN).symlink_to("/etc/passwd")
    (source / DEC).symlink_to(DATA_DIR / DEC)  # a real parquet file, but outside the folder
    dest = tmp_path / "dest"
    for name, month in ((JAN, "2024-01"), (DEC, "2023-12")):
        with pytest.raises(DataSourceError) as err:
            fetch_month(str(source), "green", month, dest)
        assert type(err.value) is DataSourceError
        assert str(err.value) == (
            f"{name} in the local source folder {source} is a symbolic link to a file outside "
            "that folder; refusing to read it (put the file itself, or a link within the folder, there)"
        )
        with pytest.raises(DataSourceError) as probe:
            month_available(str(source), "green", month)
        assert str(probe.value) == str(err.value)
    assert files_in(dest) == []
    # a relative link climbing out of the folder is refused the same way
    (source / JAN).unlink()
    (source / JAN).symlink_to(Path("..") / "outside.parquet")
    (tmp_path / "outside.parquet").write_bytes((DATA_DIR / JAN).read_bytes())
    with pytest.raises(DataSourceError, match="is a symbolic link to a file outside that folder"):
        fetch_month(str(source), "green", "2024-01", dest)


def test_symlink_within_the_source_folder_is_followed(tmp_path):
    source = tmp_path / "src"
    (source / "archive").mkdir(parents=True)
    (source / "archive" / "2024-01.parquet").write_bytes((DATA_DIR / JAN).read_bytes())
    (source / JAN).symlink_to(Path("archive") / "2024-01.parquet")
    linked_folder = tmp_path / "linked-src"  # the folder itself may be reached through a link
    linked_folder.symlink_to(source)
    for folder in (source, linked_folder):
        got = fetch_month(str(folder), "green", "2024-01", tmp_path / "dest")
        assert got.sha256 == sha256_of(DATA_DIR / JAN)
        assert month_available(str(folder), "green", "2024-01") is True


@pytest.mark.fast
def test_source_that_is_not_a_regular_file_is_refused(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    os.mkfifo(source / JAN)  # opening a FIFO for reading would block forever
    with pytest.raises(DataSourceError) as err:
        fetch_month(str(source), "green", "2024-01", tmp_path / "dest")
    assert str(err.value) == f"{JAN} in the local source folder {source} is not a regular file; refusing to read it"


# ----------------------------------------------------------------------------- full or read-only destination
#
# Real file systems, no patched writes: a tmpfs of 64 KiB (ENOSPC) and a read-only tmpfs (EROFS)
# mounted for the test (root only: CI runs as root), and RLIMIT_FSIZE in a child process (EFBIG,
# treated like a full disk; works without root).


from taxi_assets_tests.helpers import mounted_tmpfs  # noqa: E402


@pytest.fixture
def tiny_disk(tmp_path):
    with mounted_tmpfs(tmp_path / "tiny", "size=64k") as where:
        yield where


@pytest.fixture
def read_only_disk(tmp_path):
    with mounted_tmpfs(tmp_path / "ro", "ro,size=64k") as where:
        yield where


def test_full_disk_is_one_permanent_error_naming_the_path(tiny_disk, server):
    (tiny_disk / "keep.txt").write_bytes(b"kept")
    # local copy
    with pytest.raises(StorageFullError) as err:
        fetch_month(str(DATA_DIR), "green", "2024-01", tiny_disk)
    assert str(err.value) == (
        f"cannot write {JAN} into {tiny_disk}: No space left on device (ENOSPC); "
        "the partial file was removed and nothing was replaced"
    )
    assert isinstance(err.value, DestinationError) and isinstance(err.value, DataSourceError)
    assert not isinstance(err.value, DownloadError)  # permanent: the asset does not retry it
    assert files_in(tiny_disk) == ["keep.txt"]
    # HTTP download: not retried either
    with pytest.raises(StorageFullError) as err:
        fetch_month(f"{server.base}/tlc", "green", "2024-01", tiny_disk)
    assert str(err.value).startswith(f"cannot write {JAN} into {tiny_disk}: No space left on device (ENOSPC)")
    assert server.count(f"/tlc/{JAN}") == 1
    assert files_in(tiny_disk) == ["keep.txt"]


def test_read_only_destination_is_one_permanent_error(read_only_disk, server):
    for dest in (read_only_disk, read_only_disk / "sub" / "dir"):
        with pytest.raises(DestinationError) as err:
            fetch_month(str(DATA_DIR), "green", "2024-01", dest)
        assert type(err.value) is DestinationError
        assert str(err.value) == (
            f"cannot write {JAN} into {dest}: Read-only file system (EROFS); "
            "the partial file was removed and nothing was replaced"
        )
    with pytest.raises(DestinationError, match=r"Read-only file system \(EROFS\)"):
        fetch_month(f"{server.base}/tlc", "green", "2024-01", read_only_disk)
    assert server.count(f"/tlc/{JAN}") == 1
    assert files_in(read_only_disk) == []


_FSIZE_CHILD = """
import json, resource, signal, sys
from pathlib import Path
from taxi_assets.io.download import fetch_month
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
limit = 200_000
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
source, dest = sys.argv[1], Path(sys.argv[2])
try:
    fetch_month(source, "green", "2024-01", dest)
    answer = {"type": None}
except Exception as exc:
    answer = {"type": type(exc).__name__, "bases": [c.__name__ for c in type(exc).__mro__], "message": str(exc)}
answer["left"] = sorted(p.name for p in dest.iterdir())
print(json.dumps(answer))
"""


@pytest.mark.parametrize("kind", ["local", "http"])
def test_file_size_limit_is_a_full_disk_error(server, dest_with_good_dec, kind):
    source = str(DATA_DIR) if kind == "local" else f"{server.base}/tlc"
    done = subprocess.run(
        [sys.executable, "-c", _FSIZE_CHILD, source, str(dest_with_good_dec)],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["type"] == "StorageFullError", answer
    assert "DestinationError" in answer["bases"] and "DownloadError" not in answer["bases"]
    assert answer["message"] == (
        f"cannot write {JAN} into {dest_with_good_dec}: File too large (EFBIG); "
        "the partial file was removed and nothing was replaced"
    )
    assert answer["left"] == [DEC]
    if kind == "http":
        assert server.count(f"/tlc/{JAN}") == 1  # not retried
