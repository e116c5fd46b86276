"""Plain helpers shared by the test modules: the small local servers (SMTP inbox, JSON webhook)
the alert tests deliver to, and real full or read-only file systems. One copy here so every
test exercises the same servers. (The real months, cleaned, and loopback ports are in
``support/``, shared with the benchmarks.)"""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller

# ------------------------------------------------------------------------- webhook


class WebhookServer(ThreadingHTTPServer):
    """A local HTTP endpoint standing in for a Slack-style webhook on an ephemeral port.

    Records every POST as ``(path, content type, body)`` and answers ``status``: ``ok`` for
    2xx, ``invalid_token`` otherwise (the body Slack sends for a revoked webhook).
    """

    daemon_threads = True

    def __init__(self, status: int = 200) -> None:
        super().__init__(("127.0.0.1", 0), _WebhookHandler)
        self.status = status
        self.requests: list[tuple[str, str | None, bytes]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    @property
    def payloads(self) -> list[dict]:
        """The JSON bodies received, in order (a non-JSON body fails the test here)."""
        return [json.loads(body) for _, _, body in self.requests]


class _WebhookHandler(BaseHTTPRequestHandler):
    server: WebhookServer

    def do_POST(self):  # noqa: N802 - http.server naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append((self.path, self.headers.get("Content-Type"), body))
        reply = b"ok" if self.server.status < 300 else b"invalid_token"
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format, *args):  # keep pytest output clean
        pass


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    """Serve ``server`` from a background thread for the ``with`` block, then shut it down
    and close its socket, so no test leaves a listener behind."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------------------- SMTP


class SmtpInbox:
    """aiosmtpd handler that keeps every accepted envelope."""

    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd naming
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[email.message.EmailMessage]:
        """The received mails, parsed."""
        return [parse_envelope(e) for e in self.envelopes]


def parse_envelope(envelope) -> email.message.EmailMessage:
    return email.message_from_bytes(envelope.original_content, policy=email.policy.default)


class _EphemeralController(Controller):
    """aiosmtpd Controller on port 0: learn the real port before the readiness probe."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@contextmanager
def smtp_serving() -> Iterator[tuple[int, SmtpInbox]]:
    """A real SMTP server on 127.0.0.1 (ephemeral port) for the ``with`` block: yields
    ``(port, inbox)`` and stops the server afterwards."""
    inbox = SmtpInbox()
    controller = _EphemeralController(inbox, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


# ------------------------------------------------------------------------ full disks


@contextmanager
def mounted_tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A real tmpfs (``size=64k``, ``ro,...``) mounted at ``where`` for the block: full and
    read-only file systems without patching any write. Needs root, as CI runs the tests."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs the tests as root)")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], check=True,
                   capture_output=True, text=True)  # fmt: skip
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True, capture_output=True, text=True)
