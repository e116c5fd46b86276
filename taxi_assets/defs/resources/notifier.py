"""Where alerts go: SMTP email and a Slack-compatible webhook, both optional.

The alert sensors (``defs/automation/alerts/``) build an :class:`~taxi_assets.io.notify.Alert`
and hand it to :meth:`AlertNotifier.send`, which never raises: a mail server that is down must
not crash the sensor tick (and so hide the failure being reported) or stop its cursor.
The variables (``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_EMAIL``, ``SMTP_PASSWORD``, ``SMTP_USE_TLS``,
``ALERT_EMAIL_TO``, ``ALERT_WEBHOOK_URL``; names from the course's Mage setup) are declared in
``settings.py`` and bound as ``EnvVar``s by :func:`notifier_from_env` (table: README, Alerts).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from taxi_assets.io.notify import Alert, notify_all
from taxi_assets.settings import SETTINGS, Settings

# variable -> AlertNotifier field it feeds (SMTP_EMAIL feeds two fields, see notifier_from_env);
# each is the setting of the same name in lower case.
ENV_FIELDS = {
    "SMTP_HOST": "smtp_host",
    "SMTP_EMAIL": "email_from",
    "SMTP_PASSWORD": "smtp_password",
    "ALERT_EMAIL_TO": "email_to",
    "ALERT_WEBHOOK_URL": "webhook_url",
}


class AlertNotifier(dg.ConfigurableResource):
    """Sends alerts by email and/or webhook; a channel without settings is skipped, not an error.

    Email is on when ``smtp_host`` is set; it then also needs ``email_from`` and ``email_to``
    (a half-configured channel is reported as ``failed: ...`` so the gap is visible, instead of
    being silently skipped). The webhook is on when ``webhook_url`` is set.
    """

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_use_tls: bool = True
    email_from: str | None = None
    email_to: str | None = None
    webhook_url: str | None = None
    ui_base_url: str = SETTINGS.ui_base_url
    timeout_seconds: float = 10.0

    def run_url(self, run_id: str) -> str:
        """Link to the run's page in the Dagster UI."""
        return f"{self.ui_base_url.rstrip('/')}/runs/{run_id}"

    def asset_url(self, asset_path: list[str] | tuple[str, ...]) -> str:
        """Link to the asset's page in the Dagster UI (freshness alerts point here too)."""
        return f"{self.ui_base_url.rstrip('/')}/assets/{'/'.join(asset_path)}"

    def email_config(self) -> dict[str, Any] | None:
        """``send_email`` keyword arguments, or None when email is not configured (no host)."""
        if not self.smtp_host:
            return None
        cfg: dict[str, Any] = {
            "host": self.smtp_host,
            "port": self.smtp_port,
            "sender": self.email_from,
            "recipients": self.email_to,
            "use_tls": self.smtp_use_tls,
            "timeout": self.timeout_seconds,
        }
        # Log in only with a password: a user without one can only fail authentication.
        if self.smtp_password:
            cfg["user"] = self.smtp_user or self.email_from
            cfg["password"] = self.smtp_password
        return cfg

    def send(self, alert: Alert, log: Any = None) -> dict[str, str]:
        """Deliver ``alert`` on every configured channel; never raises.

        Returns ``{"email": status, "webhook": status}`` with ``"sent"``,
        ``"skipped (not configured)"`` or ``"failed: <reason>"``.
        """
        return notify_all(alert, self.email_config(), self.webhook_url or None, log)


def notifier_from_env(settings: Settings = SETTINGS) -> AlertNotifier:
    """An :class:`AlertNotifier` bound to the variables ``settings`` found set (table in the module doc).

    Each *set* variable becomes a ``dg.EnvVar``, so secrets are resolved when the resource is
    initialised and never appear as values in the UI's resource config. An *unset* variable is
    left out (the field keeps its ``None`` default) instead of becoming an ``EnvVar``: an
    ``EnvVar`` on a missing variable fails resource initialisation, which would crash every
    sensor tick of a deployment that simply has no mail server; this way the channel is skipped
    with a log line. The price: a variable added later needs a code location reload, which the
    code server needs for any environment change anyway.
    """
    fields: dict[str, Any] = {
        field: dg.EnvVar(name) for name, field in ENV_FIELDS.items() if getattr(settings, name.lower()) is not None
    }
    if settings.smtp_email and settings.smtp_password:
        fields["smtp_user"] = dg.EnvVar("SMTP_EMAIL")
    if settings.smtp_port is not None:
        fields["smtp_port"] = dg.EnvVar.int("SMTP_PORT")
    fields["smtp_use_tls"] = settings.smtp_use_tls if settings.smtp_use_tls is not None else settings.smtp_port != 25
    return AlertNotifier(**fields)
