"""A BigQuery table and its schema: fields are added or relaxed in place; any other drift needs a re-creation,
which apply never does (it would lose the rows)."""

from __future__ import annotations

from classifier.cloud import bigquery
from controlplane.infra import spec as s
from controlplane.infra.changes import CREATE, DELETE, NOOP, REPLACE, UPDATE, Change
from controlplane.infra.kinds.base import ResourceKind, absent, created, deleted
from controlplane.infra.schema import Field, schema_diff

_REPLACE_REASON = (
    "schema drift that BigQuery cannot change in place: the table must be re-created, losing its rows; "
    "not done by apply (destroy with --delete-data, then apply, or migrate it by hand)"
)


class TableKind(ResourceKind[list[Field] | None]):
    name = s.TABLE

    def read(self, spec: s.StackSpec, r: s.Resource) -> list[Field] | None:
        return bigquery.table_schema(spec.cfg, r.name)

    def diff(self, spec: s.StackSpec, r: s.Resource, live: list[Field] | None) -> list[Change]:
        if live is None:
            return [Change(CREATE, r.kind, r.name, "does not exist")]
        diff = schema_diff(r.attrs["schema"], live)
        if diff.empty:
            return [Change(NOOP, r.kind, r.name, "exists with the desired schema")]
        if diff.destructive:
            return [Change(REPLACE, r.kind, r.name, _REPLACE_REASON, diff.destructive + diff.additive)]
        return [Change(UPDATE, r.kind, r.name, "schema drift: fields will be added or relaxed in place", diff.additive)]

    def plan_destroy(self, spec: s.StackSpec, r: s.Resource) -> list[Change]:
        if self.read(spec, r) is None:
            return absent(r)
        rows = bigquery.table_row_count(spec.cfg, r.name)
        return [Change(DELETE, r.kind, r.name, "exists", data_count=rows, data_noun="rows")]

    def create(self, spec: s.StackSpec, r: s.Resource, change: Change) -> str:
        return created(bigquery.table_create(spec.cfg, r.name, r.attrs["schema"]))

    def update(self, spec: s.StackSpec, r: s.Resource, change: Change) -> str:
        bigquery.table_schema_update(spec.cfg, r.name, r.attrs["schema"])
        return "schema updated: " + "; ".join(change.details)

    def delete(self, spec: s.StackSpec, r: s.Resource, change: Change, *, delete_data: bool) -> str:
        bigquery.table_delete(spec.cfg, r.name)
        return deleted(change)
