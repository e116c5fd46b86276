"""Alert notifications by email (SMTP) and Slack-compatible webhook.

Plain Python on purpose: the Dagster side (sensors, hooks) builds an :class:`Alert`
and calls :func:`notify_all`, which never raises, because a broken notification
channel must not turn one failure into two or hide the original error.

Webhook secrets
    A Slack-style webhook URL is a credential: its path (and any query or userinfo)
    is the token. It never appears in a status, an error, a traceback or a log line,
    whatever the URL holds. The webhook is named by scheme and host only
    (``https://hooks.slack.com/…``). Errors are built without the text of requests'
    or urllib3's exceptions, which quote the URL in forms a plain replace misses
    (percent-encoded path and query, IDNA host, escaped characters): they carry the
    exception's class and a generic reason (the OS's ``strerror`` where there is one),
    and are raised ``from None`` so no traceback carries the original exception. What
    comes from outside, the webhook server's answer, and urllib3's own DEBUG log lines
    during the POST (which contain the request path) are scrubbed of every spelling of
    every secret part of the URL (:func:`_scrub`).
"""

from __future__ import annotations

import base64
import contextlib
import email.policy
import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

import requests
import urllib3

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


_INVALID_URL = "<invalid webhook URL>"
_HOST_RE = re.compile(r"[a-z0-9.\-]+|\[[0-9a-f:.]+\]")
# Parts of a URL shorter than this are not worth scrubbing on their own (``/``, ``v1``).
_MIN_SECRET_CHARS = 4
# urllib3's loggers: their DEBUG lines hold the request path ("POST /services/T…/B…/… HTTP/1.1").
_HTTP_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.poolmanager",
                 "urllib3.util.retry", "urllib3.response", "requests")


def _redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: never the userinfo, path, query or fragment. Non-ASCII
    hosts in their IDNA form; anything that does not parse cleanly is ``<invalid webhook URL>``."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return _INVALID_URL
    if parts.scheme not in ("http", "https") or not host:
        return _INVALID_URL
    try:
        host = ".".join(label.encode("idna").decode("ascii") if label else label for label in host.split("."))
    except UnicodeError:
        return _INVALID_URL
    if ":" in host:
        host = f"[{host}]"
    if not _HOST_RE.fullmatch(host):
        return _INVALID_URL
    return f"{parts.scheme}://{host}{f':{port}' if port is not None else ''}/…"


def _secret_parts(url: str) -> set[str]:
    """The parts of ``url`` that may carry its secret: everything after the host (path, query,
    fragment, each path segment and query value), the userinfo, and the whole URL."""
    parts = set()
    try:
        split = urlsplit(url)
        netloc, path, query, fragment = split.netloc, split.path, split.query, split.fragment
    except ValueError:
        split = None
    if split is None:  # keep what follows the scheme and host, roughly
        _, _, rest = url.partition("://")
        netloc, _, tail = rest.partition("/")
        path, query, fragment = "/" + tail, "", ""
    userinfo = netloc.rpartition("@")[0] if "@" in netloc else ""
    parts |= {url, path, query, fragment, userinfo, *userinfo.split(":")}
    parts |= {path + (f"?{query}" if query else "")}
    parts |= set(re.split(r"[/;,]", path))
    for key, value in parse_qsl(query, keep_blank_values=True):
        parts |= {key, value, f"{key}={value}"}
    parts |= set(re.split(r"[&=]", query))
    try:  # how requests spells it: IDNA host, percent-encoded path and query
        prepared = requests.PreparedRequest()
        prepared.prepare_url(url, None)
        prepared_url = prepared.url or ""
        parts |= {prepared_url, prepared.path_url}
        parts |= set(re.split(r"[/?&=;,]", prepared.path_url))
    except Exception:  # noqa: BLE001 - a URL requests cannot prepare has no such spelling
        pass
    parts |= {unquote(part) for part in parts}
    return {part for part in parts if len(part) >= _MIN_SECRET_CHARS}


