"""A Cloud Storage bucket: destroy counts the objects that would go with it."""

from __future__ import annotations

from classifier.cloud import gcs
from controlplane.infra import spec as s
from controlplane.infra.changes import DELETE, Change
from controlplane.infra.kinds.base import ResourceKind, absent, created


class BucketKind(ResourceKind[dict[str, str | None] | None]):
    name = s.BUCKET

    def read(self, spec: s.StackSpec, r: s.Resource) -> dict[str, str | None] | None:
        return gcs.bucket_get(spec.cfg, r.name)

    def plan_destroy(self, spec: s.StackSpec, r: s.Resource) -> list[Change]:
        if self.read(spec, r) is None:
            return absent(r)
        objects = gcs.object_count(spec.cfg, r.name)
        return [Change(DELETE, r.kind, r.name, "exists", data_count=objects, data_noun="objects")]

    def create(self, spec: s.StackSpec, r: s.Resource, change: Change) -> str:
        return created(gcs.bucket_create(spec.cfg, r.name))

    def delete(self, spec: s.StackSpec, r: s.Resource, change: Change, *, delete_data: bool) -> str:
        removed = gcs.bucket_delete(spec.cfg, r.name, delete_objects=delete_data)
        return f"deleted with {removed} objects" if removed else "deleted"
