"""A bucket's notification config to the topic: exactly one may announce each upload, so duplicates and
mismatches are deleted. Locally fake-gcs-server's event flags stand in for it."""

from __future__ import annotations

from classifier.cloud import gcs
from controlplane.infra import progress
from controlplane.infra import spec as s
from controlplane.infra.changes import CREATE, DELETE, NOOP, Change
from controlplane.infra.kinds.base import ResourceKind, absent

LOCAL = "provided by the local stack (fake-gcs-server event flags): no emulator has the notification-config API"


def _matches(n: gcs.NotificationConfig, r: s.Resource) -> bool:
    return (
        set(n.event_types) == set(r.attrs["event_types"])
        and n.payload_format == r.attrs["payload_format"]
        and not n.prefix
    )


def _describe(n: gcs.NotificationConfig) -> str:
    return f"event_types={list(n.event_types)} payload_format={n.payload_format} prefix={n.prefix or ''}"


class NotificationKind(ResourceKind[list[gcs.NotificationConfig] | None]):
    name = s.NOTIFICATION
    local_provided = LOCAL

    def read(self, spec: s.StackSpec, r: s.Resource) -> list[gcs.NotificationConfig] | None:
        """The configs that send to our topic; None when the bucket does not exist."""
        if gcs.bucket_get(spec.cfg, r.attrs["bucket"]) is None:
            return None
        return [n for n in gcs.notifications_list(spec.cfg, r.attrs["bucket"]) if n.topic == r.attrs["topic"]]

    def diff(self, spec: s.StackSpec, r: s.Resource, live: list[gcs.NotificationConfig] | None) -> list[Change]:
        if live is None:
            return [Change(CREATE, r.kind, r.name, "the bucket is created first, then its notification config")]
        keep = next((n for n in live if _matches(n, r)), None)
        why = "duplicate: each upload would be announced twice" if keep else "differs from the desired config"
        changes = [self._delete_change(r, n, why) for n in live if n is not keep]
        if keep is None:
            changes.append(Change(CREATE, r.kind, r.name, "no notification config sends OBJECT_FINALIZE to the topic"))
        else:
            reason = f"config #{keep.notification_id} matches"
            changes.append(Change(NOOP, r.kind, r.name, reason, target=keep.notification_id))
        return changes

    @staticmethod
    def _delete_change(r: s.Resource, n: gcs.NotificationConfig, reason: str) -> Change:
        name = f"{r.name} #{n.notification_id}"
        return Change(DELETE, r.kind, name, reason, (_describe(n),), target=n.notification_id)

    def plan_destroy(self, spec: s.StackSpec, r: s.Resource) -> list[Change]:
        ours = self.read(spec, r)
        if not ours:
            return absent(r)
        return [
            Change(DELETE, r.kind, f"{r.name} #{n.notification_id}", "exists", target=n.notification_id) for n in ours
        ]

    def create(self, spec: s.StackSpec, r: s.Resource, change: Change) -> str:
        topic = r.attrs["topic"].rsplit("/", 1)[-1]
        notification_id = gcs.notification_create(
            spec.cfg, r.attrs["bucket"], topic_project=spec.cfg.project, topic=topic, on_wait=progress.report
        )
        return f"created config #{notification_id}"

    def delete(self, spec: s.StackSpec, r: s.Resource, change: Change, *, delete_data: bool) -> str:
        gcs.notification_delete(spec.cfg, r.attrs["bucket"], change.target)
        return f"deleted config #{change.target}"

    def resource_for(self, spec: s.StackSpec, change: Change) -> s.Resource:
        # A change's name is "<name> #<id>" when it is one of several configs: the resource is the one config wanted.
        return next(r for r in spec.resources if r.kind == self.name)
