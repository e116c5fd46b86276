"""Shared helpers of the benchmarks: data locations, synthetic months, the two preparation
paths (ours and the course's reference) and running one case per fresh subprocess.

Why a subprocess per case: peak RSS (``ru_maxrss``) only ever grows inside a process, so two
paths measured in one process would report the larger peak for both. Each case therefore runs
in ``python <script> --case NAME ...``, imports everything it needs *before* the clock starts
(both paths pay the same interpreter and library start-up, which is not preparation work),
and prints one JSON line with its wall seconds and its peak RSS. The parent collects the lines
and prints the tables.

Nothing here imports dagster: the benchmarks time the ML core the assets call.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# The repository root on sys.path (a script's own folder is there already): the benchmarks import
# support/, the helpers they share with the tests (real months cleaned, ports, a registered
# champion, the scoring server), never taxi_assets_tests.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
SHARED_DATA = Path(os.environ.get("TAXI_DATA_SOURCE", REPO_ROOT.parent / "shared" / "data" / "nyc-tlc")).resolve()
RESULT_MARKER = "@@BENCH@@ "
PROGRESS_MARKER = "@@PROGRESS@@ "
MIB = 1024 * 1024


# --- measurement ----------------------------------------------------------------------------


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB.

    Read from ``VmHWM`` in ``/proc/self/status`` (the high-water mark of this process's own
    address space). ``getrusage(RUSAGE_SELF).ru_maxrss`` is not used on Linux because it
    survives ``execve``: a child started by a parent holding 400 MiB would report at least
    400 MiB whatever it did itself.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mib() -> float:
    """Resident set size right now (from ``/proc/self/statm``), in MiB."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / MIB


def emit(**fields) -> None:
    """Child side: print the case's result as one marked JSON line (with its peak RSS and the
    1-minute load average when it finished, so every figure says how busy the machine was)."""
    fields.setdefault("peak_rss_mib", round(peak_rss_mib(), 1))
    fields.setdefault("load_avg", round(os.getloadavg()[0], 2))
    print(RESULT_MARKER + json.dumps(fields), flush=True)


def run_case(script: Path, case: str, *args: str, timeout: float | None = None, env: dict | None = None) -> dict:
    """Parent side: run ``script --case case args`` in a fresh interpreter and return its JSON.

    A case that exceeds ``timeout`` seconds is stopped and reported as ``{"timed_out": True}``
    with the peak RSS it had reached (read from its ``/proc`` entry just before stopping it)
    and any progress lines it printed (``PROGRESS_MARKER``). A case that fails raises with its
    stderr tail, so a broken benchmark never prints figures.
    """
    command = [sys.executable, str(script), "--case", case, *args]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        peak = _peak_rss_of(process.pid)
        process.kill()
        stdout, _ = process.communicate()
        return {
            "timed_out": True,
            "timeout_seconds": timeout,
            "process_seconds": time.perf_counter() - started,
            "peak_rss_mib": peak,
            "progress": [json.loads(line[len(PROGRESS_MARKER):]) for line in stdout.splitlines()
                         if line.startswith(PROGRESS_MARKER)],
        }
    if process.returncode != 0:
        raise RuntimeError(f"case {case!r} of {script.name} failed (exit {process.returncode}):\n{stderr[-3000:]}")
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if not lines:
        raise RuntimeError(f"case {case!r} of {script.name} printed no result line:\n{stdout[-2000:]}")
    result = json.loads(lines[-1][len(RESULT_MARKER) :])
    result["process_seconds"] = time.perf_counter() - started
    return result


def progress(**fields) -> None:
    """Child side: report intermediate progress (kept by the parent if the case is stopped)."""
    fields.setdefault("peak_rss_mib", round(peak_rss_mib(), 1))
    print(PROGRESS_MARKER + json.dumps(fields), flush=True)


