"""A BigQuery table, its schema and its shape (day partitions, clustering).

Fields are added or relaxed in place. A table in the wrong shape is migrated by apply, keeping every row: copied into
a table of the new shape, counted, the old table re-created in the new shape, copied back and counted again; the
copy is dropped only when both counts match. Any other schema drift needs a re-creation, which apply never does
(it would lose the rows)."""

from __future__ import annotations

import logging

from classifier.cloud import bigquery
from controlplane.infra import spec as s
from controlplane.infra.changes import CREATE, DELETE, NOOP, REPLACE, UPDATE, Change
from controlplane.infra.kinds.base import ResourceKind, absent, created, deleted
from controlplane.infra.schema import schema_diff

log = logging.getLogger(__name__)

_REPLACE_REASON = (
    "schema drift that BigQuery cannot change in place: the table must be re-created, losing its rows; "
    "not done by apply (destroy with --delete-data, then apply, or migrate it by hand)"
)
RESHAPE_SUFFIX = "__reshape"
# Rows streamed into the old table while it is copied would be missed: the migration is for a paused pipeline.
_RESHAPE_HOW = (
    "will be migrated keeping every row: copied into {tmp} in the new shape, counted, {name} re-created in the "
    "new shape and the rows copied back and counted; the copy is dropped only when the counts match. Billed: the "
    "table's bytes, twice. Stop the listener and let the queue drain first"
)


class MigrationError(RuntimeError):
    """A copy's row count did not match: nothing was dropped that held the only copy of a row."""


def _shape_drift(want: bigquery.TableShape, have: bigquery.TableShape) -> tuple[str, ...]:
    if want == have:
        return ()
    return (f"shape: {have.describe()}, wanted {want.describe()}",)


class TableKind(ResourceKind[bigquery.TableLive | None]):
    name = s.TABLE

    def read(self, spec: s.StackSpec, r: s.Resource) -> bigquery.TableLive | None:
        return bigquery.table_get(spec.cfg, r.name)

    def diff(self, spec: s.StackSpec, r: s.Resource, live: bigquery.TableLive | None) -> list[Change]:
        if live is None:
            return [Change(CREATE, r.kind, r.name, "does not exist")]
        diff = schema_diff(r.attrs["schema"], live.schema)
        shape = _shape_drift(r.attrs["shape"], live.shape)
        if diff.destructive:
            return [Change(REPLACE, r.kind, r.name, _REPLACE_REASON, diff.destructive + diff.additive + shape)]
        if shape:
            how = _RESHAPE_HOW.format(tmp=r.name + RESHAPE_SUFFIX, name=r.name)
            return [Change(UPDATE, r.kind, r.name, "not in the shape its queries need: " + how, shape + diff.additive)]
        if diff.empty:
            return [Change(NOOP, r.kind, r.name, "exists with the desired schema and shape")]
        return [Change(UPDATE, r.kind, r.name, "schema drift: fields will be added or relaxed in place", diff.additive)]

    def plan_destroy(self, spec: s.StackSpec, r: s.Resource) -> list[Change]:
        if self.read(spec, r) is None:
            return absent(r)
        rows = bigquery.table_row_count(spec.cfg, r.name)
        return [Change(DELETE, r.kind, r.name, "exists", data_count=rows, data_noun="rows")]

    def create(self, spec: s.StackSpec, r: s.Resource, change: Change) -> str:
        resumed = reshape_resume(spec, r)
        if resumed is not None:
            return f"re-created from {r.name + RESHAPE_SUFFIX} (an interrupted migration), {resumed} rows kept"
        return created(bigquery.table_create(spec.cfg, r.name, r.attrs["schema"], r.attrs["shape"]))

    def update(self, spec: s.StackSpec, r: s.Resource, change: Change) -> str:
        live = self.read(spec, r)
        if live is None:
            raise MigrationError(f"{r.name} no longer exists: plan again")
        if not schema_diff(r.attrs["schema"], live.schema).empty:
            bigquery.table_schema_update(spec.cfg, r.name, r.attrs["schema"])
        if live.shape != r.attrs["shape"]:
            moved = reshape(spec, r, live)
            return f"migrated to {r.attrs['shape'].describe()}, {moved} rows kept: " + "; ".join(change.details)
        return "schema updated: " + "; ".join(change.details)

    def delete(self, spec: s.StackSpec, r: s.Resource, change: Change, *, delete_data: bool) -> str:
        bigquery.table_delete(spec.cfg, r.name)
        return deleted(change)


def _copy_counted(spec: s.StackSpec, r: s.Resource, source: str, target: str, budget: int) -> int:
    columns = [f.name for f in r.attrs["schema"]]
    bigquery.table_copy_rows(spec.cfg, source, target, columns, max_bytes=budget)
    have, got = bigquery.table_row_count(spec.cfg, source), bigquery.table_row_count(spec.cfg, target)
    if have != got:
        raise MigrationError(f"copy of {source} into {target}: {got} rows, expected {have}; {source} is kept")
    return got


def reshape(spec: s.StackSpec, r: s.Resource, live: bigquery.TableLive) -> int:
    """Rebuild `r` in its desired shape; returns the rows kept. Re-run after a failure: it resumes from what is left."""
    cfg, tmp = spec.cfg, r.name + RESHAPE_SUFFIX
    schema, shape = r.attrs["schema"], r.attrs["shape"]
    # A deliberate full read: capped at the table's own size (twice, for metadata), not the dashboard's cap.
    budget = max(cfg.max_bytes_billed, 2 * live.num_bytes + 10_485_760)
    if bigquery.table_get(cfg, tmp) is not None:
        bigquery.table_delete(cfg, tmp)  # a copy left by a failed first copy: the original still holds every row
    bigquery.table_create(cfg, tmp, schema, shape)
    kept = _copy_counted(spec, r, r.name, tmp, budget)
    bigquery.table_delete(cfg, r.name)
    return _copy_back(spec, r, tmp, budget, kept)


def _copy_back(spec: s.StackSpec, r: s.Resource, tmp: str, budget: int, kept: int) -> int:
    cfg = spec.cfg
    bigquery.table_create(cfg, r.name, r.attrs["schema"], r.attrs["shape"])
    _copy_counted(spec, r, tmp, r.name, budget)
    bigquery.table_delete(cfg, tmp)
    log.info("migrated %s to %s: %d rows kept", r.name, r.attrs["shape"].describe(), kept)
    return kept


def reshape_resume(spec: s.StackSpec, r: s.Resource) -> int | None:
    """After a migration that died between dropping the table and copying its rows back: finish it from the copy.
    None when there is nothing to resume."""
    cfg, tmp = spec.cfg, r.name + RESHAPE_SUFFIX
    copy = bigquery.table_get(cfg, tmp)
    if copy is None or copy.shape != r.attrs["shape"]:
        return None
    live = bigquery.table_get(cfg, r.name)
    if live is not None and bigquery.table_row_count(cfg, r.name) > 0:
        return None  # the original still (or again) holds rows: a new plan decides
    if live is not None:
        bigquery.table_delete(cfg, r.name)
    budget = max(cfg.max_bytes_billed, 2 * copy.num_bytes + 10_485_760)
    return _copy_back(spec, r, tmp, budget, bigquery.table_row_count(cfg, tmp))
