"""The IO manager: one file per asset partition under the data root, written atomically.

Layout: ``{data_root}/{taxi_type}/{asset_key}/{month}.{ext}``; the data root is a local folder
or an object-store URL (:mod:`taxi_assets.io.storage`: the same layout, the same errors), the
taxi type the one setting (``TAXI_TYPE``), never resource config, so green and yellow never
mix. The format follows the object: ``.parquet`` for DataFrames and Arrow tables (zstd),
``.npz`` for training sets (sparse matrices, no pickle), ``.pkl`` (joblib) for anything else.
Every way a run can be launched writes each month's own file (:meth:`TaxiIOManager.handle_output`),
and an input arrives by Dagster's convention (:meth:`TaxiIOManager.load_input`). A stored file
that cannot be read is a :class:`CorruptOutputError` naming the asset, month and path: a
permanent error (re-running would read the same bytes), so the wiring fails it without retries.
Writes go to a local temp file first and are then renamed into place or uploaded whole
(:func:`taxi_assets.io.storage.atomic_target`): a failed run keeps the previous object.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from taxi_assets.io import storage
from taxi_assets.io.atomic import atomic_path
from taxi_assets.ml.dataset import TrainingSet, load_training_set, save_training_set
from taxi_assets.settings import SETTINGS

_FORMATS = (".parquet", ".npz", ".pkl")
UNPARTITIONED = "all"


class NotMaterializedError(FileNotFoundError):
    """An input partition has no stored file."""


class CorruptOutputError(RuntimeError):
    """A stored output exists but cannot be read (truncated, overwritten by something else)."""


@dataclass(frozen=True)
class UnreadableInput:
    """An optional input whose stored file exists but cannot be read: the asset treats it as
    absent and says why (``reason`` names the asset, month and path)."""

    reason: str


class OutputWriteError(OSError):
    """An output could not be written (full disk, permissions): names the path."""


def label(asset_key: dg.AssetKey, partition: str | None) -> str:
    return asset_key.to_user_string() + (f"[{partition}]" if partition else "")


class TaxiIOManager(dg.ConfigurableIOManager):
    """Parquet / npz / joblib files under ``{data_root}/{taxi type}``, one per asset partition."""

    data_root: str = Field(
        default=str(SETTINGS.data_root),
        description="Folder or object-store URL (s3://bucket/prefix) of every output (TAXI_DATA_ROOT).",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Every step uses this IO manager, so its set-up is where a step process learns to end
        # with its run worker (see taxi_assets.instance.end_with_run_worker).
        if context.instance is not None and context.run_id:
            from taxi_assets.instance import end_with_run_worker

            end_with_run_worker(context.instance, context.run_id)

    @property
    def base_dir(self) -> Path:
        """``{data_root}/{taxi type}``: a ``Path``, or a ``UPath`` on an object store."""
        return storage.as_path(self.data_root) / SETTINGS.taxi_type

    def _stem(self, asset_key: dg.AssetKey, partition: str | None) -> Path:
        return self.base_dir.joinpath(*asset_key.path) / (partition or UNPARTITIONED)

    def path_for(self, asset_key: dg.AssetKey, partition: str | None) -> Path:
        """The stored file of one asset partition (raises if it was never materialized)."""
        stem = self._stem(asset_key, partition)
        for ext in _FORMATS:
            candidate = stem.with_suffix(ext)
            if candidate.exists():
                return candidate
        raise NotMaterializedError(
            f"{label(asset_key, partition)} has not been materialized (no file at {stem}.*): materialize it first, e.g. "
            f"`dg launch --assets {asset_key.to_user_string()}" + (f" --partition {partition}`" if partition else "`")
        )

    # --- writing ------------------------------------------------------------------------------

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        """Write each month of the run to its own file. A run holds one month
        (``dagster/partition``) or a range (``dagster/asset_partition_range_start/end``:
        declarative automation, single-run backfills), and in a range ``has_partition_key`` is
        false even for one month. So a partitioned output is a ``{month: object}`` mapping with
        exactly the run's months (a bare object when the run holds one month); anything else
        fails naming the asset and months, and nothing is written to an invented name."""
        if obj is None:
            return
        if not context.has_asset_partitions:
            target = self.write(context.asset_key, None, obj)
            context.add_output_metadata({"path": dg.MetadataValue.path(str(target))})
            return
        months = list(context.asset_partition_keys)
        per_month = self._per_month(context.asset_key, months, obj)
        try:
            written = {month: self.write(context.asset_key, month, value) for month, value in per_month.items()}
        except OutputWriteError as exc:
            # Permanent until someone frees space: failing at once beats retrying for minutes.
            raise dg.Failure(description=exc.strerror, allow_retries=False) from None
        if len(written) == 1:
            (target,) = written.values()
            context.add_output_metadata(
                {"path": dg.MetadataValue.path(str(target)), "stored_bytes": target.stat().st_size}
            )
        else:
            context.add_output_metadata({"paths": dg.MetadataValue.json({m: str(p) for m, p in written.items()})})

    @staticmethod
    def _per_month(asset_key: dg.AssetKey, months: list[str], obj) -> dict:
        if isinstance(obj, Mapping) and not isinstance(obj, pd.DataFrame):
            if sorted(obj) != sorted(months):
                raise dg.DagsterInvariantViolationError(
                    f"{asset_key.to_user_string()}: the output holds months {sorted(obj)} but the run "
                    f"materializes {months}; nothing was written"
                )
            return {month: obj[month] for month in months}
        if len(months) != 1:
            raise dg.DagsterInvariantViolationError(
                f"{asset_key.to_user_string()}: one object for {len(months)} months ({months[0]}..{months[-1]}); "
                "a ranged run must output {month: value}; nothing was written"
            )
        return {months[0]: obj}

    def write(self, asset_key: dg.AssetKey, partition: str | None, obj) -> Path:
        """Publish ``obj`` as the file of one asset partition (temp file, then rename)."""
        stem = self._stem(asset_key, partition)
        try:
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
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM):
                raise OutputWriteError(
                    exc.errno,
                    f"{label(asset_key, partition)}: cannot write {stem.parent}: {exc.strerror}; "
                    "the previous output is kept",
                ) from None
            raise
        # A format change (say a model asset that once wrote parquet) must not leave a stale twin.
        for ext in _FORMATS:
            other = stem.with_suffix(ext)
            if other != target and other.exists():
                other.unlink()
        return target

    # --- reading ------------------------------------------------------------------------------

    def load_input(self, context: dg.InputContext):
        """One upstream partition arrives as the object, several as a ``{month: object}`` dict.
        An input declared ``AssetIn(metadata={"optional": True})`` may be absent: a missing
        partition is left out of the dict (or arrives as ``None``) and an unreadable one arrives
        as :class:`UnreadableInput`. ``AssetIn(metadata={"columns": [...]})`` reads a subset of
        a parquet asset's columns."""
        wanted = context.definition_metadata or {}
        columns, optional = wanted.get("columns"), bool(wanted.get("optional"))
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else [None]
        loaded = {}
        for key in keys:
            try:
                loaded[key] = self.load(context.asset_key, key, columns)
            except NotMaterializedError as exc:
                if optional:  # an optional input (AssetIn metadata {"optional": True}) may be absent
                    continue
                raise dg.Failure(description=str(exc), allow_retries=False) from None
            except CorruptOutputError as exc:
                if optional:  # the asset decides what an unreadable optional input means
                    loaded[key] = UnreadableInput(str(exc))
                    continue
                # Re-reading the same file cannot succeed: no step retry.
                raise dg.Failure(description=str(exc), allow_retries=False) from None
        if len(keys) == 1:
            return loaded.get(keys[0])
        return loaded

    def load(self, asset_key: dg.AssetKey, partition: str | None, columns: list[str] | None = None):
        """Read one stored asset partition (also used by scripts and tests)."""
        path = self.path_for(asset_key, partition)
        try:
            with _readable(path) as source:
                if path.suffix == ".parquet":
                    return pd.read_parquet(source, columns=columns)
                if path.suffix == ".npz":
                    return load_training_set(source)
                import joblib

                return joblib.load(source)
        except Exception as exc:  # noqa: BLE001 - truncated zip/parquet, foreign bytes, bad pickle
            raise CorruptOutputError(
                f"{label(asset_key, partition)}: the stored file {path} cannot be read ({type(exc).__name__}); "
                f"re-materialize it, e.g. `dg launch --assets {asset_key.to_user_string()}"
                + (f" --partition {partition}`" if partition else "`")
            ) from None


@contextlib.contextmanager
def _readable(path):
    """The local path itself, or an open binary handle of an object-store path (pandas,
    numpy and joblib read seekable handles; s3fs reads ahead in blocks)."""
    if not storage.is_remote(path):
        yield path
        return
    with path.open("rb") as handle:
        yield handle
