"""Alert notifications by email (SMTP) and Slack-compatible webhook.

Plain Python on purpose: the Dagster side (sensors, hooks) builds an :class:`Alert`
and calls :func:`notify_all`, which never raises, because a broken notification
channel must not turn one failure into two or hide the original error.
"""

from __future__ import annotations

import email.policy
import logging
import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import requests

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
    exception on failure (``notify_all`` turns it into a status).
    """
    to = _recipient_list(recipients)
    if not to:
        raise ValueError("send_email: no recipients configured")
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


def _redact_url(url: str) -> str:
    """Scheme and host only: Slack-style webhook URLs carry their secret in the path."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return "<invalid webhook URL>"
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/…"


def _scrub(message: str, url: str) -> str:
    """Remove the webhook's path/query (its secret) from an exception message."""
    parts = urlsplit(url)
    secret = parts.path + (f"?{parts.query}" if parts.query else "")
    message = message.replace(url, _redact_url(url))
    if len(secret) > 1:
        message = message.replace(secret, "/…")
    return message


def post_webhook(alert: Alert, url: str, timeout: float = 10) -> None:
    """POST :func:`slack_payload` as JSON to ``url``.

    Raises :class:`NotificationError` on a connection problem or any non-2xx response;
    the message names the host (never the secret path) and the HTTP status.
    """
    target = _redact_url(url)
    try:
        response = requests.post(url, json=slack_payload(alert), timeout=timeout)
    except requests.RequestException as exc:
        raise NotificationError(
            f"webhook {target} unreachable: {type(exc).__name__}: {_scrub(str(exc), url)}"
        ) from exc
    if not 200 <= response.status_code < 300:
        body = response.text[:200].strip()
        raise NotificationError(
            f"webhook {target} returned HTTP {response.status_code}"
            + (f": {body}" if body else "")
        )


_EMAIL_REQUIRED = ("host", "port", "sender", "recipients")
_EMAIL_ALLOWED = set(_EMAIL_REQUIRED) | {"user", "password", "use_tls", "timeout"}


def _failure(exc: BaseException) -> str:
    reason = str(exc)
    return f"failed: {type(exc).__name__}: {reason}" if reason else f"failed: {type(exc).__name__}"


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
                raise ValueError(
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
