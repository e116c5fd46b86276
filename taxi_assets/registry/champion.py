"""The champion line in the MLflow registry: one version per month's decision, and an alias
that only moves forward in time.

``champion_model[M]`` registers its winner as a version of ``taxi-trip-duration-<taxi>`` tagged
with M (``champion_month``), the month the model first won and the months it trained on; then
:func:`serve_newest` points the ``champion`` alias at the newest month's version. A backfill or
re-run of an older month adds its version and leaves the alias where it is; a newer month moves
it. Two decisions registering at once both converge on the same holder (each re-reads the
registry after setting the alias). Plain MLflow, no Dagster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from taxi_assets.registry.names import (
    CHAMPION_ALIAS,
    CHAMPION_MONTH_TAG,
    DECISION_TAG,
    PARTITION_TAG,
    RUN_ID_TAG,
    TRAINED_MONTHS_TAG,
    WON_MONTH_TAG,
    champion_model_name,
)
from taxi_assets.registry.tracking import TrackingStore


@dataclass(frozen=True)
class Serving:
    """Who holds the alias after a decision, and who held it before."""

    version: int
    month: str
    previous_version: int | None
    previous_month: str | None

    @property
    def moved(self) -> bool:
        return self.version != self.previous_version

    def describe(self, decided: str) -> str:
        """One line for the decision's metadata, from the point of view of month ``decided``."""
        if not self.moved:
            return f"alias '{CHAMPION_ALIAS}' stays on version {self.version} (champion of {self.month})"
        if self.previous_version is None:
            return f"alias '{CHAMPION_ALIAS}' set to version {self.version} (champion of {self.month})"
        return (
            f"alias '{CHAMPION_ALIAS}' moved from version {self.previous_version} (champion of {self.previous_month}) "
            f"to version {self.version} (champion of {self.month})"
        ) + ("" if self.month == decided else f", newer than {decided}")


def current_champion(store: TrackingStore, taxi_type: str):
    """The model version behind the ``champion`` alias, or None before the first promotion."""
    from mlflow.exceptions import MlflowException

    try:
        return store.client.get_model_version_by_alias(champion_model_name(taxi_type), CHAMPION_ALIAS)
    except MlflowException:
        return None


def register_champion(store: TrackingStore, taxi_type: str, champion, run_id: str):
    """A new version of the champion line for ``champion`` (a
    :class:`~taxi_assets.ml.champion.Champion`): the same logged model, tagged with its month."""
    model = champion.model
    tags = {
        CHAMPION_MONTH_TAG: champion.month,
        WON_MONTH_TAG: champion.won_month,
        TRAINED_MONTHS_TAG: ",".join(champion.trained_months),
        DECISION_TAG: "promoted" if champion.promoted else "kept",
        "estimator": model.estimator,
        "validation_month": model.month,
        "rmse": f"{champion.rmse:.6f}",
        PARTITION_TAG: champion.month,
        RUN_ID_TAG: run_id,
    }
    return store.register(
        champion_model_name(taxi_type),
        model.model_uri,
        model.mlflow_run_id or None,
        tags=tags,
        description="Champion line: one version per month's decision; the 'champion' alias is the newest month's.",
    )


def alias_target(versions: Iterable) -> object | None:
    """The version the alias belongs to: the newest ``champion_month``, and of several decisions
    for that month the latest registered. Versions without the tag (an older layout) never win."""
    tagged = [v for v in versions if (v.tags or {}).get(CHAMPION_MONTH_TAG)]
    if not tagged:
        return None
    return max(tagged, key=lambda v: (v.tags[CHAMPION_MONTH_TAG], int(v.version)))


def serve_newest(store: TrackingStore, taxi_type: str, attempts: int = 10) -> Serving | None:
    """Point the alias at :func:`alias_target` of the line; None when the line has no version.

    Set, then read back: a decision that registered meanwhile (another month's run) is seen on
    the re-read, and whichever process sets the alias last re-checks it, so concurrent
    decisions end with the alias on the newest month's version.
    """
    name = champion_model_name(taxi_type)
    client = store.client
    before = current_champion(store, taxi_type)
    for _ in range(attempts):
        target = alias_target(client.search_model_versions(f"name='{name}'"))
        if target is None:
            return None
        holder = current_champion(store, taxi_type)
        if holder is None or holder.version != target.version:
            client.set_registered_model_alias(name, CHAMPION_ALIAS, target.version)
            continue
        return Serving(
            version=int(target.version),
            month=target.tags[CHAMPION_MONTH_TAG],
            previous_version=int(before.version) if before is not None else None,
            previous_month=(before.tags or {}).get(CHAMPION_MONTH_TAG) if before is not None else None,
        )
    raise RuntimeError(f"the '{CHAMPION_ALIAS}' alias of {name} did not settle after {attempts} attempts")
