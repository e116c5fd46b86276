"""Alert delivery against a real SMTP server (aiosmtpd) and a real HTTP server."""

from __future__ import annotations

import email
import email.policy
import json
import logging
from http.server import BaseHTTPRequestHandler

import pytest

from support.local import closed_port
from taxi_assets.io.notify import (
    Alert,
    NotificationError,
    format_email,
    notify_all,
    post_webhook,
    send_email,
    slack_payload,
)
from taxi_assets_tests.helpers import WebhookServer, parse_envelope, serving, smtp_serving

SECRET_PATH = "/services/T000/B000/very-secret-token"


@pytest.fixture
def alert() -> Alert:
    return Alert(
        title="Asset materialization failed",
        asset="cleaned_trips",
        partition="2024-01",
        run_id="3f2a9c1e-run",
        detail="KeyError: 'lpep_pickup_datetime' missing in green_tripdata_2024-01.parquet",
        url="http://dagster.local:3000/runs/3f2a9c1e-run",
    )


# ------------------------------------------------------------------------- servers


@pytest.fixture
def smtp_server():
    with smtp_serving() as server:
        yield server


@pytest.fixture
def webhook_server():
    with serving(WebhookServer(200)) as server:
        yield server


@pytest.fixture
def failing_webhook_server():
    with serving(WebhookServer(500)) as server:
        yield server


def _email_cfg(port: int) -> dict:
    return {
        "host": "127.0.0.1",
        "port": port,
        "sender": "dagster@taxi.local",
        "recipients": ["oncall@taxi.local", "ml@taxi.local"],
        "timeout": 5,
    }


def _assert_alert_in_text(text: str, alert: Alert) -> None:
    for needle in (alert.asset, alert.partition, alert.run_id, alert.url):
        assert needle in text, f"{needle!r} missing from {text!r}"


# --------------------------------------------------------------------------- tests


def test_format_email_and_slack_payload_name_everything(alert):
    message = format_email(alert, sender="a@x", recipients="b@x, c@x")
    assert message["Subject"] == (
        "[taxi-assets ERROR] Asset materialization failed - cleaned_trips / 2024-01"
    )
    assert message["To"] == "b@x, c@x"
    body = message.get_content()
    _assert_alert_in_text(body, alert)
    assert alert.detail in body

    payload = slack_payload(alert)
    assert set(payload) == {"text", "blocks"}
    _assert_alert_in_text(payload["text"], alert)
    assert alert.detail in payload["text"]
    blocks_text = json.dumps(payload["blocks"])
    _assert_alert_in_text(blocks_text, alert)
    assert payload["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "ERROR: Asset materialization failed"},
    }
    assert payload["blocks"][-1]["text"]["text"] == f"<{alert.url}|Open run {alert.run_id}>"


def test_email_subject_survives_a_round_trip_unfolded(alert):
    alert.title = "t" * 400
    raw = format_email(alert, sender="a@x", recipients=["b@x"]).as_bytes()
    lines = raw.split(b"\n")
    subject_at = next(i for i, line in enumerate(lines) if line.startswith(b"Subject: [taxi-assets"))
    assert not lines[subject_at + 1].startswith((b" ", b"\t")), "subject header was folded"
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "[taxi-assets ERROR] " + "t" * 199 + "… - cleaned_trips / 2024-01"


def test_slack_payload_respects_block_limits_and_escapes(alert):
    alert.title = "x" * 400
    alert.detail = "<b> & " + "y" * 5000
    alert.partition = None
    alert.url = None
    payload = slack_payload(alert)
    header = payload["blocks"][0]["text"]["text"]
    assert len(header) == 150 and header.endswith("…")
    detail = payload["blocks"][2]["text"]["text"]
    assert len(detail) == 3000 and detail.startswith("*Detail:*\n```&lt;b&gt; &amp; ")
    assert "`(unpartitioned)`" in payload["blocks"][1]["fields"][1]["text"]
    assert all("Open run" not in json.dumps(block) for block in payload["blocks"])


