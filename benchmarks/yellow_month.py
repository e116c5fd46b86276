"""Preparing a yellow-sized month (3.4 million rides): ours vs the course's list of dicts.

A yellow-schema month is synthesized from the shared green months (``lpep_*`` renamed
``tpep_*``, ``ehail_fee``/``trip_type`` dropped, ``Airport_fee`` added, rides resampled with a
fixed seed to 3.4M and shifted into one month; see ``_common.make_yellow_month``) and written
to a temp parquet. Then, each in a fresh process:

* ``ours``: read the five needed columns, normalize them, clean, ``PU_DO``, split on pickup
  time, vectorize (fit on train, transform validation) - median of ``--runs`` runs;
* ``ingest``: what ``raw_trips`` does before that: read the whole file, ``normalize_table``,
  write it zstd-compressed (the Dagster path stores the normalized month once);
* ``reference``: the course's code on the same file (whole-file read, per-row ``apply``,
  ``astype(str)``, ``to_dict("records")`` + ``DictVectorizer``), one run, stopped after
  ``--reference-timeout`` seconds.

The split is at the 16th of the month (about half and half): a single month stands in for a
training window. When the reference finishes, its matrices are compared with ours.

    python benchmarks/yellow_month.py [--rows 3400000] [--runs 3] [--reference-timeout 900]

Targets for ours: under 10 s wall and under 2 GiB peak RSS.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import _common as c  # the script's folder is on sys.path when run as a script

SCRIPT = Path(__file__).resolve()
MONTH = "2023-03"  # the TLC's yellow 2023-03 had 3.40M rides
BOUNDARY = "2023-03-16"
WALL_TARGET_S = 10.0
RSS_TARGET_MIB = 2048.0


def run_case(args) -> None:
    path = Path(args.input[0])
    if args.case == "ingest":
        c.preload_libraries()
        import pyarrow.parquet as pq

        from taxi_assets.ml.schema import normalize_table

        with c.Clock() as clock:
            table, report = normalize_table(pq.read_table(path), "yellow", path.name)
            pq.write_table(table, Path(args.out), compression="zstd")
        c.emit(**clock.fields(), rows=table.num_rows,
               cast=report.cast_columns, dropped=report.dropped_columns, stored_mib=Path(args.out).stat().st_size / c.MIB)
        return
    result, clock = c.timed_preparation(args.case, [path], "yellow", BOUNDARY)
    if args.out:
        c.save_matrices(result, Path(args.out))
    c.emit(**clock.fields(), shapes=c.shapes(result))


def _options(parser) -> None:
    parser.add_argument("--rows", type=int, default=3_400_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--reference-timeout", type=float, default=900.0)
    parser.add_argument("--skip-reference", action="store_true")


def main(argv=None) -> int:
    args = c.parse_case_args(argv, _options)
    if args.case:
        run_case(args)
        return 0
    print(f"yellow_month: {args.rows:,} synthetic yellow rides ({MONTH}), split at {BOUNDARY}; {c.machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-yellow-") as tmp:
        tmp = Path(tmp)
        month_file = tmp / f"yellow_tripdata_{MONTH}.parquet"
        started = time.perf_counter()
        c.make_yellow_month(MONTH, args.rows, month_file)
        print(f"built {month_file.name}: {month_file.stat().st_size / c.MIB:.0f} MiB in {time.perf_counter() - started:.1f} s")

        ingest = c.run_case(SCRIPT, "ingest", "--input", str(month_file), "--out", str(tmp / "normalized.parquet"))
        ours_runs = [
            c.run_case(SCRIPT, "ours", "--input", str(month_file), *(("--out", str(tmp / "ours.npz")) if i == 0 else ()))
            for i in range(args.runs)
        ]
        ours = dict(ours_runs[0])
        ours["wall_seconds"] = statistics.median(r["wall_seconds"] for r in ours_runs)
        ours["peak_rss_mib"] = statistics.median(r["peak_rss_mib"] for r in ours_runs)
        ours["cpu_seconds"] = statistics.median(r["cpu_seconds"] for r in ours_runs)
        walls = sorted(r["wall_seconds"] for r in ours_runs)
        if args.skip_reference:
            reference = {"skipped": True}
        else:
            reference = c.run_case(
                SCRIPT, "reference", "--input", str(month_file), "--out", str(tmp / "reference.npz"),
                timeout=args.reference_timeout,
            )
        verdicts = c.compare_saved(tmp / "ours.npz", tmp / "reference.npz") if "wall_seconds" in reference else []

    rows = [
        ["ours: read 5 columns .. vectorized split", f"{ours['wall_seconds']:.2f} (median of {args.runs}: "
         f"{walls[0]:.2f}..{walls[-1]:.2f})", f"{ours['cpu_seconds']:.2f}", ours["peak_rss_mib"], ours["rss_before_mib"],
         c.load_range(ours_runs)],
        ["ingest (raw_trips): read all, normalize, write zstd", f"{ingest['wall_seconds']:.2f}",
         f"{ingest['cpu_seconds']:.2f}", ingest["peak_rss_mib"], ingest["rss_before_mib"], c.load_range([ingest])],
    ]
    if "wall_seconds" in reference:
        rows.append(["reference (course), 1 run", f"{reference['wall_seconds']:.2f}", f"{reference['cpu_seconds']:.2f}",
                     reference["peak_rss_mib"], reference["rss_before_mib"], c.load_range([reference])])
    elif reference.get("timed_out"):
        rows.append(["reference (course), 1 run", f"> {args.reference_timeout:.0f} (stopped)", "n/a", "n/a", "n/a", "n/a"])
    else:
        rows.append(["reference (course)", "skipped", "n/a", "n/a", "n/a", "n/a"])
    c.print_table(["path", "wall s", "CPU s", "peak RSS MiB", "RSS after imports MiB", "load avg (1 min)"], rows, title="Yellow month preparation")
    shapes = ours["shapes"]
    print(f"\nours: window {shapes['window_rows']:,} cleaned rides; train {shapes['X_train'][0]:,} x {shapes['X_train'][1]:,}; "
          f"validation {shapes['X_val'][0]:,} x {shapes['X_val'][1]:,}")
    print(f"ingest: {ingest['rows']:,} rows, stored {ingest['stored_mib']:.0f} MiB, cast {ingest['cast'] or 'nothing'}")
    wall_ok = ours["wall_seconds"] < WALL_TARGET_S
    rss_ok = ours["peak_rss_mib"] < RSS_TARGET_MIB
    print(f"targets: wall < {WALL_TARGET_S:.0f} s {'met' if wall_ok else 'NOT met'}; "
          f"peak RSS < {RSS_TARGET_MIB / 1024:.0f} GiB {'met' if rss_ok else 'NOT met'}")
    if "wall_seconds" in reference:
        print(f"speedup vs reference: {reference['wall_seconds'] / ours['wall_seconds']:.1f}x; "
              f"peak RSS {reference['peak_rss_mib'] / ours['peak_rss_mib']:.1f}x lower")
        c.print_table(["item", "ours vs reference"], verdicts, title="Identical output")
        if not all(v == "identical" or v.startswith("equal") for _, v in verdicts):
            print("ERROR: ours and the reference disagree", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
