"""Alert sensors end to end: real failed runs, failed checks and freshness state changes in a
real Dagster instance, delivered to a real SMTP server (aiosmtpd) and a real HTTP webhook."""


import json
import logging
import time
from datetime import timedelta

import dagster as dg
import pytest

from support.local import closed_port
from taxi_assets.defs.automation.alerts import (
    alert_sensors,
    asset_check_failure_alert,
    freshness_alert,
    run_failure_alert,
)
from taxi_assets.defs.automation.alerts.run_failure import is_own_run, own_job_names
from taxi_assets.defs.resources.notifier import AlertNotifier, notifier_from_env
from taxi_assets.settings import SettingsError, read_settings
from taxi_assets_tests.helpers import WebhookServer, serving, smtp_serving

UI = "http://127.0.0.1:3000"
MONTHS = dg.MonthlyPartitionsDefinition(start_date="2023-01", fmt="%Y-%m")
MISSING_COLUMN = "green_tripdata_{month}.parquet has no column 'lpep_pickup_datetime'"
WEBHOOK_PATH = "/services/T000/B000/secret"


# --------------------------------------------------------------------- test assets


@dg.asset(partitions_def=MONTHS, key_prefix=["alerts_test"])
def broken_month(context: dg.AssetExecutionContext):
    raise ValueError(MISSING_COLUMN.format(month=context.partition_key))


@dg.asset(partitions_def=MONTHS, check_specs=[dg.AssetCheckSpec("has_rides", asset="checked_month")])
def checked_month(context: dg.AssetExecutionContext):
    yield dg.Output(0)
    yield dg.AssetCheckResult(
        check_name="has_rides",
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"cleaned_trips[{context.partition_key}] has no rides",
        metadata={"rows": 0, "month": context.partition_key},
    )


@dg.asset(check_specs=[dg.AssetCheckSpec("never_alerted", asset="other_location_asset")])
def other_location_asset():
    """Stands for an asset of another code location: its failed check must not alert here."""
    yield dg.Output(1)
    yield dg.AssetCheckResult(check_name="never_alerted", passed=False)


@dg.asset(freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=1)))
def fresh_month():
    return 1


check_defs = dg.Definitions(assets=[checked_month])
# Loaded by the real freshness daemon below as an in-process code location.
freshness_defs = dg.Definitions(assets=[fresh_month])


# ------------------------------------------------------------------------- servers


@pytest.fixture
def smtp():
    with smtp_serving() as server:
        yield server


@pytest.fixture
def webhook():
    with serving(WebhookServer(200)) as server:
        yield server


def _notifier(smtp_port: int, webhook_url: str | None) -> AlertNotifier:
    return AlertNotifier(
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_use_tls=False,
        email_from="dagster@taxi.local",
        email_to="oncall@taxi.local, ml@taxi.local",
        webhook_url=webhook_url,
        ui_base_url=UI + "/",
        timeout_seconds=5,
    )


@pytest.fixture
def notifier(smtp, webhook) -> AlertNotifier:
    return _notifier(smtp[0], webhook.base_url + WEBHOOK_PATH)


def _run_failure_tick(instance, run: dg.DagsterRun, notifier: AlertNotifier):
    """Evaluate ``run_failure_alert`` on the real RUN_FAILURE event ``run`` left in ``instance``."""
    failure = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_event=failure[0].event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"notifier": notifier},
    ).for_run_failure()
    return run_failure_alert(context)


def _check_tick(instance, notifier, cursor=None, definitions=check_defs) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"notifier": notifier}, definitions=definitions
    )
    return asset_check_failure_alert(context)


# --------------------------------------------------------------------------- tests


def test_sensor_settings():
    assert [s.name for s in alert_sensors] == [
        "run_failure_alert",
        "asset_check_failure_alert",
        "freshness_alert",
    ]
    for sensor in alert_sensors:
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert sensor.required_resource_keys == {"notifier"}
        assert 30 <= sensor.minimum_interval_seconds <= 60
    # The wiring the code location uses loads and resolves (resource keys match, no EnvVar unset).
    defs = dg.Definitions(
        assets=[checked_month], sensors=alert_sensors, resources={"notifier": notifier_from_env()}
    )
    dg.Definitions.validate_loadable(defs)
    assert {s.name for s in defs.get_repository_def().sensor_defs} == {s.name for s in alert_sensors}


