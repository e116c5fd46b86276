"""How our preparation grows with the size of a month: 1x, 4x and 16x a green month.

Green 2024-01 (56,551 rides) is resampled with a fixed seed to k times its rides (k = 1, 4,
16) and written as a green file; each size is prepared (read the five needed columns,
normalize, clean, ``PU_DO``, split at the 16th, vectorize) in fresh processes, median of
``--runs``. Printed: wall seconds, peak RSS, the growth above the RSS after imports, and the
ratio of each figure to the previous size. Linear growth means a ratio near 4 for the work;
at 1x the fixed costs dominate, so the first ratio is expected below 4.

    python benchmarks/scale.py [--factors 1,4,16] [--runs 3]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import _common as c  # the script's folder is on sys.path when run as a script

SCRIPT = Path(__file__).resolve()
SOURCE_MONTH = "2024-01"
BOUNDARY = "2024-01-16"


def run_case(args) -> None:
    result, clock = c.timed_preparation("ours", [Path(args.input[0])], "green", BOUNDARY)
    c.emit(**clock.fields(), shapes=c.shapes(result))


def _options(parser) -> None:
    parser.add_argument("--factors", default="1,4,16")
    parser.add_argument("--runs", type=int, default=3)


def main(argv=None) -> int:
    args = c.parse_case_args(argv, _options)
    if args.case:
        run_case(args)
        return 0
    factors = [int(f) for f in args.factors.split(",")]
    import pyarrow.parquet as pq

    base_rows = pq.read_metadata(c.green_path(SOURCE_MONTH)).num_rows
    print(f"scale: green {SOURCE_MONTH} ({base_rows:,} rides) resampled x{', x'.join(map(str, factors))}; {c.machine()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        files = {k: c.resample_green_month(SOURCE_MONTH, base_rows * k, Path(tmp) / f"x{k}.parquet") for k in factors}
        # Interleave the sizes run by run so background load spreads over all of them.
        runs = {k: [] for k in factors}
        for _ in range(args.runs):
            for k in factors:
                runs[k].append(c.run_case(SCRIPT, "ours", "--input", str(files[k])))
    previous = None
    for k in factors:
        wall = statistics.median(r["wall_seconds"] for r in runs[k])
        cpu = statistics.median(r["cpu_seconds"] for r in runs[k])
        peak = statistics.median(r["peak_rss_mib"] for r in runs[k])
        growth = statistics.median(r["peak_rss_mib"] - r["rss_before_mib"] for r in runs[k])
        shapes = runs[k][0]["shapes"]
        ratio = (
            ("-", "-", "-") if previous is None
            else (f"{wall / previous[0]:.2f}", f"{peak / previous[1]:.2f}", f"{growth / previous[2]:.2f}")
        )
        rows.append([f"x{k}", base_rows * k, shapes["window_rows"], shapes["X_train"][1], f"{wall:.3f}", f"{cpu:.3f}", peak,
                     growth, *ratio, c.load_range(runs[k])])
        previous = (wall, peak, growth)
    c.print_table(
        ["size", "rides", "cleaned", "train features", "wall s", "CPU s", "peak RSS MiB", "RSS growth MiB",
         "wall ratio", "peak ratio", "growth ratio", "load avg (1 min)"],
        rows,
        title=f"Preparation of one month by size (median of {args.runs}; ratios to the previous size)",
    )
    first, last = rows[0], rows[-1]
    size_ratio = factors[-1] / factors[0]
    print(f"\nx{factors[0]} -> x{factors[-1]} ({size_ratio:.0f}x the rides): wall x{float(last[4]) / float(first[4]):.1f}, "
          f"CPU x{float(last[5]) / float(first[5]):.1f}, RSS growth x{last[7] / first[7]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
