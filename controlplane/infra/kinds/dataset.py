"""A BigQuery dataset: created empty, deleted only once empty (its tables go one by one, each shown in the plan)."""

from __future__ import annotations

from typing import Any

from classifier.cloud import bigquery
from controlplane.infra import spec as s
from controlplane.infra.changes import DELETE, NOOP, Change
from controlplane.infra.kinds.base import ResourceKind, absent, created, deleted, location_diff


class DatasetKind(ResourceKind[dict[str, Any] | None]):
    name = s.DATASET

    def read(self, spec: s.StackSpec, r: s.Resource) -> dict[str, Any] | None:
        return bigquery.dataset_get(spec.cfg, r.name)

    def diff(self, spec: s.StackSpec, r: s.Resource, live: dict[str, Any] | None) -> list[Change]:
        if live is None:
            return super().diff(spec, r, live)
        return location_diff(r, live["location"], spec.cfg.location)

    def plan_destroy(self, spec: s.StackSpec, r: s.Resource) -> list[Change]:
        if self.read(spec, r) is None:
            return absent(r)
        managed = {x.name for x in spec.resources if x.kind == s.TABLE}
        others = [t for t in bigquery.dataset_table_ids(spec.cfg, r.name) if t not in managed]
        if others:
            return [Change(NOOP, r.kind, r.name, f"kept: holds tables this stack does not manage: {', '.join(others)}")]
        return [Change(DELETE, r.kind, r.name, "exists; empty once its tables are gone")]

    def create(self, spec: s.StackSpec, r: s.Resource, change: Change) -> str:
        return created(bigquery.dataset_create(spec.cfg, r.name))

    def delete(self, spec: s.StackSpec, r: s.Resource, change: Change, *, delete_data: bool) -> str:
        bigquery.dataset_delete(spec.cfg, r.name)
        return deleted(change)
