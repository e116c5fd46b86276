"""Alert sensors: failed runs, failed asset checks and stale assets reach a human, one sensor
per module (shared helpers in ``common``).

Each alert names the asset, the partition, the run id, the error (or failed check, or freshness
state) and links to the run in the Dagster UI. Delivery goes through the ``notifier`` resource
(:class:`~taxi_assets.defs.resources.notifier.AlertNotifier`), which never raises: a broken
mail server is logged in the tick and cursors still advance, so one outage neither replays
every alert nor blocks later ones once the channel is back."""

from taxi_assets.defs.automation.alerts.check_failure import asset_check_failure_alert
from taxi_assets.defs.automation.alerts.freshness import freshness_alert
from taxi_assets.defs.automation.alerts.run_failure import run_failure_alert

alert_sensors = [run_failure_alert, asset_check_failure_alert, freshness_alert]
