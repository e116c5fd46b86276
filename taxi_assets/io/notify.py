"""Alert notifications by email (SMTP) and Slack-compatible webhook.

Plain Python: the Dagster side (sensors) builds an :class:`Alert` and calls :func:`notify_all`,
which never raises, because a broken channel must not turn one failure into two or hide the
original error.

A webhook URL is a credential: its path, query or login is the token. So a failed delivery is
reported by the HTTP status or the failing exception's class only, never by an exception's text
(clients quote the URL, in encodings a plain replace misses) nor by the server's answer (which
may echo it), and the webhook is named by scheme and host. The POST goes through the standard
library's ``urllib.request``, which writes no log lines (requests' urllib3 logs the request path
at DEBUG).
"""

from __future__ import annotations

import base64
import email.policy
import http.client
import json
import logging
import re
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

_LOG = logging.getLogger(__name__)

SKIPPED = "skipped (not configured)"
SENT = "sent"

# Slack Block Kit limits: header text 150 chars, section text 3000, field text 2000.
_HEADER_MAX = 150
_SECTION_MAX = 3000
_FIELD_MAX = 2000
# Keeps the email subject a single unfolded header line.
_SUBJECT_TITLE_MAX = 200


class NotificationError(RuntimeError):
    """A notification channel rejected or could not receive an alert."""


@dataclass
class Alert:
    """What went wrong, where, and where to look: everything a human needs to triage."""

    title: str
    asset: str
    partition: str | None
    run_id: str
    detail: str
    url: str | None
    severity: str = "error"


def _partition_text(alert: Alert) -> str:
    return alert.partition if alert.partition else "(unpartitioned)"


def _subject(alert: Alert) -> str:
    return (
        f"[taxi-assets {alert.severity.upper()}] {_truncate(alert.title, _SUBJECT_TITLE_MAX)} "
        f"- {alert.asset} / {_partition_text(alert)}"
    )


def _body(alert: Alert) -> str:
    lines = [
        alert.title,
        "",
        f"Severity:  {alert.severity}",
        f"Asset:     {alert.asset}",
        f"Partition: {_partition_text(alert)}",
        f"Run ID:    {alert.run_id}",
        f"Run link:  {alert.url or '(none)'}",
        "",
        "Detail:",
        alert.detail,
        "",
    ]
    return "\n".join(lines)


def _recipient_list(recipients: str | Iterable[str]) -> list[str]:
    if isinstance(recipients, str):
        recipients = recipients.split(",")
    result = [r.strip() for r in recipients if r and r.strip()]
    return result


def format_email(
    alert: Alert, *, sender: str | None = None, recipients: str | Iterable[str] = ()
) -> EmailMessage:
    """Build the plain-text email for ``alert``.

    Subject: ``[taxi-assets ERROR] <title> - <asset> / <partition>``; the body lists
    severity, asset, partition, run id, run link and the detail. ``From``/``To`` are set
    when given (``recipients`` may be a list or a comma-separated string).
    """
    # Fold only at SMTP's hard 998-char limit: the default 78-char folding makes
    # Python's own parser read some subjects back with a leading space.
    message = EmailMessage(policy=email.policy.default.clone(max_line_length=998))
    message["Subject"] = _subject(alert)
    if sender:
        message["From"] = sender
    to = _recipient_list(recipients)
    if to:
        message["To"] = ", ".join(to)
    message.set_content(_body(alert))
    return message


def send_email(
    alert: Alert,
    *,
    host: str,
    port: int,
    sender: str,
    recipients: str | Iterable[str],
    user: str | None = None,
    password: str | None = None,
    use_tls: bool = False,
    timeout: float = 10,
) -> None:
    """Send ``alert`` through the SMTP server at ``host:port``.

    ``use_tls`` upgrades the connection with STARTTLS (port 587 style) using the system
    CA store; ``user``/``password`` log in after that. Raises the ``smtplib``/``OSError``
    exception on failure (``notify_all`` reports its class and SMTP code).
    """
    to = _recipient_list(recipients)
    if not to:
        raise NotificationError("email not sent: no recipients configured")
    message = format_email(alert, sender=sender, recipients=to)
    with smtplib.SMTP(host, int(port), timeout=timeout) as smtp:
        if use_tls:
            smtp.starttls(context=ssl.create_default_context())
        if user:
            smtp.login(user, password or "")
        smtp.send_message(message, from_addr=sender, to_addrs=to)


def _mrkdwn_escape(text: str) -> str:
    # Slack requires only these three to be escaped in mrkdwn text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(alert: Alert) -> dict:
    """Slack-compatible webhook JSON: a ``text`` fallback plus Block Kit ``blocks``.

    ``text`` alone carries asset, partition, run id, detail and link, so plain
    "incoming webhook" receivers that ignore blocks still get the whole alert.
    """
    partition = _partition_text(alert)
    text = (
        f"[{alert.severity.upper()}] {alert.title} | asset {alert.asset} | "
        f"partition {partition} | run {alert.run_id}"
        + (f" | {alert.url}" if alert.url else "")
        + f"\n{alert.detail}"
    )
    fields = [
        ("Asset", alert.asset),
        ("Partition", partition),
        ("Run ID", alert.run_id),
        ("Severity", alert.severity),
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _truncate(f"{alert.severity.upper()}: {alert.title}", _HEADER_MAX),
            },
        },
        {
            "type": "section",
            "fields": [
                {
                    "type": "mrkdwn",
                    "text": _truncate(f"*{name}:*\n`{_mrkdwn_escape(str(value))}`", _FIELD_MAX),
                }
                for name, value in fields
            ],
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": _truncate(f"*Detail:*\n```{_mrkdwn_escape(alert.detail)}```", _SECTION_MAX),
            },
        },
    ]
    if alert.url:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"<{alert.url}|Open run {alert.run_id}>"},
            }
        )
    return {"text": text, "blocks": blocks}


