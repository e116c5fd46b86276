"""Blocking checks of ``raw_trips``, evaluated in the asset before the month is written."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pyarrow as pa

from taxi_assets.ml.schema import NORMALIZED_SCHEMAS

RAW = dg.AssetKey("raw_trips")

# Share of a month's rides that must be picked up inside that month. TLC files carry a few
# rides from neighbouring days (and clock errors from 2008/2009); a file where most rides are
# outside the month is the wrong file.
MIN_PICKUPS_IN_MONTH = 0.9

raw_trips_check_specs = [
    dg.AssetCheckSpec("schema_matches", asset=RAW, blocking=True, description="Columns and types equal the normalized schema."),
    dg.AssetCheckSpec(
        "pickups_in_month",
        asset=RAW,
        blocking=True,
        description=f"At least {MIN_PICKUPS_IN_MONTH:.0%} of pickups fall inside the partition month.",
    ),
]


def check_schema(table: pa.Table, taxi_type: str) -> dg.AssetCheckResult:
    expected = NORMALIZED_SCHEMAS[taxi_type]
    mismatched = [
        f"{f.name}: {table.schema.field(f.name).type if f.name in table.column_names else 'missing'} != {f.type}"
        for f in expected
        if f.name not in table.column_names or table.schema.field(f.name).type != f.type
    ]
    return dg.AssetCheckResult(
        check_name="schema_matches",
        asset_key=RAW,
        passed=not mismatched and table.column_names == expected.names,
        metadata={"mismatches": ", ".join(mismatched) or "none", "columns": len(table.column_names)},
    )


def check_pickups_in_month(pickups: pd.Series, month_start, month_end) -> dg.AssetCheckResult:
    inside = float(((pickups >= month_start) & (pickups < month_end)).mean()) if len(pickups) else 0.0
    return dg.AssetCheckResult(
        check_name="pickups_in_month",
        asset_key=RAW,
        passed=inside >= MIN_PICKUPS_IN_MONTH,
        metadata={"share_inside": round(inside, 6), "threshold": MIN_PICKUPS_IN_MONTH},
    )
