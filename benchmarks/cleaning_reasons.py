"""Rows dropped and flagged by reason, for every real month in the shared folder.

The course's cleaning (``taxi_assets.ml.cleaning.clean_trips``, rides of 1-60 minutes) on each
green month as ``raw_trips``/``cleaned_trips`` read it (every raw column): rows in, rows kept,
rows dropped for each exclusive reason (whole-row duplicates, missing values, invalid zone id,
too short, too long; with ``--drop-voided`` the reversals of voided rides, with
``--max-distance`` ``distance_above_max``), voided rides (pairs in the month, reversals kept)
and kept rows flagged for an impossible distance (negative, over 100 miles, implied speed over
100 mph), with the flagged share and the longest kept distance.
No timing: these are the figures the issue asks for, and a regression check that no real month
holds an invalid zone id (exit 1 if one does, or if a row is unaccounted for).

    python benchmarks/cleaning_reasons.py                    # every month in the shared folder
    python benchmarks/cleaning_reasons.py --max-distance 100 # with the run-config distance bound
    python benchmarks/cleaning_reasons.py --drop-voided      # with drop_voided_rides on
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyarrow.parquet as pq  # noqa: E402
from _common import SHARED_DATA  # noqa: E402

from taxi_assets.ml import cleaning, schema  # noqa: E402

DROPPED = ["duplicate_rows", "missing_values", "invalid_zone_id", "duration_below_min", "duration_above_max", "voided_reversal", "distance_above_max"]
FLAGGED = ["negative", "over_100_miles", "implied_speed_over_100_mph"]
HEADERS = {
    "duplicate_rows": "dup rows",
    "voided_reversal": "voided",
    "missing_values": "missing",
    "invalid_zone_id": "bad zone",
    "duration_below_min": "< 1 min",
    "duration_above_max": "> 60 min",
    "distance_above_max": "> max mi",
    "negative": "neg mi",
    "over_100_miles": "> 100 mi",
    "implied_speed_over_100_mph": "> 100 mph",
}


def month_report(path: Path, max_distance: float | None, drop_voided: bool):
    normalized, _ = schema.normalize_table(pq.read_table(path), "green", path.name)
    cleaned, report = cleaning.clean_trips(normalized.to_pandas(), max_distance_miles=max_distance, drop_voided=drop_voided)
    return report, float(cleaned["trip_distance"].max()) if len(cleaned) else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=SHARED_DATA, help="folder of green_tripdata_YYYY-MM.parquet")
    parser.add_argument("--max-distance", type=float, default=None, help="also drop rides longer than this (miles)")
    parser.add_argument("--drop-voided", action="store_true", help="also drop the reversals of voided rides")
    args = parser.parse_args(argv)

    paths = sorted(args.folder.glob("green_tripdata_*.parquet"))
    if not paths:
        print(f"no green_tripdata_*.parquet in {args.folder}", file=sys.stderr)
        return 1
    optional = {"distance_above_max": args.max_distance is not None, "voided_reversal": args.drop_voided}
    dropped = [r for r in DROPPED if optional.get(r, True)]
    columns = ["month", "rows in", "kept"] + [HEADERS[r] for r in dropped] + ["voided pairs", "reversals kept"]
    columns += [HEADERS[r] for r in FLAGGED]
    columns += ["flagged %", "max kept mi"]
    rows, problems = [], []
    totals = {key: 0 for key in ["rows in", "kept", *dropped, "pairs", "reversals kept", *FLAGGED]}
    for path in paths:
        month = path.name[len("green_tripdata_") : -len(".parquet")]
        report, longest = month_report(path, args.max_distance, args.drop_voided)
        if report.rows_in != report.rows_out + sum(report.dropped.values()):
            problems.append(f"{month}: {report.rows_in - report.rows_out - sum(report.dropped.values())} rows unaccounted for")
        if report.dropped["invalid_zone_id"]:
            problems.append(f"{month}: {report.dropped['invalid_zone_id']} rows with an invalid zone id")
        values = [report.dropped.get(r, 0) for r in dropped] + [report.voided_pairs, report.voided_kept]
        values += [report.flagged[r] for r in FLAGGED]
        rows.append([month, f"{report.rows_in:,}", f"{report.rows_out:,}", *(f"{v:,}" for v in values),
                     f"{100 * report.flagged_share:.3f}", f"{longest:,.2f}"])  # fmt: skip
        totals["rows in"] += report.rows_in
        totals["kept"] += report.rows_out
        for reason in dropped:
            totals[reason] += report.dropped.get(reason, 0)
        totals["pairs"] += report.voided_pairs
        totals["reversals kept"] += report.voided_kept
        for reason in FLAGGED:
            totals[reason] += report.flagged[reason]
    flagged_total = sum(totals[r] for r in FLAGGED)
    rows.append(["all", f"{totals['rows in']:,}", f"{totals['kept']:,}", *(f"{totals[r]:,}" for r in [*dropped, "pairs", "reversals kept", *FLAGGED]),
                 f"{100 * flagged_total / max(totals['kept'], 1):.3f}", ""])  # fmt: skip

    bound = f", rides over {args.max_distance:g} miles dropped" if args.max_distance is not None else ""
    bound += ", reversals of voided rides dropped" if args.drop_voided else ""
    print(f"Cleaning by reason, green months in {args.folder} (1-60 minutes{bound}):")
    widths = [max(len(str(row[i])) for row in [columns, *rows]) for i in range(len(columns))]
    print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(columns, widths))))
    for row in rows:
        print("  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(row, widths))))
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