def test_notify_all_sends_email_and_webhook(alert, smtp_server, webhook_server, caplog):
    smtp_port, inbox = smtp_server
    url = webhook_server.base_url + SECRET_PATH
    log = logging.getLogger("test_notify")
    with caplog.at_level(logging.INFO, logger="test_notify"):
        statuses = notify_all(alert, _email_cfg(smtp_port), url, log)
    assert statuses == {"email": "sent", "webhook": "sent"}

    assert len(inbox.envelopes) == 1
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "dagster@taxi.local"
    assert envelope.rcpt_tos == ["oncall@taxi.local", "ml@taxi.local"]
    received = parse_envelope(envelope)
    assert received["Subject"] == (
        "[taxi-assets ERROR] Asset materialization failed - cleaned_trips / 2024-01"
    )
    body = received.get_content()
    _assert_alert_in_text(body, alert)
    assert f"Run ID:    {alert.run_id}" in body
    assert alert.detail in body

    assert len(webhook_server.requests) == 1
    path, content_type, raw = webhook_server.requests[0]
    assert path == SECRET_PATH
    assert content_type == "application/json"
    payload = json.loads(raw)
    assert payload == slack_payload(alert)
    _assert_alert_in_text(payload["text"], alert)
    assert "Alert email sent for cleaned_trips run 3f2a9c1e-run" in caplog.text


def test_down_email_channel_fails_but_webhook_still_sends(alert, webhook_server, caplog):
    log = logging.getLogger("test_notify")
    with caplog.at_level(logging.INFO, logger="test_notify"):
        statuses = notify_all(alert, _email_cfg(closed_port()), webhook_server.base_url + "/hook", log)
    assert statuses == {"email": "failed: ConnectionRefusedError", "webhook": "sent"}
    assert len(webhook_server.requests) == 1
    assert "Alert email failed: ConnectionRefusedError\n" in caplog.text


def test_down_webhook_fails_but_email_still_sends(alert, smtp_server):
    smtp_port, inbox = smtp_server
    port = closed_port()
    statuses = notify_all(alert, _email_cfg(smtp_port), f"http://127.0.0.1:{port}{SECRET_PATH}", logging.getLogger("test_notify"))
    assert statuses == {"email": "sent", "webhook": f"failed: webhook http://127.0.0.1:{port}/… unreachable (ConnectionRefusedError)"}
    assert len(inbox.envelopes) == 1


def test_webhook_non_2xx_raises_a_clear_error(alert, failing_webhook_server):
    url = failing_webhook_server.base_url + SECRET_PATH
    with pytest.raises(NotificationError) as excinfo:
        post_webhook(alert, url, timeout=5)
    assert str(excinfo.value) == f"webhook {failing_webhook_server.base_url}/… returned HTTP 500"  # not its answer
    statuses = notify_all(alert, None, url, logging.getLogger("test_notify"))
    assert statuses == {
        "email": "skipped (not configured)",
        "webhook": f"failed: webhook {failing_webhook_server.base_url}/… returned HTTP 500",
    }
    assert len(failing_webhook_server.requests) == 2


def test_unconfigured_channels_are_skipped_and_logged(alert, caplog):
    log = logging.getLogger("test_notify")
    with caplog.at_level(logging.INFO, logger="test_notify"):
        statuses = notify_all(alert, None, None, log)
        assert notify_all(alert, {}, "", log) == statuses
    assert statuses == {"email": "skipped (not configured)", "webhook": "skipped (not configured)"}
    assert "Alert email skipped (not configured): no SMTP settings given" in caplog.text
    assert "Alert webhook skipped (not configured): no webhook URL given" in caplog.text


