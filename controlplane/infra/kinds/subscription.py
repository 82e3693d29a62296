"""A Pub/Sub subscription: its deadline, retention and dead-letter policy are updated in place; its topic cannot be."""

from __future__ import annotations

from classifier.cloud import pubsub
from controlplane.infra import spec as s
from controlplane.infra.changes import CREATE, NOOP, REPLACE, UPDATE, Change
from controlplane.infra.kinds.base import ResourceKind, created, deleted

FIELDS = (
    "ack_deadline_seconds",
    "message_retention_seconds",
    "expiration_ttl_seconds",
    "dead_letter_topic",
    "max_delivery_attempts",
)


def _show(field: str, value: object) -> str:
    if field == "expiration_ttl_seconds":
        return "never expires" if value is None else f"expires after {value} s without a pull"
    return str(value)


_REPLACE_REASON = (
    "attached to another topic, which cannot be changed: it must be re-created, losing undelivered messages; "
    "not done by apply"
)


class SubscriptionKind(ResourceKind[dict[str, object] | None]):
    name = s.SUBSCRIPTION

    def read(self, spec: s.StackSpec, r: s.Resource) -> dict[str, object] | None:
        return pubsub.subscription_get(spec.cfg, r.name)

    def diff(self, spec: s.StackSpec, r: s.Resource, live: dict[str, object] | None) -> list[Change]:
        if live is None:
            return [Change(CREATE, r.kind, r.name, "does not exist")]
        if live["topic"] != r.attrs["topic"]:
            detail = f"topic: {live['topic']}, wanted {r.attrs['topic']}"
            return [Change(REPLACE, r.kind, r.name, _REPLACE_REASON, (detail,))]
        details = tuple(f"{f}: {_show(f, live[f])} -> {_show(f, r.attrs[f])}" for f in FIELDS if live[f] != r.attrs[f])
        if details:
            return [Change(UPDATE, r.kind, r.name, "settings drifted: updated in place", details)]
        return [Change(NOOP, r.kind, r.name, "exists with the desired settings")]

    def create(self, spec: s.StackSpec, r: s.Resource, change: Change) -> str:
        dead_letter_topic = r.attrs["_dead_letter_topic"]
        return created(
            pubsub.subscription_ensure(spec.cfg, r.name, r.attrs["_topic"], dead_letter_topic=dead_letter_topic)
        )

    def update(self, spec: s.StackSpec, r: s.Resource, change: Change) -> str:
        drifted = [f for f in FIELDS if any(d.startswith(f"{f}: ") for d in change.details)]
        pubsub.subscription_update(spec.cfg, r.name, fields=drifted, dead_letter_topic=r.attrs["_dead_letter_topic"])
        return "updated: " + "; ".join(change.details)

    def delete(self, spec: s.StackSpec, r: s.Resource, change: Change, *, delete_data: bool) -> str:
        pubsub.subscription_delete(spec.cfg, r.name)
        return deleted(change)