def _peak_rss_of(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def repeat_case(script: Path, case: str, runs: int, *args: str, timeout: float | None = None) -> dict:
    """Run a case ``runs`` times (each in its own process); medians of wall and peak RSS."""
    results = [run_case(script, case, *args, timeout=timeout) for _ in range(runs)]
    if any(r.get("timed_out") for r in results):
        return results[0] | {"timed_out": True}
    merged = dict(results[0])
    merged["runs"] = runs
    merged["wall_seconds_all"] = [round(r["wall_seconds"], 3) for r in results]
    merged["wall_seconds"] = statistics.median(r["wall_seconds"] for r in results)
    merged["peak_rss_mib"] = statistics.median(r["peak_rss_mib"] for r in results)
    return merged


def load_range(results: Sequence[dict]) -> str:
    """The 1-minute load averages the cases saw when they finished, as ``min..max``."""
    loads = [r["load_avg"] for r in results if r.get("load_avg") is not None]
    if not loads:
        return "n/a"
    return f"{min(loads):.1f}" if min(loads) == max(loads) else f"{min(loads):.1f}..{max(loads):.1f}"


def machine() -> str:
    """One line describing where the figures were measured."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count()
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/meminfo") as handle:
        mem_kib = int(handle.readline().split()[1])
    return (
        f"{time.strftime('%Y-%m-%d')}, {cpus} cores ({model}), {mem_kib / MIB:.0f} GiB RAM, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f} at start"
    )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None) -> None:
    """A small fixed-width table (also valid Markdown, so it pastes into the README)."""
    cells = [[str(h) for h in headers]] + [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    if title:
        print(f"\n{title}")
    for i, row in enumerate(cells):
        print("| " + " | ".join(v.rjust(w) if i else v.ljust(w) for v, w in zip(row, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def preload_libraries() -> None:
    """Import what either preparation path touches, so no path is timed paying for imports.

    (Our vectorizer imports sklearn lazily to keep the code location fast to load; without this
    the first call would add ~1.3 s of import to our timing and none to the reference's.)
    """
    import pyarrow.dataset  # noqa: F401  (pq.read_table imports it on first call)
    import pyarrow.pandas_compat  # noqa: F401  (so does the first Table.to_pandas)
    import pyarrow.parquet  # noqa: F401
    import scipy.sparse  # noqa: F401
    import sklearn.feature_extraction  # noqa: F401

    import taxi_assets.ml.dataset  # noqa: F401  (taxi_assets/__init__.py imports nothing: no Dagster)


# --- data -----------------------------------------------------------------------------------


def green_path(month: str) -> Path:
    path = SHARED_DATA / f"green_tripdata_{month}.parquet"
    if not path.exists():
        raise FileNotFoundError(
            f"{path.name} is missing in {SHARED_DATA}: set TAXI_DATA_SOURCE to the folder holding the green months"
        )
    return path


def green_months(first: str, last: str) -> list[str]:
    import pandas as pd

    return [p.strftime("%Y-%m") for p in pd.period_range(first, last, freq="M")]


def resample_green_month(month: str, rows: int, out: Path, seed: int = 7) -> Path:
    """``rows`` rides drawn with replacement (fixed seed) from one green month, as a green file.

    Resampling keeps the month's mix of pairs, distances and durations, so a k-times month
    behaves like a busier month of the same city, not like k unrelated months.
    """
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(green_path(month))
    picks = np.random.default_rng(seed).integers(0, table.num_rows, size=rows)
    pq.write_table(table.take(picks), out)
    return out


# Yellow files name the columns as the TLC's yellow months do (2024: ``Airport_fee``, capital A,
# which the normalizer renames), in the yellow column order.
YELLOW_ORDER = [
    "VendorID",
    "tpep_pickup_datetime",
    "tpep_dropoff_datetime",
    "passenger_count",
    "trip_distance",
    "RatecodeID",
    "store_and_fwd_flag",
    "PULocationID",
    "DOLocationID",
    "payment_type",
    "fare_amount",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "improvement_surcharge",
    "total_amount",
    "congestion_surcharge",
    "Airport_fee",
]
AIRPORT_ZONES = (1, 132, 138)  # Newark, JFK, LaGuardia


def make_yellow_month(
    month: str,
    rows: int,
    out: Path,
    source_months: Sequence[str] | None = None,
    seed: int = 2024,
    airport_fee_name: str = "Airport_fee",
) -> Path:
    """A yellow-schema month of ``rows`` rides, resampled (fixed seed) from green months.

    Green columns ``lpep_*`` become ``tpep_*``; the green-only ``ehail_fee`` and ``trip_type``
    are dropped; ``Airport_fee`` is added (1.75 for pickups at Newark/JFK/LaGuardia, else 0).
    Each drawn ride keeps its duration and its offset into its own month (clipped to the
    target month's length), so pickups fall inside ``month`` and durations keep the real
    distribution, including the implausible ones that cleaning must drop.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    source_months = list(source_months or green_months("2023-02", "2024-02"))
    table = pa.concat_tables(
        [pq.read_table(green_path(m)).drop_columns(["ehail_fee", "trip_type"]) for m in source_months],
        promote_options="permissive",
    )
    picks = np.random.default_rng(seed).integers(0, table.num_rows, size=rows)
    table = table.take(picks)

    pickup = table.column("lpep_pickup_datetime").to_numpy().astype("datetime64[us]")
    dropoff = table.column("lpep_dropoff_datetime").to_numpy().astype("datetime64[us]")
    start = np.datetime64(f"{month}-01", "us")
    length = (np.datetime64(f"{month}-01", "M") + 1).astype("datetime64[us]") - start
    offset = pickup - pickup.astype("datetime64[M]").astype("datetime64[us]")
    offset = np.minimum(offset, length - np.timedelta64(1, "s"))
    new_pickup = start + offset
    new_dropoff = new_pickup + (dropoff - pickup)

    pu = table.column("PULocationID")
    airport = pc.if_else(pc.is_in(pu, pa.array(AIRPORT_ZONES, pu.type)), 1.75, 0.0)
    columns = {
        name: table.column(name) for name in table.column_names if name not in ("lpep_pickup_datetime", "lpep_dropoff_datetime")
    }
    columns["tpep_pickup_datetime"] = pa.array(new_pickup, pa.timestamp("us"))
    columns["tpep_dropoff_datetime"] = pa.array(new_dropoff, pa.timestamp("us"))
    columns[airport_fee_name] = airport
    order = [airport_fee_name if c == "Airport_fee" else c for c in YELLOW_ORDER]
    pq.write_table(pa.table({name: columns[name] for name in order}), out)
    return out


# --- the two preparation paths --------------------------------------------------------------


def read_needed(path: Path, taxi_type: str):
    """Our read: only the five columns cleaning needs, renamed and cast to the normalized types.

    (``normalize_table`` always returns the full schema; on a five-column read it would
    allocate null columns for the other fifteen, ~1.2 s and ~390 MiB on a 3.4M-ride month, so
    the subset is cast with the same target types here.)
    """
    import pyarrow.parquet as pq

    from taxi_assets.ml.cleaning import CLEAN_INPUT_COLUMNS
    from taxi_assets.ml.schema import NORMALIZED_SCHEMAS, SOURCE_RENAMES, SchemaError, source_columns

    wanted = source_columns(taxi_type, CLEAN_INPUT_COLUMNS)
    try:
        table = pq.read_table(path, columns=wanted)
    except Exception as exc:  # pyarrow raises ArrowInvalid / KeyError-like errors for absent columns
        raise SchemaError(f"{path.name}: cannot read columns {', '.join(wanted)}: {exc}") from exc
    renames = SOURCE_RENAMES[taxi_type]
    table = table.rename_columns([renames.get(n, n) for n in table.column_names])
    target = NORMALIZED_SCHEMAS[taxi_type]
    for i, name in enumerate(table.column_names):
        want = target.field(name).type
        if table.column(i).type != want:
            table = table.set_column(i, name, table.column(i).cast(want, safe=True))
    return table.to_pandas()


def prepare_ours(paths: Sequence[Path], taxi_type: str, boundary: str, full_window: bool = False) -> dict:
    """Our preparation, exactly the pipeline's path: column read, vectorized cleaning and
    ``PU_DO``, months pooled with ``pool_months`` (as the ``training_set`` asset pools them,
    ``PU_DO`` kept categorical), split on pickup time, column-wise vectorizer.
    """
    import pandas as pd

    from taxi_assets.ml import vectorize
    from taxi_assets.ml.cleaning import clean_trips
    from taxi_assets.ml.dataset import build_training_set, pool_months
    from taxi_assets.ml.features import FEATURE_COLUMNS

    cleaned = [clean_trips(read_needed(p, taxi_type))[0] for p in paths]
    pooled = pool_months(cleaned)
    ts = build_training_set(pooled, pd.Timestamp(boundary))
    out = {
        "X_train": ts.X_train,
        "X_val": ts.X_val,
        "y_train": ts.y_train,
        "y_val": ts.y_val,
        "feature_names": ts.feature_names,
        "window_rows": len(pooled),
    }
    if full_window:
        X_full, dv_full = vectorize.fit_transform(pooled[FEATURE_COLUMNS])
        out.update(X_full=X_full, full_feature_names=list(dv_full.feature_names_))
    return out


def prepare_reference(paths: Sequence[Path], taxi_type: str, boundary: str, full_window: bool = False) -> dict:
    """The course's preparation, step for step (per-row ``apply`` and a list of dicts)."""
    import pandas as pd
    from sklearn.feature_extraction import DictVectorizer

    prefix = {"green": "lpep", "yellow": "tpep"}[taxi_type]
    categorical = ["PULocationID", "DOLocationID"]

    def read_dataframe(filename):
        df = pd.read_parquet(filename)
        df["duration"] = df[f"{prefix}_dropoff_datetime"] - df[f"{prefix}_pickup_datetime"]
        df.duration = df.duration.apply(lambda td: td.total_seconds() / 60)
        df = df[(df.duration >= 1) & (df.duration <= 60)]
        df[categorical] = df[categorical].astype(str)
        return df

    df = pd.concat([read_dataframe(p) for p in paths], ignore_index=True)
    df["PU_DO"] = df["PULocationID"] + "_" + df["DOLocationID"]
    features = ["PU_DO", "trip_distance"]
    split = df[f"{prefix}_pickup_datetime"] < boundary
    df_train, df_val = df[split], df[~split]
    dv = DictVectorizer()
    X_train = dv.fit_transform(df_train[features].to_dict(orient="records"))
    X_val = dv.transform(df_val[features].to_dict(orient="records"))
    out = {
        "X_train": X_train,
        "X_val": X_val,
        "y_train": df_train["duration"].to_numpy(),
        "y_val": df_val["duration"].to_numpy(),
        "feature_names": list(dv.feature_names_),
        "window_rows": len(df),
    }
    if full_window:
        dv_full = DictVectorizer()
        out.update(
            X_full=dv_full.fit_transform(df[features].to_dict(orient="records")),
            full_feature_names=list(dv_full.feature_names_),
        )
    return out


PATHS = {
    "ours": prepare_ours,
    "reference": prepare_reference,
}


class Clock:
    """Wall and CPU seconds of a block, and the RSS when it started.

    CPU seconds (all threads of this process) are reported next to wall seconds because the
    benchmark machine may be shared: other processes stretch the wall time of a case, much
    less its CPU time.
    """

    def __enter__(self) -> Clock:
        self.rss_before = current_rss_mib()
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu
        self.peak = peak_rss_mib()

    def fields(self) -> dict:
        return {"wall_seconds": self.wall, "cpu_seconds": self.cpu, "peak_rss_mib": round(self.peak, 1),
                "rss_before_mib": round(self.rss_before, 1)}


def timed_preparation(way: str, paths: Sequence[Path], taxi_type: str, boundary: str, full_window: bool = False):
    """Run one path after preloading libraries; return ``(result, clock)``."""
    preload_libraries()
    with Clock() as clock:
        result = PATHS[way](paths, taxi_type, boundary, full_window)
    return result, clock


def shapes(result: dict) -> dict:
    out = {k: list(result[k].shape) for k in ("X_train", "X_val", "X_full") if k in result}
    out["window_rows"] = int(result["window_rows"])
    return out


def save_matrices(result: dict, path: Path) -> None:
    """Store a result's matrices canonically (sorted indices) for the parent's comparison."""
    import numpy as np

    arrays = {}
    for name in ("X_train", "X_val", "X_full"):
        if name not in result:
            continue
        m = result[name].tocsr(copy=True)
        m.sort_indices()
        arrays.update({f"{name}_data": m.data, f"{name}_indices": m.indices, f"{name}_indptr": m.indptr,
                       f"{name}_shape": np.asarray(m.shape)})
    arrays["y_train"] = result["y_train"]
    arrays["y_val"] = result["y_val"]
    arrays["feature_names"] = np.asarray(result["feature_names"], dtype=str)
    if "full_feature_names" in result:
        arrays["full_feature_names"] = np.asarray(result["full_feature_names"], dtype=str)
    np.savez(path, **arrays)


def compare_saved(ours: Path, reference: Path) -> list[tuple[str, str]]:
    """``(item, verdict)`` for every matrix, target and name list of the two saved results.

    Matrices must match exactly: same shape, same stored entries (explicit zeros included, as
    ``DictVectorizer`` stores a zero distance), same values. Targets may differ in the last
    bit (the reference divides seconds by 60, we divide microseconds by 6e7), so they are
    compared with a 1e-9 minute tolerance and the number of bit-identical values is reported.
    """
    import numpy as np

    verdicts = []
    with np.load(ours) as a, np.load(reference) as b:
        for name in ("X_train", "X_val", "X_full"):
            if f"{name}_shape" not in a.files:
                continue
            same = all(
                a[f"{name}_{part}"].shape == b[f"{name}_{part}"].shape
                and np.array_equal(a[f"{name}_{part}"], b[f"{name}_{part}"])
                for part in ("shape", "indptr", "indices", "data")
            )
            verdicts.append((name, "identical" if same else "DIFFERENT"))
        for name in ("y_train", "y_val"):
            x, y = a[name], b[name]
            if x.shape != y.shape or not np.allclose(x, y, rtol=0, atol=1e-9):
                verdicts.append((name, "DIFFERENT"))
            else:
                exact = int((x == y).sum())
                verdicts.append((name, f"equal within 1e-9 min ({exact:,} of {len(x):,} bit-identical)"))
        for name in ("feature_names", "full_feature_names"):
            if name in a.files:
                verdicts.append((name, "identical" if np.array_equal(a[name], b[name]) else "DIFFERENT"))
    return verdicts


def parse_case_args(argv: Sequence[str] | None, extra: Callable | None = None):
    """The ``--case`` protocol shared by every benchmark script (plus script-specific options)."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--case", help="internal: run one measured case in this process and print JSON")
    parser.add_argument("--out", help="internal: where a case saves its matrices")
    parser.add_argument("--input", action="append", default=[], help="internal: input file(s) of a case")
    if extra is not None:
        extra(parser)
    return parser.parse_args(argv)