def test_bad_email_config_is_a_failure_not_a_crash(alert):
    statuses = notify_all(alert, {"host": "127.0.0.1", "port": 25, "smtp_pass": "x"}, None)
    assert statuses["email"] == (
        "failed: email config is missing ['sender', 'recipients'] "
        "and has unknown keys ['smtp_pass']"
    )
    assert statuses["webhook"] == "skipped (not configured)"


def test_send_email_directly(alert, smtp_server):
    smtp_port, inbox = smtp_server
    send_email(
        alert,
        host="127.0.0.1",
        port=smtp_port,
        sender="dagster@taxi.local",
        recipients="oncall@taxi.local",
        timeout=5,
    )
    assert [e.rcpt_tos for e in inbox.envelopes] == [["oncall@taxi.local"]]
    assert parse_envelope(inbox.envelopes[0])["To"] == "oncall@taxi.local"
    with pytest.raises(NotificationError, match="^email not sent: no recipients configured$"):
        send_email(alert, host="127.0.0.1", port=smtp_port, sender="a@x", recipients=" , ")


# ------------------------------------------------------------------- secrets in the webhook URL
#
# Whatever the URL holds (non-ASCII characters, a login, a form that cannot be parsed), its
# secret parts never reach a status, a log line (every logger, DEBUG and up), stdout/stderr, the
# error or its traceback: not raw, not percent-encoded, not IDNA/punycode, not escaped, not base64.

TOKEN = "sëcret-tøken-9f8e7d"  # non-ASCII: sent percent-encoded
ASCII_TOKEN = "very-secret-token-0a1b2c"
PASSWORD = "p4ss-wörd-77"


def secret_forms(*secrets: str) -> set[str]:
    """Every spelling of each secret an error message, a log line or a server might show."""
    import base64
    from urllib.parse import quote, quote_plus

    forms = set()
    for secret in secrets:
        encoded = quote(secret, safe="")
        forms |= {
            secret,
            encoded,
            encoded.lower(),
            quote_plus(secret),
            ascii(secret)[1:-1],
            repr(secret.encode())[2:-1],
            secret.encode("punycode").decode(),
            base64.b64encode(secret.encode()).decode(),
        }
    return forms


def assert_no_secret(text: str, forms: set[str]) -> None:
    for form in forms:
        assert form not in text, f"{form!r} leaked into {text!r}"


def _everything_said(alert, url: str, caplog, capfd) -> tuple[str, str, Exception]:
    """Status, log lines (DEBUG and up, every logger), stdout and stderr, the error and its traceback."""
    import traceback

    log = logging.getLogger("test_notify")
    with caplog.at_level(logging.DEBUG):
        statuses = notify_all(alert, None, url, log)
        with pytest.raises(NotificationError) as caught:
            post_webhook(alert, url, timeout=5)
    out, err = capfd.readouterr()
    said = [statuses["webhook"], str(caught.value), "".join(traceback.format_exception(caught.value)), caplog.text, out, err]
    assert f"Alert webhook {statuses['webhook']}" in caplog.text  # the notifier's own log line was captured
    return "\n".join(said), statuses["webhook"], caught.value