@pytest.mark.fast
def test_own_runs_are_the_locations_jobs_or_its_assets():
    """Which failed runs alert, derived from the definitions (no hand-kept job list): the
    location's own jobs, or any job (an implicit asset job of a CLI launch included) that ran
    some of its assets; without definitions, every run."""
    own_job = dg.define_asset_job("own_job", selection=[checked_month])
    repo = dg.Definitions(assets=[checked_month], jobs=[own_job]).get_repository_def()
    instance = dg.DagsterInstance.ephemeral()

    def run(job: str, *keys: str) -> dg.DagsterRun:
        return dg.DagsterRun(job_name=job, asset_selection=frozenset(map(dg.AssetKey, keys)) or None)

    assert own_job_names(repo) == {"own_job"}
    assert is_own_run(instance, run("own_job"), repo)
    assert is_own_run(instance, run("__ASSET_JOB", "checked_month"), repo)
    assert not is_own_run(instance, run("__ASSET_JOB", "elsewhere"), repo)
    assert not is_own_run(instance, run("other_job", "elsewhere"), repo)
    assert not is_own_run(instance, run("other_job"), repo)  # no selection, no stored plan
    assert is_own_run(instance, run("other_job", "elsewhere"), None)


def test_check_sensor_without_code_location_skips(instance):
    result = _check_tick(instance, AlertNotifier(), definitions=None)
    assert result.skip_reason.skip_message == (
        "no code location in the sensor context: no asset checks to watch"
    )


def test_run_failure_alert_names_asset_partition_run_error_and_link(instance, notifier, smtp, webhook):
    result = dg.materialize(
        [broken_month], instance=instance, partition_key="2024-01", tags={"team": "ml"}, raise_on_error=False
    )
    run = instance.get_run_by_id(result.run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE

    assert _run_failure_tick(instance, run, notifier) is None

    error = MISSING_COLUMN.format(month="2024-01")
    link = f"{UI}/runs/{run.run_id}"
    _, inbox = smtp
    [message] = inbox.messages()
    assert message["Subject"] == (
        f"[taxi-assets ERROR] Run failed in __ephemeral_asset_job__: ValueError: {error} "
        "- alerts_test/broken_month / 2024-01"
    )
    assert message["To"] == "oncall@taxi.local, ml@taxi.local"
    body = message.get_content()
    for needle in (
        "Asset:     alerts_test/broken_month",
        "Partition: 2024-01",
        f"Run ID:    {run.run_id}",
        f"Run link:  {link}",
        "Job: __ephemeral_asset_job__",
        "- alerts_test__broken_month (assets: alerts_test/broken_month):",
        f"  ValueError: {error}",
        "in broken_month",  # where it was raised
    ):
        assert needle in body, f"{needle!r} missing from {body!r}"
    assert "DagsterExecutionStepExecutionError" not in body  # the wrapper is unwrapped

    [payload] = webhook.payloads
    for needle in ("alerts_test/broken_month", "partition 2024-01", run.run_id, link, error):
        assert needle in payload["text"], f"{needle!r} missing from {payload['text']!r}"
    assert f"<{link}|Open run {run.run_id}>" in json.dumps(payload["blocks"])


def test_failed_dg_failure_uses_its_description(instance, notifier, smtp):
    @dg.asset(partitions_def=MONTHS)
    def refused_month(context: dg.AssetExecutionContext):
        raise dg.Failure(
            description=f"refused_month[{context.partition_key}]: min > max", allow_retries=False
        )

    result = dg.materialize([refused_month], instance=instance, partition_key="2023-05", raise_on_error=False)
    run = instance.get_run_by_id(result.run_id)
    _run_failure_tick(instance, run, _notifier(smtp[0], None))
    [message] = smtp[1].messages()
    assert message["Subject"] == (
        "[taxi-assets ERROR] Run failed in __ephemeral_asset_job__: refused_month[2023-05]: min > max "
        "- refused_month / 2023-05"
    )


def test_failed_check_alerts_once_per_evaluation(instance, notifier, smtp, webhook):
    first = dg.materialize([checked_month], instance=instance, partition_key="2024-01")
    dg.materialize([other_location_asset], instance=instance)  # filtered: not in check_defs

    result = _check_tick(instance, notifier)

    _, inbox = smtp
    [message] = inbox.messages()
    assert message["Subject"] == "[taxi-assets ERROR] Asset check failed: has_rides - checked_month / 2024-01"
    body = message.get_content()
    for needle in (
        "Check: has_rides",
        "Partition: 2024-01",
        "Severity: ERROR",
        f"Run ID:    {first.run_id}",
        f"Run link:  {UI}/runs/{first.run_id}",
        "Description: cleaned_trips[2024-01] has no rides",
        "  rows: 0",
        "  month: 2024-01",
    ):
        assert needle in body, f"{needle!r} missing from {body!r}"
    assert "never_alerted" not in body
    [payload] = webhook.payloads
    assert "Asset check failed: has_rides | asset checked_month | partition 2024-01" in payload["text"]
    assert result.skip_reason.skip_message == (
        "1 failed check(s) alerted: has_rides on checked_month[2024-01]: email sent, webhook sent"
    )
    assert len(json.loads(result.cursor)["recent"]) == 1  # the alerted execution

    again = _check_tick(instance, notifier, cursor=result.cursor)
    assert again.skip_reason.skip_message == "no new failed checks among 1 check(s)"
    assert len(inbox.envelopes) == 1 and len(webhook.payloads) == 1

    second = dg.materialize([checked_month], instance=instance, partition_key="2024-02")
    third = _check_tick(instance, notifier, cursor=again.cursor)
    assert third.skip_reason.skip_message.startswith(
        "1 failed check(s) alerted: has_rides on checked_month[2024-02]"
    )
    assert len(inbox.envelopes) == 2
    assert f"Run ID:    {second.run_id}" in inbox.messages()[1].get_content()
    assert "partition 2024-02" in webhook.payloads[1]["text"]


def _freshness_tick(instance, notifier, cursor):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"notifier": notifier}, definitions=freshness_defs
    )
    return freshness_alert(context)


