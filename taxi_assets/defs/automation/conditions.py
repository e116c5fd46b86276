"""The automation condition every asset after ``raw_trips`` carries: do only work that can succeed.

``retrain_condition()`` requests a month of an asset when one of its inputs was updated (or the
month newly appeared), once none of its inputs is missing or in progress and every blocking
check upstream passed. Unlike ``AutomationCondition.eager()`` it is not limited to the latest
month, so backfilling ``raw_trips`` for old months also retrains those months. Nothing is
launched to fail: months before the first trainable month (``TAXI_START_MONTH`` +
``TAXI_TRAIN_MONTHS``) are never requested for ``training_set`` and everything after it (their
window reaches before the first partition), and such an input partition does not count as
missing; the inputs from the previous month's champion are optional (the asset runs without
it and again when it arrives), and ``champion_model[M]`` waits while ``champion_model[M-1]`` is
requested, so the champion line is decided month after month. The unpartitioned ``backtest``
follows any month of its inputs (:func:`summary_condition`). :class:`UntrainableMonth` is
arbitrary Python, so the automation sensor evaluates on the code server.
"""

from __future__ import annotations

import dagster as dg

from taxi_assets.defs.partitions import FIRST_TRAINABLE_MONTH, monthly_partitions
from taxi_assets.ml.estimators import ESTIMATORS

RAW = dg.AssetKey("raw_trips")
CLEANED = dg.AssetKey("cleaned_trips")
DATA_TIER = frozenset({RAW, CLEANED})
PREVIOUS_CHAMPION = dg.AssetKey("champion_model")
BACKTEST = dg.AssetKey("backtest")


class UntrainableMonth(dg.AutomationCondition):
    """True for training-tier months before the first trainable month (they cannot exist)."""

    @property
    def name(self) -> str:
        return f"before_first_trainable_month({FIRST_TRAINABLE_MONTH})"

    @property
    def description(self) -> str:
        return f"Training-tier month before {FIRST_TRAINABLE_MONTH}: its training window precedes the first partition"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        candidates = context.candidate_subset
        if context.key in DATA_TIER:
            return dg.AutomationResult(context, true_subset=context.asset_graph_view.get_empty_subset(key=context.key))
        early = {m for m in monthly_partitions.get_partition_keys() if m < FIRST_TRAINABLE_MONTH}
        return dg.AutomationResult(context, true_subset=candidates.compute_intersection_with_partition_keys(early))


def retrain_condition(
    ignore_missing: tuple[dg.AssetKey, ...] = (),
    ignore_updates: tuple[dg.AssetKey, ...] = (),
    after: tuple[dg.AssetKey, ...] = (),
) -> dg.AutomationCondition:
    """``eager()`` for every month, for months that can succeed (see the module docstring).

    ``ignore_missing``: inputs whose absence does not hold the asset back (optional inputs).
    ``ignore_updates``: inputs whose updates reach the asset through another input already
    (a model's cleaned_trips, which its training_set is built from): no second request.
    ``after``: inputs to wait for when they are requested in the same tick (champion_model[M]
    waits for champion_model[M-1], so the line is decided in order, one month per tick).
    """
    missing_dep = dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.missing() & ~dg.AutomationCondition.will_be_requested() & ~UntrainableMonth()
    )
    checks_passed = dg.AutomationCondition.all_deps_match(
        dg.AutomationCondition.all_checks_match(
            dg.AutomationCondition.check_passed() | dg.AutomationCondition.will_be_requested(), blocking_only=True
        ).with_label("all_blocking_checks_passed")
    )
    updated = dg.AutomationCondition.any_deps_updated()
    if ignore_updates:
        updated = updated.ignore(dg.AssetSelection.assets(*ignore_updates))
    if ignore_missing:
        # An optional input that is absent has no checks to pass either.
        missing_dep = missing_dep.ignore(dg.AssetSelection.assets(*ignore_missing))
        checks_passed = checks_passed.ignore(dg.AssetSelection.assets(*ignore_missing))
    condition = (
        (dg.AutomationCondition.newly_missing() | updated).since_last_handled()
        & ~missing_dep.with_label("any_deps_missing")
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & checks_passed.with_label("all_deps_blocking_checks_passed")
        & ~UntrainableMonth()
    )
    if after:
        # Wait while the previous month is about to be decided: requested this tick (Dagster
        # cannot tell will_be_requested of a self-dependency, so the same condition is asked of
        # it), being decided, or with an input still being computed. Deciding M first would only
        # be redone once M-1 lands.
        coming = condition | dg.AutomationCondition.in_progress() | dg.AutomationCondition.any_deps_in_progress()
        requested_first = dg.AutomationCondition.any_deps_match(coming).allow(dg.AssetSelection.assets(*after))
        condition = condition & ~requested_first.with_label("previous_month_first")
    return condition.with_label("retrain_on_new_upstream_data")


class InputNewerThanItself(dg.AutomationCondition):
    """True when one of the asset's inputs was materialized after the asset itself (or the asset
    never was): a comparison of stored records, so no update is forgotten, even when the
    asset's own run and an input's land between two ticks (``since_last_handled`` then lets
    the asset's update reset the input's and the summary stays a month behind)."""

    @property
    def name(self) -> str:
        return "an_input_is_newer"

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        instance = context.asset_graph_view.instance

        def latest(key: dg.AssetKey) -> int:
            records = instance.fetch_materializations(key, limit=1).records
            return records[0].storage_id if records else -1

        inputs = max((latest(k) for k in context.asset_graph.get(context.key).parent_keys), default=-1)
        stale = inputs > latest(context.key)
        empty = context.asset_graph_view.get_empty_subset(key=context.key)
        return dg.AutomationResult(context, true_subset=context.candidate_subset if stale else empty)


def summary_condition() -> dg.AutomationCondition:
    """An unpartitioned summary of every month (the backtest): whenever a month of its inputs is
    newer than it, once none is in progress (run beside an input's month, it runs again after)."""
    return (
        InputNewerThanItself()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("update_after_any_month")


def condition_for(key: dg.AssetKey) -> dg.AutomationCondition | None:
    """The automation condition of asset ``key`` (None for raw_trips: sensors start it)."""
    if key == RAW:
        return None
    if key == dg.AssetKey("data_drift"):  # data_drift[M] scores champion_model[M-1]: wait while it is coming
        return retrain_condition(ignore_missing=(PREVIOUS_CHAMPION,), after=(PREVIOUS_CHAMPION,))
    if key == PREVIOUS_CHAMPION:  # champion_model[M] reads champion_model[M-1]
        return retrain_condition(ignore_missing=(PREVIOUS_CHAMPION,), after=(PREVIOUS_CHAMPION,))
    if key == BACKTEST:
        return summary_condition()
    if key.to_user_string() in ESTIMATORS:
        return retrain_condition(ignore_updates=(CLEANED,))
    return retrain_condition()
