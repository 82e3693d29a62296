"""A Pub/Sub topic: it exists or it does not."""

from __future__ import annotations

from classifier.cloud import pubsub
from controlplane.infra import spec as s
from controlplane.infra.changes import Change
from controlplane.infra.kinds.base import ResourceKind, created, deleted


class TopicKind(ResourceKind[dict[str, str] | None]):
    name = s.TOPIC

    def read(self, spec: s.StackSpec, r: s.Resource) -> dict[str, str] | None:
        return pubsub.topic_get(spec.cfg, r.name)

    def create(self, spec: s.StackSpec, r: s.Resource, change: Change) -> str:
        return created(pubsub.topic_ensure(spec.cfg, r.name))

    def delete(self, spec: s.StackSpec, r: s.Resource, change: Change, *, delete_data: bool) -> str:
        pubsub.topic_delete(spec.cfg, r.name)
        return deleted(change)
