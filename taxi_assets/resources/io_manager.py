"""The IO manager: one file per asset partition under the data root, written atomically.

Layout: ``{data_root}/{taxi_type}/{asset_key}/{partition}.{ext}`` where the format follows
the object: ``.parquet`` for DataFrames and Arrow tables (zstd), ``.npz`` for training sets
(sparse matrices, no pickle), ``.pkl`` (joblib) for fitted models and anything else. An input
asking for several partitions arrives as a dict ``{partition: object}``, a single partition
as the bare object. An input may ask for a subset of a parquet asset's columns through its
``AssetIn(metadata={"columns": [...]})``, so big months are never read whole.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from taxi_assets.io.atomic import atomic_path
from taxi_assets.ml.dataset import TrainingSet, load_training_set, save_training_set

_FORMATS = (".parquet", ".npz", ".pkl")


class NotMaterializedError(FileNotFoundError):
    pass


class TaxiIOManager(dg.ConfigurableIOManager):
    """Parquet / npz / joblib files under ``base_dir``, one per asset partition."""

    base_dir: str

    def _stem(self, asset_key: dg.AssetKey, partition: str | None) -> Path:
        return Path(self.base_dir).joinpath(*asset_key.path) / (partition or "latest")

    def path_for(self, asset_key: dg.AssetKey, partition: str | None) -> Path:
        """The stored file of one asset partition (raises if it was never materialized)."""
        stem = self._stem(asset_key, partition)
        for ext in _FORMATS:
            candidate = stem.with_suffix(ext)
            if candidate.exists():
                return candidate
        label = asset_key.to_user_string() + (f"[{partition}]" if partition else "")
        raise NotMaterializedError(
            f"{label} has not been materialized (no file at {stem}.*): materialize it first, e.g. "
            f"`dagster asset materialize -m taxi_assets --select {asset_key.to_user_string()}"
            + (f" --partition {partition}`" if partition else "`")
        )

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        partition = context.partition_key if context.has_partition_key else None
        stem = self._stem(context.asset_key, partition)
        if isinstance(obj, (pd.DataFrame, pa.Table)):
            target = stem.with_suffix(".parquet")
            table = obj if isinstance(obj, pa.Table) else pa.Table.from_pandas(obj, preserve_index=False)
            with atomic_path(target) as tmp:
                pq.write_table(table, tmp, compression="zstd")
        elif isinstance(obj, TrainingSet):
            target = stem.with_suffix(".npz")
            with atomic_path(target) as tmp, open(tmp, "wb") as handle:
                save_training_set(obj, handle)
        else:
            import joblib

            target = stem.with_suffix(".pkl")
            with atomic_path(target) as tmp:
                joblib.dump(obj, tmp)
        # A format change (say a model asset that once wrote parquet) must not leave a stale twin.
        for ext in _FORMATS:
            other = stem.with_suffix(ext)
            if other != target and other.exists():
                other.unlink()
        context.add_output_metadata({"path": dg.MetadataValue.path(str(target)), "stored_bytes": target.stat().st_size})

    def load_input(self, context: dg.InputContext):
        columns = (context.definition_metadata or {}).get("columns")
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            loaded = {key: self.load(context.asset_key, key, columns) for key in keys}
            return loaded[keys[0]] if len(keys) == 1 else loaded
        return self.load(context.asset_key, None, columns)

    def load(self, asset_key: dg.AssetKey, partition: str | None, columns: list[str] | None = None):
        """Read one stored asset partition (also used by scripts and tests)."""
        path = self.path_for(asset_key, partition)
        if path.suffix == ".parquet":
            return pd.read_parquet(path, columns=columns)
        if path.suffix == ".npz":
            return load_training_set(path)
        import joblib

        return joblib.load(path)
