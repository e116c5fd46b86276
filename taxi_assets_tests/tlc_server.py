"""A local stand-in for the TLC's file server (``ThreadingHTTPServer`` on 127.0.0.1, ephemeral
port) serving the shared real months, with one URL prefix per failure mode the downloader must
survive (the downloader's tests, ``io/test_download_servers.py``, and the ingestion asset's,
``defs/preparation/test_assets.py``):

    /tlc/<file>            real shared file; 2024-05 -> 403 (TLC's "not yet"), others missing -> 404
    /flaky/<file>          500 on the first request for a file, then the real file
    /always/<code>/<file>  always answers <code> (500, 429, 401, ...)
    /truncated/<file>      Content-Length of the whole file, sends half, closes the connection
    /html/<file>           200 with an HTML page
    /empty/<file>          200 with an empty body
    /slow/<file>           sleeps longer than the client timeout before answering
    /hang/<n>/<file>       200 with the whole file's Content-Length, sends n bytes, then hangs
    /trickle/<file>        200, then one byte every 50 ms (never times out a single read)
    /stallheaders/<file>   part of the status line and headers, then nothing
    /chunked-garbage/<f>   chunked encoding whose first chunk-size line is /etc/passwd-like text
    /nohead/<file>         HEAD -> 405; GET with Range -> 206 (the month_available fallback)
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from support.data import data_dir

DATA_DIR = data_dir()
# What a source must never get echoed into an error, a log line or an alert.
PASSWD = b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


class TLCServer:
    """A ThreadingHTTPServer with the routes above, recording every request it sees."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self._lock = threading.Lock()
        self._seen_flaky: set[str] = set()
        self.release = threading.Event()  # set at teardown: hanging handlers return
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
                elif mode == "hang":
                    body = (DATA_DIR / name).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: int(parts[1])])
                    self.wfile.flush()
                    server.release.wait(30)
                    self.close_connection = True
                elif mode == "trickle":
                    body = (DATA_DIR / name).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.flush()
                    for i in range(200):  # 10 s at most
                        if server.release.wait(0.05):
                            break
                        try:
                            self.wfile.write(body[i : i + 1])
                            self.wfile.flush()
                        except OSError:
                            break  # the client gave up
                    self.close_connection = True
                elif mode == "stallheaders":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Len")
                    self.wfile.flush()
                    server.release.wait(30)
                    self.close_connection = True
                elif mode == "chunked-garbage":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(PASSWD[:40] + b"\r\n")
                    self.wfile.flush()
                    self.close_connection = True
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