def webhook_name(url: str) -> str:
    """``scheme://host[:port]/…``: how messages name the webhook, without its path, query or login."""
    try:
        parts = urlsplit(url)
        host = parts.hostname.encode("idna").decode("ascii")  # None (no host): AttributeError
        port = f":{parts.port}" if parts.port is not None else ""
    except (AttributeError, ValueError):  # UnicodeError is a ValueError
        return "<invalid webhook URL>"
    if not re.fullmatch(r"[a-z0-9.:-]+", host):
        return "<invalid webhook URL>"
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}{port}/…"


def _webhook_request(url: str, body: bytes) -> urllib.request.Request:
    """A JSON POST to ``url``: non-ASCII path and query percent-encoded, a login in the URL sent
    as HTTP Basic (as requests would); only http(s)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    parts.port  # noqa: B018 - raises ValueError when it is not a port number
    headers = {"Content-Type": "application/json"}
    if parts.username is not None:
        login = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(login).decode()
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    safe = "!#$%&'()*+,/:;=?@[]~"  # what a URL may hold as is (requests' requote_uri)
    url = urlunsplit(parts._replace(path=quote(parts.path, safe), query=quote(parts.query, safe)))
    return urllib.request.Request(url, data=body, headers=headers, method="POST")


def post_webhook(alert: Alert, url: str, timeout: float = 10) -> None:
    """POST :func:`slack_payload` as JSON to ``url``.

    Raises :class:`NotificationError` naming the webhook by :func:`webhook_name` and the HTTP
    status, or the class of what failed: never an exception's text nor the server's answer.
    """
    target = webhook_name(url)
    try:
        request = _webhook_request(url, json.dumps(slack_payload(alert)).encode())
        with urllib.request.urlopen(request, timeout=timeout):
            pass
    except urllib.error.HTTPError as exc:  # any status but 2xx
        exc.close()
        raise NotificationError(f"webhook {target} returned HTTP {exc.code}") from None
    except (OSError, http.client.HTTPException) as exc:  # URLError(reason): refused, DNS, TLS, timeout
        reason = exc.reason if isinstance(getattr(exc, "reason", None), BaseException) else exc
        raise NotificationError(f"webhook {target} unreachable ({type(reason).__name__})") from None
    except ValueError as exc:  # a URL that cannot be used (InvalidURL, UnicodeError, no http(s))
        raise NotificationError(f"webhook {target} not sent: the URL is invalid ({type(exc).__name__})") from None


_EMAIL_REQUIRED = ("host", "port", "sender", "recipients")
_EMAIL_ALLOWED = set(_EMAIL_REQUIRED) | {"user", "password", "use_tls", "timeout"}


def _failure(exc: BaseException) -> str:
    """A failed channel's status: our own messages (built without secrets), else the class and
    the SMTP status code; never a client's exception text."""
    if isinstance(exc, NotificationError):
        return f"failed: {exc}"
    code = getattr(exc, "smtp_code", None)
    return f"failed: {type(exc).__name__}" + (f" (SMTP {code})" if code else "")


def notify_all(
    alert: Alert,
    email_cfg: dict | None,
    webhook_url: str | None,
    log: Any = None,
) -> dict[str, str]:
    """Send ``alert`` on every configured channel; never raises.

    ``email_cfg`` holds the :func:`send_email` keyword arguments (``host``, ``port``,
    ``sender``, ``recipients`` and optionally ``user``, ``password``, ``use_tls``,
    ``timeout``). ``log`` is anything with ``info``/``error`` (a ``logging.Logger`` or
    Dagster's ``context.log``); defaults to this module's logger.

    Returns ``{"email": status, "webhook": status}`` with status ``"sent"``,
    ``"skipped (not configured)"`` or ``"failed: <reason>"``.
    """
    log = log or _LOG
    statuses: dict[str, str] = {}

    if not email_cfg:
        statuses["email"] = SKIPPED
        log.info(f"Alert email {SKIPPED}: no SMTP settings given")
    else:
        try:
            missing = [key for key in _EMAIL_REQUIRED if not email_cfg.get(key)]
            unknown = sorted(set(email_cfg) - _EMAIL_ALLOWED)
            if missing or unknown:
                raise NotificationError(
                    "email config "
                    + (f"is missing {missing}" if missing else "")
                    + (" and " if missing and unknown else "")
                    + (f"has unknown keys {unknown}" if unknown else "")
                )
            send_email(alert, **email_cfg)
            statuses["email"] = SENT
            log.info(f"Alert email sent for {alert.asset} run {alert.run_id}")
        except Exception as exc:  # noqa: BLE001 - a down channel must never raise
            statuses["email"] = _failure(exc)
            log.error(f"Alert email {statuses['email']}")

    if not webhook_url:
        statuses["webhook"] = SKIPPED
        log.info(f"Alert webhook {SKIPPED}: no webhook URL given")
    else:
        try:
            post_webhook(alert, webhook_url)
            statuses["webhook"] = SENT
            log.info(f"Alert webhook sent for {alert.asset} run {alert.run_id}")
        except Exception as exc:  # noqa: BLE001 - a down channel must never raise
            statuses["webhook"] = _failure(exc)
            log.error(f"Alert webhook {statuses['webhook']}")

    return statuses