def test_freshness_alert_once_per_fail_transition(instance, notifier, smtp, webhook):
    # The real freshness daemon evaluates the policy and records state changes; its clock is
    # moved past the 1-minute fail window (the smallest Dagster allows) instead of sleeping.
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.freshness import FreshnessDaemon

    target = InProcessWorkspaceLoadTarget(
        [
            InProcessCodeLocationOrigin(
                LoadableTargetOrigin(module_name=__name__, attribute="freshness_defs"),
                location_name="alerts_test",
            )
        ]
    )
    _, inbox = smtp
    daemon = FreshnessDaemon()
    with create_test_daemon_workspace_context(target, instance) as workspace:
        first = dg.materialize([fresh_month], instance=instance)
        list(daemon.run_iteration(workspace))  # UNKNOWN -> PASS
        with freeze_time(time.time() + 120):
            list(daemon.run_iteration(workspace))  # PASS -> FAIL
        states = instance.get_freshness_state_records([fresh_month.key])
        assert states[fresh_month.key].freshness_state == "FAIL"

        result = _freshness_tick(instance, notifier, None)
        [message] = inbox.messages()
        assert message["Subject"] == (
            "[taxi-assets ERROR] Asset is stale: freshness policy failed - fresh_month / (unpartitioned)"
        )
        body = message.get_content()
        for needle in (
            "Freshness state: PASS -> FAIL",
            "Policy: time window: FAIL when not materialized for 0:01:00",
            f"Run ID:    {first.run_id}",
            f"Run link:  {UI}/runs/{first.run_id}",
            f"Asset page: {UI}/assets/fresh_month",
        ):
            assert needle in body, f"{needle!r} missing from {body!r}"
        [payload] = webhook.payloads
        assert "asset fresh_month" in payload["text"] and first.run_id in payload["text"]
        assert result.skip_reason.skip_message == (
            "1 stale asset(s) alerted: fresh_month: email sent, webhook sent"
        )

        quiet = _freshness_tick(instance, notifier, result.cursor)
        assert quiet.skip_reason.skip_message == "no asset turned stale"

        second = dg.materialize([fresh_month], instance=instance)
        list(daemon.run_iteration(workspace))  # FAIL -> PASS
        cleared = _freshness_tick(instance, notifier, quiet.cursor)
        assert cleared.skip_reason.skip_message == "fresh again: fresh_month"
        assert len(inbox.envelopes) == 1

        with freeze_time(time.time() + 120):
            list(daemon.run_iteration(workspace))  # PASS -> FAIL again
        stale_again = _freshness_tick(instance, notifier, cleared.cursor)
        assert stale_again.skip_reason.skip_message.startswith("1 stale asset(s) alerted: fresh_month")
        assert len(inbox.envelopes) == 2
        assert f"Run ID:    {second.run_id}" in inbox.messages()[1].get_content()