def _spellings(part: str) -> set[str]:
    """The ways ``part`` can show up in a message: raw, percent-encoded (either case), in
    ``repr``/``ascii`` escapes, punycode/IDNA and, for userinfo, base64 (Basic auth)."""
    encoded = quote(part, safe="")
    forms = {
        part,
        encoded,
        encoded.lower(),
        quote(part, safe="/:@!$&'()*+,;=?~"),
        quote_plus(part),
        ascii(part)[1:-1],
        repr(part)[1:-1],
        repr(part.encode("utf-8", "surrogateescape"))[2:-1],
        base64.b64encode(part.encode("utf-8", "surrogateescape")).decode(),
    }
    if not part.isascii():
        with contextlib.suppress(UnicodeError):
            forms.add(part.encode("punycode").decode("ascii"))
        with contextlib.suppress(UnicodeError):
            forms.add(part.encode("idna").decode("ascii"))
    return {form for form in forms if len(form) >= _MIN_SECRET_CHARS}


def _scrubber(url: str):
    """A function that removes every spelling of every secret part of ``url`` from a text."""
    forms = set()
    for part in _secret_parts(url):
        forms |= _spellings(part)
    if not forms:
        return lambda text: text
    pattern = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)), re.IGNORECASE)
    return lambda text: pattern.sub("…", text)


def _scrub(message: str, url: str) -> str:
    """``message`` without any spelling of the webhook URL's secret parts (see :func:`_scrubber`)."""
    return _scrubber(url)(message)


class _ScrubbingFilter(logging.Filter):
    def __init__(self, scrub) -> None:
        super().__init__()
        self._scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is the logging module's business
            return True
        clean = self._scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


@contextlib.contextmanager
def _scrubbed_http_logs(scrub) -> Iterator[None]:
    """Scrub urllib3's (and requests') log lines while the block runs."""
    loggers = [logging.getLogger(name) for name in _HTTP_LOGGERS]
    log_filter = _ScrubbingFilter(scrub)
    for logger in loggers:
        logger.addFilter(log_filter)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(log_filter)


def _request_problem(exc: BaseException) -> str:
    """``<class>: <generic reason>`` for a failed POST, without the exception's own text."""
    seen, stack, chain = set(), [exc], []
    while stack:
        current = stack.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        chain.append(current)
        stack += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        stack += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
    if any(isinstance(e, requests.Timeout) for e in chain):
        reason = "timed out"
    elif any(isinstance(e, socket.gaierror) for e in chain):
        reason = "name resolution failed"
    elif any(isinstance(e, ssl.SSLError) for e in chain):
        reason = "TLS handshake or certificate failed"
    elif (error := next((e for e in chain if isinstance(e, OSError) and e.strerror), None)) is not None:
        reason = error.strerror
    else:
        reason = "request failed"
    return f"{type(exc).__name__}: {reason}"


# A URL requests cannot use (urllib3's LocationParseError is not a requests exception; a
# UnicodeError comes from a label IDNA cannot encode).
_INVALID_URL_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.URLRequired,
    requests.exceptions.InvalidHeader,
    urllib3.exceptions.LocationValueError,
    UnicodeError,
    ValueError,
)


def post_webhook(alert: Alert, url: str, timeout: float = 10) -> None:
    """POST :func:`slack_payload` as JSON to ``url``.

    Raises :class:`NotificationError` on a connection problem, a URL that cannot be used, or
    any non-2xx response; the message names the host (never the secret path, query or
    userinfo) and the HTTP status or the kind of failure.
    """
    target = _redact_url(url)
    scrub = _scrubber(url)
    payload = slack_payload(alert)
    with _scrubbed_http_logs(scrub):
        try:
            response = requests.post(url, json=payload, timeout=timeout)
        except _INVALID_URL_ERRORS as exc:
            raise NotificationError(f"webhook {target} not sent: the URL is invalid ({type(exc).__name__})") from None
        except Exception as exc:  # noqa: BLE001 - whatever requests raises, its text may hold the URL
            raise NotificationError(f"webhook {target} unreachable: {_request_problem(exc)}") from None
    if not 200 <= response.status_code < 300:
        body = " ".join(scrub(response.text[:200]).split())
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
            # post_webhook's own errors are built without secrets; anything else is scrubbed
            failure = _failure(exc)
            statuses["webhook"] = failure if isinstance(exc, NotificationError) else _scrub(failure, webhook_url)
            log.error(f"Alert webhook {statuses['webhook']}")

    return statuses
