"""``taxi_assets/defs/checks.py``: the blocking-check gate on hand-made check results (no
Dagster run): nothing yielded when every month passed; otherwise the failed results, one per
check over the months, and a permanent failure naming asset, months and checks."""

from __future__ import annotations

import dagster as dg
import pytest

from taxi_assets.defs.checks import combine, describe, gate, refusal

pytestmark = pytest.mark.fast

KEY = dg.AssetKey("cleaned_trips")


def result(name: str, passed: bool, description: str | None = None, **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=name, asset_key=KEY, passed=passed, severity=dg.AssetCheckSeverity.ERROR,
                               description=description, metadata=metadata)  # fmt: skip


def plain(metadata) -> dict:
    """Metadata values as plain Python (Dagster wraps each in a MetadataValue)."""
    return {k: getattr(v, "value", getattr(v, "text", getattr(v, "data", v))) for k, v in metadata.items()}


def run_gate(results):
    """(what the gate yielded, the failure it raised or None)."""
    yielded = []
    iterator = gate("cleaned_trips", results)
    try:
        for item in iterator:
            yielded.append(item)
    except dg.Failure as failure:
        return yielded, failure
    return yielded, None


def test_months_that_pass_yield_nothing_and_raise_nothing():
    assert run_gate({"2024-01": [result("rows", True)], "2024-02": [result("rows", True), result("zones", True)]}) == ([], None)
    assert run_gate({}) == ([], None)


def test_a_failed_month_is_refused_naming_asset_month_check_and_figures():
    results = {
        "2024-01": [result("rows", True, share=0.1), result("zones", True)],
        "2024-02": [result("rows", False, "too few", share=0.7, count=3), result("zones", True)],
    }
    yielded, failure = run_gate(results)
    assert [(r.check_name, r.passed) for r in yielded] == [("rows", False)]
    assert plain(yielded[0].metadata) == {"share": 0.7, "count": 3, "month": "2024-02"}
    assert failure.description == (
        "cleaned_trips[2024-02] failed blocking check rows (share=0.7, count=3): nothing was written, "
        "the previous cleaned_trips[2024-01], cleaned_trips[2024-02] is kept"
    )
    assert failure.allow_retries is False


def test_several_months_and_checks_failing_are_all_named():
    results = {
        "2024-01": [result("rows", False), result("zones", False, share=0.25)],
        "2024-02": [result("rows", True)],
        "2024-03": [result("rows", False)],
    }
    yielded, failure = run_gate(results)
    assert sorted((r.check_name, r.passed) for r in yielded) == [("rows", False), ("zones", False)]
    assert failure.description == (
        "cleaned_trips[2024-01] failed blocking check rows, zones (share=0.25); cleaned_trips[2024-03] failed blocking "
        "check rows: nothing was written, the previous cleaned_trips[2024-01], cleaned_trips[2024-02], cleaned_trips[2024-03] is kept"
    )


def test_refusal_and_describe_words():
    failure = refusal("training_set", {"2024-02": [result("no_leak", False, note=dg.MetadataValue.text("x"))]}, ["2024-02"])
    assert failure.description == (
        "training_set[2024-02] failed blocking check no_leak (note=x): nothing was written, the previous training_set[2024-02] is kept"
    )
    assert describe(result("rows", False)) == "rows"
    assert describe(result("rows", False, n=dg.MetadataValue.int(3), f=dg.MetadataValue.float(0.5))) == "rows (n=3, f=0.5)"


def test_one_month_keeps_its_result_with_the_month_added():
    only = result("rows", False, "too few", share=0.7)
    (combined,) = combine({"2024-02": [only]}).values()
    assert (combined.check_name, combined.asset_key, combined.passed, combined.severity) == ("rows", KEY, False, dg.AssetCheckSeverity.ERROR)
    assert combined.description == "too few"
    assert plain(combined.metadata) == {"share": 0.7, "month": "2024-02"}
    warn = dg.AssetCheckResult(check_name="rows", asset_key=KEY, passed=True, severity=dg.AssetCheckSeverity.WARN)
    assert combine({"2024-01": [warn]})["rows"].severity == dg.AssetCheckSeverity.WARN


def test_months_of_one_check_combine_into_one_result():
    combined = combine({
        "2024-01": [result("rows", True, "fine", share=0.1), result("zones", True)],
        "2024-02": [result("rows", False, None, share=0.7)],
        "2024-03": [result("rows", True, "ok", share=0.2)],
    })  # fmt: skip
    rows = combined["rows"]
    assert (rows.check_name, rows.asset_key, rows.passed, rows.severity) == ("rows", KEY, False, dg.AssetCheckSeverity.ERROR)
    assert rows.description == "2024-01: fine; 2024-03: ok"
    assert plain(rows.metadata) == {
        "months": "2024-01, 2024-02, 2024-03", "failed_months": "2024-02",
        "by_month": {"2024-01": {"share": 0.1}, "2024-02": {"share": 0.7}, "2024-03": {"share": 0.2}},
    }  # fmt: skip
    assert plain(combined["zones"].metadata) == {"month": "2024-01"}
    passed = combine({"2024-01": [result("rows", True)], "2024-02": [result("rows", True)]})["rows"]
    assert passed.passed and passed.description is None
    assert plain(passed.metadata)["failed_months"] == "none" and plain(passed.metadata)["months"] == "2024-01, 2024-02"


def test_a_check_of_one_month_before_a_check_of_several_and_the_first_months_severity():
    warn = dg.AssetCheckResult(check_name="rows", asset_key=KEY, passed=False, severity=dg.AssetCheckSeverity.WARN)
    combined = combine({
        "2024-01": [result("zones", True), warn],
        "2024-02": [result("rows", False)],
        "2024-03": [result("rows", False)],
    })  # fmt: skip
    assert list(combined) == ["zones", "rows"]
    assert combined["rows"].severity == dg.AssetCheckSeverity.WARN  # the first month's
    assert plain(combined["rows"].metadata)["failed_months"] == "2024-01, 2024-02, 2024-03"
