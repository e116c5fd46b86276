"""Blocking checks judge an output *before* it replaces anything.

Each asset computes its months' outputs in memory, evaluates its checks on them and only then
hands them to the IO manager. A month that fails a blocking check fails the step before
anything is written: the previous file stays byte-identical, no materialization of that month
is recorded, and the failure names the asset, month and check and says the previous output
was kept. A ranged run is judged month by month and written only if every month passes.

In a ranged run Dagster records one evaluation per check for the whole step (check results
carry no partition), so :func:`combine` merges the months' results: passed only if every
month passed, with the months' figures in the metadata.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg


def _value(v: Any) -> Any:
    return getattr(v, "value", getattr(v, "text", v))


def describe(result: dg.AssetCheckResult) -> str:
    """``check_name (key=value, ...)`` of a failed result, for the failure message."""
    details = ", ".join(f"{k}={_value(v)}" for k, v in (result.metadata or {}).items())
    return f"{result.check_name}" + (f" ({details})" if details else "")


def gate(asset: str, results: Mapping[str, Sequence[dg.AssetCheckResult]]) -> Iterator[dg.AssetCheckResult]:
    """Yield nothing when every blocking result passed; otherwise yield the failed results and
    raise a permanent :class:`dagster.Failure` naming the asset, months and checks."""
    failed = {month: [r for r in rs if not r.passed] for month, rs in results.items()}
    failed = {month: rs for month, rs in failed.items() if rs}
    if not failed:
        return
    yield from combine({month: rs for month, rs in failed.items()}).values()
    raise refusal(asset, failed, list(results))


def refusal(asset: str, failed: Mapping[str, Sequence[dg.AssetCheckResult]], months: Sequence[str]) -> dg.Failure:
    """The permanent failure of a step whose months ``failed`` a blocking judgement, naming the
    asset, months and checks and saying that nothing was written."""
    problems = "; ".join(
        f"{asset}[{month}] failed blocking check {', '.join(describe(r) for r in rs)}" for month, rs in failed.items()
    )
    kept = ", ".join(f"{asset}[{m}]" for m in months)
    return dg.Failure(description=f"{problems}: nothing was written, the previous {kept} is kept", allow_retries=False)


def combine(results: Mapping[str, Sequence[dg.AssetCheckResult]]) -> dict[str, dg.AssetCheckResult]:
    """One result per check over the months of the step (see the module docstring)."""
    by_check: dict[str, list[tuple[str, dg.AssetCheckResult]]] = {}
    for month, month_results in results.items():
        for result in month_results:
            by_check.setdefault(result.check_name, []).append((month, result))
    combined = {}
    for name, pairs in by_check.items():
        if len(pairs) == 1:
            month, only = pairs[0]
            combined[name] = dg.AssetCheckResult(
                check_name=only.check_name,
                asset_key=only.asset_key,
                passed=only.passed,
                severity=only.severity,
                description=only.description,
                metadata={**(only.metadata or {}), "month": month},
            )
            continue
        first = pairs[0][1]
        combined[name] = dg.AssetCheckResult(
            check_name=name,
            asset_key=first.asset_key,
            passed=all(r.passed for _, r in pairs),
            severity=first.severity,
            description="; ".join(f"{m}: {r.description}" for m, r in pairs if r.description) or None,
            metadata={
                "months": ", ".join(m for m, _ in pairs),
                "failed_months": ", ".join(m for m, r in pairs if not r.passed) or "none",
                "by_month": dg.MetadataValue.json(
                    {m: {k: _value(v) for k, v in (r.metadata or {}).items()} for m, r in pairs}
                ),
            },
        )
    return combined
