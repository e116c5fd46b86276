"""Latency and throughput of the champion behind ``mlflow models serve``.

What runs
---------
1. The model: the project's champion (``models:/taxi-trip-duration-<taxi>@champion`` in the
   store of ``MLFLOW_TRACKING_URI`` / ``SETTINGS``) if one is registered, else (or with
   ``--build``) the serving tests' champion: plain LinearRegression on 20,000 real 2024-01
   rides, logged with ``log_predictor`` into a temporary store.
2. The server: ``mlflow models serve --env-manager local`` on a free loopback port, in its
   own process group (stopped at the end), once per ``--workers`` value.
3. The client, in a second process (``--case client``): one keep-alive ``requests.Session``,
   20 warm-up requests, then ``--single`` (500) single-record requests one after another
   (p50/p90/p99 of the round trip, request body pre-encoded) and ``--batches`` (50) requests
   of ``--batch-size`` (1,000) records (records per second).
4. The in-process profile (``--case profile``) of what one single-record request costs inside
   the server, without HTTP: the predictor's steps (``records_to_features``,
   ``vectorize.transform``, the estimator), the pyfunc ``predict`` (adds MLflow's schema
   enforcement) and the scoring server's ``invocations()`` (adds JSON parsing of the
   request and encoding of the answer): medians of 300 calls each.

Bounded: server start 120 s, every case a timeout, fixed request counts.

    python benchmarks/serving_latency.py [--workers 1 2] [--single 500] [--batches 50]
                                          [--batch-size 1000] [--build]

Target: p50 under 5 ms per single-record request.

Figures (2026-11-30; shared VM, 2 cores (Intel Xeon), load average 2-4 from other jobs;
the 20k-ride LinearRegression test champion, 2,959 features; Python 3.11, MLflow 3.17.2,
uvicorn 0.54 with uvloop/httptools; three runs, the spread is the machine's)::

    workers | p50 ms   | p90 ms    | p99 ms  | server CPU ms/req | 1,000-record batches
    1       | 8.1-8.8  | 9.9-13.3  | 29-37   | 8.1               | 18-23 ms/batch, 44-56k records/s
    2       | 5.8-8.1  | 9.1-9.9   | 24-29   | 7.3               | 12-21 ms/batch, 48-84k records/s
    GET /ping (HTTP floor: uvicorn + FastAPI + requests on loopback): 1.5-2.5 ms

    inside one request, in process, median ms: records_to_features 1.2-2.2,
    vectorize.transform 0.1-0.17, LinearRegression.predict 0.2-0.36, predictor.predict 2.4-3.6,
    + MLflow schema enforcement = pyfunc predict 3.2-4.4, + JSON in/out = invocations() 4.0-4.9

After request validation went column-wise (``features._as_float``), on a quiet machine
(load average 0.03 at start), same champion::

    workers | p50 ms | p90 ms | p99 ms | server CPU ms/req | 1,000-record batches
    1       | 6.05   | 7.58   | 21.2   | 5.58              | 15.8 ms/batch, 63k records/s
    2       | 6.03   | 7.00   | 16.9   | 5.72              | 17.4 ms/batch, 58k records/s
    GET /ping 2.0-2.2 ms; in process: records_to_features 0.39, vectorize.transform 0.23,
    estimator 0.29, predictor.predict 1.24, pyfunc predict 1.88, invocations() 2.88

Verdict (first measurement, before that change): the default server misses the 5 ms p50 target here (about 8 ms). It is CPU-bound,
not waiting: the server spends about as much CPU per request as the request takes. Roughly
3 ms are the HTTP stack (uvicorn, Starlette/FastAPI, MLflow's timeout middleware and its
``asyncio.to_thread`` hop), 1.5 ms MLflow's JSON parsing and schema enforcement, and 2.5-3.5
ms our predictor, most of it ``records_to_features`` (pandas overhead per column on a
one-row frame: ``to_numeric``, ``isna``, ufuncs on Series, ``tolist``). ``--workers 2`` does
not lower single-request latency (each keep-alive connection stays on one worker); it helps
concurrent clients and batch throughput. The request layout (``dataframe_records`` /
``dataframe_split`` / ``inputs``) is within noise.

Measured fix: a NumPy fast path in ``records_to_features`` for numeric columns (same results
and messages on 20 valid and invalid inputs) cuts it from 1.2 to 0.35 ms and the served p50
from 8.7 to 7.8 ms (A/B, both servers interleaved request by request). Below 5 ms on this
machine would also need a leaner server than MLflow's (no thread hop, no schema
re-enforcement) or faster, unshared cores: the same in-process steps varied by 2x between
runs here as other jobs competed for the two cores (p50 13 ms while one saturated them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import _common as c  # the script's folder is on sys.path when run as a script

SCRIPT = Path(__file__).resolve()
TARGET_P50_MS = 5.0
RIDE = {"PULocationID": 236, "DOLocationID": 239, "trip_distance": 1.98}


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def batch_records(size: int, seed: int) -> list[dict]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return [
        {"PULocationID": int(pu), "DOLocationID": int(do), "trip_distance": float(d)}
        for pu, do, d in zip(rng.integers(1, 266, size), rng.integers(1, 266, size), rng.gamma(2.0, 1.5, size).round(2))
    ]


# --- the client process --------------------------------------------------------------------------


# The same ride in the three JSON layouts the scoring server accepts.
LAYOUTS = {
    "dataframe_records": {"dataframe_records": [RIDE]},
    "dataframe_split": {"dataframe_split": {"columns": list(RIDE), "data": [list(RIDE.values())]}},
    "inputs": {"inputs": {k: [v] for k, v in RIDE.items()}},
}


def _timed_posts(session, endpoint: str, body: bytes, count: int) -> list[float]:
    headers = {"Content-Type": "application/json"}
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        response = session.post(endpoint, data=body, headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"request failed: {response.status_code} {response.text[:500]}")
    return latencies


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid`` (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the command: state, ppid, pgrp, ..., utime(11), stime(12)
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def client_case(url: str, single: int, batches: int, batch_size: int, server_pgid: int | None = None) -> None:
    import requests

    session = requests.Session()
    headers = {"Content-Type": "application/json"}
    endpoint = f"{url}/invocations"
    one = json.dumps(LAYOUTS["dataframe_records"]).encode()
    _timed_posts(session, endpoint, one, 20)  # warm-up: connection, first-call caches
    cpu_before = group_cpu_seconds(server_pgid) if server_pgid else float("nan")
    latencies = _timed_posts(session, endpoint, one, single)
    server_cpu_ms = (group_cpu_seconds(server_pgid) - cpu_before) * 1000 / single if server_pgid else float("nan")
    # the HTTP floor: /ping does no work (and no thread hop)
    pings = []
    for _ in range(200):
        started = time.perf_counter()
        session.get(f"{url}/ping").raise_for_status()
        pings.append((time.perf_counter() - started) * 1000)
    layouts = {
        name: percentile(_timed_posts(session, endpoint, json.dumps(body).encode(), 200), 0.5)
        for name, body in LAYOUTS.items()
    }
    bodies = [json.dumps({"dataframe_records": batch_records(batch_size, seed)}).encode() for seed in range(batches)]
    started = time.perf_counter()
    scored = 0
    for body in bodies:
        response = session.post(endpoint, data=body, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"batch request failed: {response.status_code} {response.text[:500]}")
        scored += len(response.json()["predictions"])
    batch_seconds = time.perf_counter() - started
    c.emit(
        single=single,
        p50_ms=percentile(latencies, 0.50),
        p90_ms=percentile(latencies, 0.90),
        p99_ms=percentile(latencies, 0.99),
        mean_ms=statistics.fmean(latencies),
        min_ms=min(latencies),
        max_ms=max(latencies),
        batches=batches,
        batch_size=batch_size,
        records_scored=scored,
        batch_seconds=batch_seconds,
        batch_ms_per_request=batch_seconds * 1000 / batches,
        records_per_second=scored / batch_seconds,
        server_cpu_ms_per_request=server_cpu_ms,
        ping_p50_ms=percentile(pings, 0.5),
        layout_p50_ms=layouts,
    )


# --- the in-process profile ----------------------------------------------------------------------


def _median_ms(fn, calls: int = 300) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def profile_case(model_uri: str, tracking_uri: str) -> None:
    import warnings

    import pandas as pd
    from mlflow.pyfunc import scoring_server

    from taxi_assets.ml import vectorize
    from taxi_assets.ml.features import records_to_features
    from taxi_assets.serving.online import load_model

    warnings.simplefilter("ignore")
    loaded = load_model(model_uri, tracking_uri)
    model = loaded.model
    predictor = model.unwrap_python_model().predictor
    frame = pd.DataFrame({"PULocationID": [236], "DOLocationID": [239], "trip_distance": [1.98]})
    features = records_to_features(frame)
    X = vectorize.transform(features, predictor.vectorizer)
    schema = model.metadata.get_input_schema()
    body = json.dumps({"dataframe_records": [RIDE]})
    steps = {
        "records_to_features": lambda: records_to_features(frame),
        "vectorize.transform": lambda: vectorize.transform(features, predictor.vectorizer),
        "estimator.predict": lambda: predictor.predict_features(X),
        "predictor.predict (sum of the above)": lambda: predictor.predict(frame),
        "pyfunc predict (+ schema enforcement)": lambda: model.predict(frame),
        "server invocations() (+ JSON in/out)": lambda: scoring_server.invocations(body, "application/json", model, schema),
    }
    c.emit(steps={name: _median_ms(fn) for name, fn in steps.items()}, estimator=type(predictor.estimator).__name__,
           features=predictor.num_features)  # fmt: skip


# --- the parent ----------------------------------------------------------------------------------


def find_or_build_champion(build: bool, workdir: Path) -> tuple[str, str, str]:
    """``(model_uri, tracking_uri, description)`` of the model to serve."""
    from taxi_assets.serving.online import ModelNotFoundError, resolve_version
    from taxi_assets.settings import SETTINGS

    uri = f"models:/taxi-trip-duration-{SETTINGS.taxi_type}@champion"
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or SETTINGS.mlflow_tracking_uri
    if not build:
        try:
            version = resolve_version(uri, tracking)
            return uri, tracking, f"project champion {uri} (version {version}) from {tracking}"
        except ModelNotFoundError:
            pass
    sys.path.insert(0, str(c.REPO_ROOT))
    from taxi_assets_tests.serving_fixtures import SAMPLE_ROWS, build_champion

    champion = build_champion(workdir)
    return champion.model_uri, champion.tracking_uri, f"test champion: LinearRegression on {SAMPLE_ROWS:,} rides of 2024-01 (temporary store)"


def main(argv: list[str] | None = None) -> None:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--workers", type=int, nargs="+", default=[1], help="uvicorn workers to compare (default 1)")
        parser.add_argument("--single", type=int, default=500, help="single-record requests (default 500)")
        parser.add_argument("--batches", type=int, default=50, help="batch requests (default 50)")
        parser.add_argument("--batch-size", type=int, default=1000, help="records per batch request (default 1000)")
        parser.add_argument("--build", action="store_true", help="serve a freshly trained test champion")
        parser.add_argument("--url", help="internal: the server of the client case")
        parser.add_argument("--server-pgid", type=int, help="internal: the server's process group (CPU time)")
        parser.add_argument("--model-uri", help="internal: the model of the profile case")
        parser.add_argument("--tracking-uri", help="internal: the store of the profile case")

    args = c.parse_case_args(argv, extra)
    warnings.simplefilter("ignore")  # Dagster's beta notices when the test champion is built
    if args.case == "client":
        client_case(args.url, args.single, args.batches, args.batch_size, args.server_pgid)
        return
    if args.case == "profile":
        profile_case(args.model_uri, args.tracking_uri)
        return

    c.use_ml_core_only()  # the parent needs no Dagster definitions, only the serving helpers
    from taxi_assets.serving.online import ScoringServer

    print(c.machine())
    with tempfile.TemporaryDirectory(prefix="taxi-serving-bench-") as tmp:
        workdir = Path(tmp)
        model_uri, tracking_uri, description = find_or_build_champion(args.build, workdir)
        print(f"model: {description}")
        env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri, PYTHONWARNINGS="ignore")
        profile = c.run_case(SCRIPT, "profile", "--model-uri", model_uri, "--tracking-uri", tracking_uri,
                             timeout=300, env=env)  # fmt: skip
        rows = []
        for workers in args.workers:
            with ScoringServer(model_uri, tracking_uri, workdir / f"serve-{workers}.log", workers=workers) as server:
                result = c.run_case(
                    SCRIPT, "client", "--url", server.url, "--single", str(args.single), "--batches", str(args.batches),
                    "--batch-size", str(args.batch_size), "--server-pgid", str(server.process.pid), timeout=600,
                )  # fmt: skip
                if result.get("timed_out"):
                    raise RuntimeError(f"the client did not finish within 600 s against {workers} worker(s)")
                rows.append((workers, server.started_seconds, result))

    c.print_table(
        ["workers", "start s", "p50 ms", "p90 ms", "p99 ms", "mean ms", "max ms", "server CPU ms/req",
         f"batch ms ({args.batch_size:,} rec)", "records/s"],
        [
            (w, round(start, 1), r["p50_ms"], r["p90_ms"], r["p99_ms"], r["mean_ms"], r["max_ms"],
             r["server_cpu_ms_per_request"], r["batch_ms_per_request"], round(r["records_per_second"]))
            for w, start, r in rows
        ],
        title=f"mlflow models serve, {args.single} sequential single-record requests and {args.batches} batches, keep-alive client",
    )  # fmt: skip
    c.print_table(
        ["step (1 record, in process)", "median ms"],
        [(name, ms) for name, ms in profile["steps"].items()],
        title=f"Inside one request ({profile['estimator']}, {profile['features']:,} features)",
    )
    c.print_table(
        ["workers", "GET /ping p50 ms", *(f"{name} p50 ms" for name in LAYOUTS)],
        [(w, r["ping_p50_ms"], *(r["layout_p50_ms"][name] for name in LAYOUTS)) for w, _, r in rows],
        title="HTTP floor and request layouts (200 requests each, one record)",
    )
    best = min(r["p50_ms"] for _, _, r in rows)
    verdict = "meets" if best < TARGET_P50_MS else "misses"
    print(f"\nbest p50 {best:.2f} ms {verdict} the target of {TARGET_P50_MS:.0f} ms per single-record request")


if __name__ == "__main__":
    main()
