"""The whole preparation of the reference window, our way vs the course's way, side by side.

Both read green 2024-01 and 2024-02, clean (1..60 minutes), build ``PU_DO``, split at
2024-02-01 on pickup time, vectorize train (fit) and validation (transform), and vectorize
the whole window as well. Each run is a fresh process (so peak RSS is per path); wall time is
the median of ``--runs`` runs, measured after imports. The two results are then compared
matrix by matrix: they must be identical.

    python benchmarks/prepare_vs_reference.py [--runs 5]

Target: ours at least 10x faster. Expected figures: full 105,870 x 7,027; train
54,378 x 5,094; validation 51,492 x 5,094.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

import _common as c  # the script's folder is on sys.path when run as a script

SCRIPT = Path(__file__).resolve()
MONTHS = ["2024-01", "2024-02"]
BOUNDARY = "2024-02-01"
# "ours" is exactly the pipeline's path (months pooled with pool_months, PU_DO categorical).
WAYS = ("ours", "reference")
EXPECTED = {"X_full": [105_870, 7_027], "X_train": [54_378, 5_094], "X_val": [51_492, 5_094]}


def run_case(args) -> None:
    paths = [c.green_path(m) for m in MONTHS]
    result, clock = c.timed_preparation(args.case, paths, "green", BOUNDARY, full_window=True)
    if args.out:
        c.save_matrices(result, Path(args.out))
    c.emit(**clock.fields(), shapes=c.shapes(result))


def main(argv=None) -> int:
    args = c.parse_case_args(argv, lambda p: p.add_argument("--runs", type=int, default=5))
    if args.case:
        run_case(args)
        return 0
    print(f"prepare_vs_reference: green {' + '.join(MONTHS)}, split at {BOUNDARY}; {c.machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-prep-") as tmp:
        saved = {way: Path(tmp) / f"{way}.npz" for way in WAYS}
        # Runs are interleaved (ours, reference, ours, ...) so background load on a shared
        # machine hits every path alike; the first run of each path also saves its matrices
        # (after its clock stopped).
        runs = {way: [] for way in WAYS}
        for i in range(args.runs):
            for way in WAYS:
                extra = ("--out", str(saved[way])) if i == 0 else ()
                runs[way].append(c.run_case(SCRIPT, way, *extra))
        results = {}
        for way, done in runs.items():
            walls = sorted(r["wall_seconds"] for r in done)
            results[way] = {
                "wall": statistics.median(walls),
                "walls": walls,
                "cpu": statistics.median(r["cpu_seconds"] for r in done),
                "peak": statistics.median(r["peak_rss_mib"] for r in done),
                "before": done[0]["rss_before_mib"],
                "shapes": done[0]["shapes"],
                "load": c.load_range(done),
            }
        verdicts = c.compare_saved(saved["ours"], saved["reference"])
    ours, ref = results["ours"], results["reference"]
    c.print_table(
        ["path", f"wall s (median of {args.runs})", "min..max s", "CPU s (median)", "peak RSS MiB", "RSS after imports MiB",
         "growth MiB", "load avg (1 min)"],
        [
            [way, f"{r['wall']:.3f}", f"{r['walls'][0]:.3f}..{r['walls'][-1]:.3f}", f"{r['cpu']:.3f}", r["peak"], r["before"],
             r["peak"] - r["before"], r["load"]]
            for way, r in results.items()
        ],
        title="Preparation, read to vectorized matrices",
    )
    speedup = ref["wall"] / ours["wall"]
    print(f"\nspeedup (median wall): {speedup:.1f}x (target >= 10x: {'met' if speedup >= 10 else 'NOT met'}); "
          f"best wall vs best wall {ref['walls'][0] / ours['walls'][0]:.1f}x; CPU time {ref['cpu'] / ours['cpu']:.1f}x")
    print(f"peak RSS: ours {ours['peak']:.0f} MiB vs reference {ref['peak']:.0f} MiB")
    c.print_table(
        ["matrix", "ours", "reference", "expected"],
        [[k, " x ".join(f"{v:,}" for v in ours["shapes"][k]), " x ".join(f"{v:,}" for v in ref["shapes"][k]),
          " x ".join(f"{v:,}" for v in EXPECTED[k])] for k in ("X_full", "X_train", "X_val")],
        title="Shapes",
    )
    c.print_table(["item", "ours vs reference"], verdicts, title="Identical output")
    identical = all(v == "identical" or v.startswith("equal") for row in verdicts for v in row[1:])
    shapes_ok = all(r["shapes"][k] == EXPECTED[k] for r in results.values() for k in EXPECTED)
    print(f"\nidentical matrices: {identical}; shapes as expected: {shapes_ok}")
    if not (identical and shapes_ok):
        print("ERROR: the two preparations disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