def _leaky_cases() -> dict[str, tuple[str, list[str], str]]:
    """name -> (url, secrets, expected webhook status)."""
    port = closed_port()
    refused = f"failed: webhook http://127.0.0.1:{port}/… unreachable (ConnectionRefusedError)"
    invalid = "failed: webhook <invalid webhook URL> not sent: the URL is invalid ("
    return {
        "non-ASCII path": (f"http://127.0.0.1:{port}/services/T000/B000/{TOKEN}", [TOKEN], refused),
        "non-ASCII query": (f"http://127.0.0.1:{port}/hook?token={TOKEN}&channel=alerts", [TOKEN], refused),
        "non-ASCII host": (
            f"http://hööks.exämple.invalid/services/T000/B000/{TOKEN}",
            [TOKEN],
            "failed: webhook http://xn--hks-snaa.xn--exmple-cua.invalid/… unreachable (gaierror)",
        ),
        "login": (
            f"http://hookuser:{PASSWORD}@127.0.0.1:{port}/services/{ASCII_TOKEN}",
            [PASSWORD, ASCII_TOKEN, f"hookuser:{PASSWORD}"],
            refused,
        ),
        "port that is not a port": (f"http://127.0.0.1:99999/services/T000/B000/{TOKEN}", [TOKEN], invalid + "ValueError)"),
        "host that cannot be parsed": (f"http://[::1/services/{ASCII_TOKEN}", [ASCII_TOKEN], invalid + "ValueError)"),
        "host that is not IDNA": (f"http://hooks\u2028x.example/services/{TOKEN}", [TOKEN], invalid + "UnicodeEncodeError)"),
        "label too long": (f"http://{'a' * 70}.example/services/{ASCII_TOKEN}", [ASCII_TOKEN], invalid + "UnicodeError)"),
        "not http": (f"ftp://hooks.example/services/{ASCII_TOKEN}", [ASCII_TOKEN], "failed: webhook ftp://hooks.example/… not sent: the URL is invalid (ValueError)"),
    }


@pytest.mark.parametrize("case", list(_leaky_cases()))
def test_webhook_secret_never_leaks_whatever_the_url(alert, caplog, capfd, case):
    url, secrets, expected = _leaky_cases()[case]
    said, status, error = _everything_said(alert, url, caplog, capfd)
    assert_no_secret(said, secret_forms(*secrets))
    assert status == expected
    assert isinstance(error, NotificationError)


class EchoingWebhook(WebhookServer):
    """A webhook that answers 404 and echoes the request line and headers back, as many web
    servers' error pages do (the Authorization header carries the URL's login in base64)."""

    def __init__(self) -> None:
        super().__init__(404)
        self.RequestHandlerClass = _EchoHandler


class _EchoHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append((self.path, self.headers.get("Authorization"), b""))
        reply = f"no such hook: {self.requestline} {self.headers.get('Authorization', '')}".encode()
        self.send_response(404)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format, *args):
        pass


def test_webhook_server_echoing_the_secret_is_not_repeated(alert, caplog, capfd):
    import base64

    with serving(EchoingWebhook()) as server:
        host = server.base_url.removeprefix("http://")
        url = f"http://hookuser:{PASSWORD}@{host}/services/T000/B000/{TOKEN}?key={ASCII_TOKEN}"
        said, status, _ = _everything_said(alert, url, caplog, capfd)
    assert len(server.requests) == 2  # the request did reach the server, with its token and login
    path, authorization, _ = server.requests[0]
    assert path == f"/services/T000/B000/s%C3%ABcret-t%C3%B8ken-9f8e7d?key={ASCII_TOKEN}"
    assert authorization == "Basic " + base64.b64encode(f"hookuser:{PASSWORD}".encode()).decode()
    assert_no_secret(said, secret_forms(TOKEN, ASCII_TOKEN, PASSWORD, f"hookuser:{PASSWORD}"))
    assert status == f"failed: webhook {server.base_url}/… returned HTTP 404"


def test_webhook_secret_not_in_logs_of_a_delivered_alert(alert, caplog, capfd, webhook_server):
    url = webhook_server.base_url + f"/services/T000/B000/{TOKEN}?key={ASCII_TOKEN}"
    with caplog.at_level(logging.DEBUG):
        statuses = notify_all(alert, None, url, logging.getLogger("test_notify"))
    assert statuses["webhook"] == "sent"
    assert len(webhook_server.requests) == 1
    assert "Alert webhook sent for cleaned_trips run 3f2a9c1e-run" in caplog.text
    assert {r.name for r in caplog.records} == {"test_notify"}  # no HTTP client logs the request line
    assert_no_secret(caplog.text + "".join(capfd.readouterr()), secret_forms(TOKEN, ASCII_TOKEN))
