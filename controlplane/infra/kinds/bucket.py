"""A Cloud Storage bucket: destroy counts the objects that would go with it."""

from __future__ import annotations

from classifier.cloud import gcs
from controlplane.infra import progress
from controlplane.infra import spec as s
from controlplane.infra.changes import DELETE, NOOP, Change
from controlplane.infra.kinds.base import ResourceKind, absent, created, location_diff


class BucketKind(ResourceKind[dict[str, str | None] | None]):
    name = s.BUCKET

    def read(self, spec: s.StackSpec, r: s.Resource) -> dict[str, str | None] | None:
        return gcs.bucket_get(spec.cfg, r.name)

    def diff(self, spec: s.StackSpec, r: s.Resource, live: dict[str, str | None] | None) -> list[Change]:
        if live is None:
            return super().diff(spec, r, live)
        if spec.local:  # fake-gcs-server ignores the location asked for and answers US-CENTRAL1 for every bucket
            return [Change(NOOP, r.kind, r.name, "exists (the local stack has no bucket locations)")]
        return location_diff(r, live["location"], spec.cfg.location)

    def plan_destroy(self, spec: s.StackSpec, r: s.Resource) -> list[Change]:
        if self.read(spec, r) is None:
            return absent(r)
        objects = gcs.object_count(spec.cfg, r.name)
        return [Change(DELETE, r.kind, r.name, "exists", data_count=objects, data_noun="objects")]

    def create(self, spec: s.StackSpec, r: s.Resource, change: Change) -> str:
        return created(gcs.bucket_create(spec.cfg, r.name))

    def delete(self, spec: s.StackSpec, r: s.Resource, change: Change, *, delete_data: bool) -> str:
        def deleting(count: int) -> None:
            progress.report(f"deleted {count} of {change.data_label or 'its'} so far")

        removed = gcs.bucket_delete(spec.cfg, r.name, delete_objects=delete_data, on_progress=deleting)
        return f"deleted with {removed} objects" if removed else "deleted"