def test_unconfigured_channels_are_skipped(instance, monkeypatch):
    for name in ("SMTP_HOST", "SMTP_PORT", "SMTP_EMAIL", "SMTP_PASSWORD", "SMTP_USE_TLS"):
        monkeypatch.delenv(name, raising=False)
    for name in ("ALERT_EMAIL_TO", "ALERT_WEBHOOK_URL"):
        monkeypatch.delenv(name, raising=False)
    unconfigured = notifier_from_env(read_settings())
    assert (unconfigured.smtp_host, unconfigured.webhook_url, unconfigured.smtp_port) == (None, None, 587)
    dg.materialize([checked_month], instance=instance, partition_key="2024-01")

    result = _check_tick(instance, unconfigured)

    assert result.skip_reason.skip_message == (
        "1 failed check(s) alerted: has_rides on checked_month[2024-01]: "
        "email skipped (not configured), webhook skipped (not configured)"
    )
    assert len(json.loads(result.cursor)["recent"]) == 1


def test_down_webhook_fails_while_email_sends_and_cursor_advances(instance, smtp, caplog, capfd):
    port = closed_port()
    notifier = _notifier(smtp[0], f"http://127.0.0.1:{port}{WEBHOOK_PATH}")
    dg.materialize([checked_month], instance=instance, partition_key="2024-01")

    with caplog.at_level(logging.DEBUG):
        result = _check_tick(instance, notifier)

    message = result.skip_reason.skip_message
    assert message == (
        "1 failed check(s) alerted: has_rides on checked_month[2024-01]: email sent, "
        f"webhook failed: webhook http://127.0.0.1:{port}/… unreachable (ConnectionRefusedError)"
    )
    out, err = capfd.readouterr()  # the sensor's context.log goes to Dagster's handler on stderr
    assert f"Alert webhook failed: webhook http://127.0.0.1:{port}/… unreachable (ConnectionRefusedError)" in err
    [email] = smtp[1].messages()
    # every channel the sensor writes to: its skip message, its log, Python's logs, stdout, the email
    for said in (message, err, caplog.text, out, email.as_string()):
        assert "/B000/secret" not in said and "B000" not in said
    assert len(smtp[1].envelopes) == 1
    again = _check_tick(instance, notifier, cursor=result.cursor)  # no replay of the failed send
    assert again.skip_reason.skip_message == "no new failed checks among 1 check(s)"
    assert len(smtp[1].envelopes) == 1


def test_notifier_from_env_reads_env_vars_at_init(instance, smtp, webhook, monkeypatch):
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(smtp[0]))
    monkeypatch.setenv("SMTP_EMAIL", "mage@taxi.local")
    monkeypatch.delenv("SMTP_PASSWORD", raising=False)  # aiosmtpd here offers no login
    monkeypatch.setenv("SMTP_USE_TLS", "false")
    monkeypatch.setenv("ALERT_EMAIL_TO", "oncall@taxi.local")
    monkeypatch.setenv("ALERT_WEBHOOK_URL", webhook.base_url + WEBHOOK_PATH)
    configured = notifier_from_env(read_settings())
    # Set variables stay EnvVar references (no secret values in the UI's resource config).
    assert configured.smtp_host == dg.EnvVar("SMTP_HOST")
    assert configured.webhook_url == dg.EnvVar("ALERT_WEBHOOK_URL")
    dg.materialize([checked_month], instance=instance, partition_key="2024-01")

    result = _check_tick(instance, configured)

    assert result.skip_reason.skip_message.endswith("email sent, webhook sent")
    [message] = smtp[1].messages()
    assert (message["From"], message["To"]) == ("mage@taxi.local", "oncall@taxi.local")
    assert len(webhook.payloads) == 1

    monkeypatch.setenv("SMTP_PORT", "five-eight-seven")
    with pytest.raises(SettingsError, match="^invalid setting SMTP_PORT='five-eight-seven': expected a whole number from 1 to 65535$"):
        read_settings()
