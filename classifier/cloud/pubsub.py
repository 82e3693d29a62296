"""Pub/Sub: the official client; PUBSUB_EMULATOR_HOST points it at the emulator locally."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import retry
from google.cloud import pubsub_v1
from google.protobuf import duration_pb2
from google.pubsub_v1.types import Subscription

from classifier.config import Config

# Inference of a burst can take tens of seconds per worker: leave room before redelivery.
ACK_DEADLINE_S = 60
RETENTION_S = 7 * 24 * 3600
MAX_DELIVERY_ATTEMPTS = 5
# Without an expiration policy Pub/Sub deletes a subscription after 31 days without a pull (the documented default,
# which the emulator neither applies nor reports). The dead-letter inspection subscription is read only when someone
# opens the Failures page, so it would expire and every later dead letter would be lost. An empty policy (no ttl)
# means never.
DEFAULT_EXPIRATION_TTL_S = 31 * 24 * 3600
NEVER_EXPIRES: dict[str, object] = {}


# Every call has a deadline; the idempotent ones (reads, deletes, acks, creates and updates whose repeat is harmless:
# AlreadyExists and NotFound are success) retry transient errors with backoff, within a bounded total. Setting an
# IAM policy is not retried: the policy carries the etag it was read with, so a repeat after a lost answer is refused.
CALL_TIMEOUT_S = 30.0
RETRY = retry.Retry(
    predicate=retry.if_exception_type(
        gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError, gexc.Aborted, gexc.Unknown
    ),
    initial=0.5,
    maximum=10.0,
    multiplier=2.0,
    timeout=90.0,
)


def _retried() -> dict[str, Any]:
    return {"timeout": CALL_TIMEOUT_S, "retry": RETRY}


@functools.cache
def publisher(cfg: Config) -> pubsub_v1.PublisherClient:
    return pubsub_v1.PublisherClient()


@functools.cache
def subscriber(cfg: Config) -> pubsub_v1.SubscriberClient:
    return pubsub_v1.SubscriberClient()


def topic_path(cfg: Config, topic: str) -> str:
    return publisher(cfg).topic_path(cfg.project, topic)


def subscription_path(cfg: Config, subscription: str) -> str:
    return subscriber(cfg).subscription_path(cfg.project, subscription)


def topic_ensure(cfg: Config, topic: str) -> bool:
    try:
        publisher(cfg).create_topic(request={"name": topic_path(cfg, topic)}, **_retried())
        return True
    except gexc.AlreadyExists:
        return False


def subscription_ensure(cfg: Config, subscription: str, topic: str, *, dead_letter_topic: str | None = None) -> bool:
    request: dict[str, object] = {
        "name": subscription_path(cfg, subscription),
        "topic": topic_path(cfg, topic),
        "ack_deadline_seconds": ACK_DEADLINE_S,
        "message_retention_duration": duration_pb2.Duration(seconds=RETENTION_S),
        "expiration_policy": NEVER_EXPIRES,
    }
    if dead_letter_topic:
        request["dead_letter_policy"] = {
            "dead_letter_topic": topic_path(cfg, dead_letter_topic),
            "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS,
        }
    try:
        subscriber(cfg).create_subscription(request=request, **_retried())
        return True
    except gexc.AlreadyExists:
        return False


def publish(cfg: Config, topic: str, data: bytes, **attributes: str) -> str:
    # Typed as Any: publish() takes its attributes as **kwargs beside its own keyword arguments (retry, timeout).
    message_attributes: dict[str, Any] = attributes
    return publisher(cfg).publish(topic_path(cfg, topic), data, **message_attributes).result(timeout=30)


@dataclass
class Pulled:
    """One message from a unary pull; acked in bulk with `acknowledge`, or handed back at once with `nack`."""

    cfg: Config
    subscription: str
    ack_id: str
    message_id: str
    data: bytes
    attributes: dict[str, str]

    def nack(self) -> None:
        subscriber(self.cfg).modify_ack_deadline(
            request={"subscription": self.subscription, "ack_ids": [self.ack_id], "ack_deadline_seconds": 0},
            **_retried(),
        )


def acknowledge(cfg: Config, messages: list[Pulled]) -> None:
    """Ack many pulled messages in one request per subscription."""
    by_subscription: dict[str, list[str]] = {}
    for message in messages:
        by_subscription.setdefault(message.subscription, []).append(message.ack_id)
    for subscription, ack_ids in by_subscription.items():
        subscriber(cfg).acknowledge(request={"subscription": subscription, "ack_ids": ack_ids}, **_retried())


# How long one listener pull is held open by the server when nothing is waiting. A pull returns as soon as messages
# arrive; the client only gives up (DeadlineExceeded) at the end of an idle hold. Pub/Sub hands a message to a pull it
# still holds, so a pull whose caller already left leases messages to no one (until the ack deadline, and each such
# lease is a delivery attempt: after 5, dead-lettered unseen). A 1 s client timeout opened that window every second;
# a long hold opens it once per idle PULL_HOLD_S. Pausing does not wait for the hold (see Listener.serve).
PULL_HOLD_S = 20.0


def hand_back(cfg: Config, messages: list[Pulled]) -> None:
    """Nack many pulled messages (ack deadline 0) in one request per subscription: redelivered at once."""
    by_subscription: dict[str, list[str]] = {}
    for message in messages:
        by_subscription.setdefault(message.subscription, []).append(message.ack_id)
    for subscription, ack_ids in by_subscription.items():
        subscriber(cfg).modify_ack_deadline(
            request={"subscription": subscription, "ack_ids": ack_ids, "ack_deadline_seconds": 0}, **_retried()
        )


def pull(cfg: Config, *, max_messages: int, wait_s: float = PULL_HOLD_S) -> list[Pulled]:
    """Long-poll the subscription once: returns as soon as messages are there, or empty after `wait_s`.

    Unary pull rather than streaming pull: each call is independent, so a listener that is paused, restarted
    or killed leaves nothing behind. (The Pub/Sub emulator keeps routing messages to a streaming pull whose
    client went away, so those messages would never be delivered again; checked with emulator 0.8.20.)
    Not retried: a retry after a lost answer would be a second pull while the first one's messages are leased.
    """
    path = subscription_path(cfg, cfg.subscription)
    try:
        response = subscriber(cfg).pull(
            request={"subscription": path, "max_messages": max_messages}, timeout=wait_s, retry=None
        )
    except gexc.DeadlineExceeded:
        return []
    return [
        Pulled(cfg, path, r.ack_id, r.message.message_id, r.message.data, dict(r.message.attributes))
        for r in response.received_messages
    ]


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, gexc.NotFound)


@dataclass(frozen=True)
class Peeked:
    message_id: str
    data: bytes
    attributes: dict[str, str]
    publish_time: datetime | None
    delivery_attempt: int


def peek(cfg: Config, subscription: str, *, limit: int, timeout_s: float = CALL_TIMEOUT_S) -> list[Peeked]:
    """Read up to `limit` messages without consuming them: pull, then nack all (ack deadline 0) at once.

    Each pull asks the server to answer at once with what it has (return_immediately): it is never held, so the
    client never leaves one that the server still fills, and an empty answer is the only sign of "no more". A short
    answer is not: Pub/Sub may return fewer messages than are waiting. The messages are held until the end, so a
    nacked one cannot come back within the same call."""
    path = subscription_path(cfg, subscription)
    seen: dict[str, Peeked] = {}
    ack_ids: list[str] = []
    try:
        while len(seen) < limit:
            response = subscriber(cfg).pull(
                request={
                    "subscription": path,
                    "max_messages": min(limit - len(seen), 100),
                    "return_immediately": True,
                },
                timeout=timeout_s,
                retry=None,
            )
            ack_ids += [r.ack_id for r in response.received_messages]
            fresh = [r for r in response.received_messages if r.message.message_id not in seen]
            if not fresh:
                break
            for r in fresh:
                seen[r.message.message_id] = _peeked(r)
    finally:
        if ack_ids:
            subscriber(cfg).modify_ack_deadline(
                request={"subscription": path, "ack_ids": ack_ids, "ack_deadline_seconds": 0}, **_retried()
            )
    return sorted(seen.values(), key=lambda p: (p.publish_time is None, p.publish_time), reverse=True)


def _peeked(r: Any) -> Peeked:
    m = r.message
    published = m.publish_time
    return Peeked(
        message_id=m.message_id,
        data=bytes(m.data),
        attributes=dict(m.attributes),
        publish_time=datetime.fromtimestamp(published.timestamp(), UTC) if published else None,
        delivery_attempt=r.delivery_attempt,
    )


# --- Live state and teardown, for the control plane's plan/apply/destroy ---

PUBLISHER_ROLE = "roles/pubsub.publisher"
SUBSCRIBER_ROLE = "roles/pubsub.subscriber"


def topic_get(cfg: Config, topic: str) -> dict[str, str] | None:
    try:
        found = publisher(cfg).get_topic(request={"topic": topic_path(cfg, topic)}, **_retried())
    except gexc.NotFound:
        return None
    return {"name": found.name}


def subscription_get(cfg: Config, subscription: str) -> dict[str, object] | None:
    """The settings the plan compares, or None when the subscription does not exist."""
    try:
        sub = subscriber(cfg).get_subscription(
            request={"subscription": subscription_path(cfg, subscription)}, **_retried()
        )
    except gexc.NotFound:
        return None
    retention = sub.message_retention_duration
    seconds = retention.total_seconds() if hasattr(retention, "total_seconds") else retention.seconds
    policy = sub.dead_letter_policy
    return {
        "expiration_ttl_seconds": _expiration_ttl_s(sub),
        "topic": sub.topic,
        "ack_deadline_seconds": int(sub.ack_deadline_seconds),
        "message_retention_seconds": int(seconds),
        "dead_letter_topic": policy.dead_letter_topic or None,
        "max_delivery_attempts": int(policy.max_delivery_attempts) if policy.dead_letter_topic else None,
    }


def _expiration_ttl_s(sub: Subscription) -> int | None:
    """None when the subscription never expires; the emulator leaves the policy out, as if the default applied."""
    if "expiration_policy" not in sub:
        return DEFAULT_EXPIRATION_TTL_S
    if "ttl" not in sub.expiration_policy:
        return None
    ttl = sub.expiration_policy.ttl
    return int(ttl.total_seconds() if hasattr(ttl, "total_seconds") else ttl.seconds)


# The fields subscription_get reports, by the update-mask path that sets each.
UPDATE_PATHS = {
    "ack_deadline_seconds": "ack_deadline_seconds",
    "message_retention_seconds": "message_retention_duration",
    "expiration_ttl_seconds": "expiration_policy",
    "dead_letter_topic": "dead_letter_policy",
    "max_delivery_attempts": "dead_letter_policy",
}


def subscription_update(
    cfg: Config, subscription: str, *, fields: Collection[str], dead_letter_topic: str | None = None
) -> None:
    """Bring the drifted `fields` (as subscription_get names them) of an existing subscription to the desired values.

    Only those go in the update mask: the emulator refuses a mask with expiration_policy, even unchanged."""
    paths = sorted({UPDATE_PATHS[f] for f in fields})
    body: dict[str, object] = {
        "name": subscription_path(cfg, subscription),
        "ack_deadline_seconds": ACK_DEADLINE_S,
        "message_retention_duration": duration_pb2.Duration(seconds=RETENTION_S),
        "expiration_policy": NEVER_EXPIRES,
        "dead_letter_policy": (
            {"dead_letter_topic": topic_path(cfg, dead_letter_topic), "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS}
            if dead_letter_topic
            else {}
        ),
    }
    subscriber(cfg).update_subscription(request={"subscription": body, "update_mask": {"paths": paths}}, **_retried())


def subscription_delete(cfg: Config, subscription: str) -> None:
    with contextlib.suppress(gexc.NotFound):  # already gone: deleting is idempotent
        subscriber(cfg).delete_subscription(
            request={"subscription": subscription_path(cfg, subscription)}, **_retried()
        )


def topic_delete(cfg: Config, topic: str) -> None:
    with contextlib.suppress(gexc.NotFound):
        publisher(cfg).delete_topic(request={"topic": topic_path(cfg, topic)}, **_retried())


def _iam_target(cfg: Config, topic: str | None, subscription: str | None) -> tuple[Any, str]:
    """The client whose get/set_iam_policy serve the resource, and the resource's path."""
    if topic is not None:
        return publisher(cfg), topic_path(cfg, topic)
    assert subscription is not None
    return subscriber(cfg), subscription_path(cfg, subscription)


def iam_members(cfg: Config, *, role: str, topic: str | None = None, subscription: str | None = None) -> list[str]:
    client, resource = _iam_target(cfg, topic, subscription)
    policy = client.get_iam_policy(request={"resource": resource}, **_retried())
    return sorted({m for b in policy.bindings if b.role == role for m in b.members})


def iam_grant(
    cfg: Config, *, role: str, member: str, topic: str | None = None, subscription: str | None = None
) -> bool:
    """Add one member to one role (read-modify-write with the policy's etag); False if it was already there."""
    client, resource = _iam_target(cfg, topic, subscription)
    policy = client.get_iam_policy(request={"resource": resource}, **_retried())
    for binding in policy.bindings:
        if binding.role == role:
            if member in binding.members:
                return False
            binding.members.append(member)
            break
    else:
        policy.bindings.add(role=role, members=[member])
    client.set_iam_policy(request={"resource": resource, "policy": policy}, timeout=CALL_TIMEOUT_S, retry=None)
    return True


def iam_revoke(
    cfg: Config, *, role: str, member: str, topic: str | None = None, subscription: str | None = None
) -> bool:
    client, resource = _iam_target(cfg, topic, subscription)
    try:
        policy = client.get_iam_policy(request={"resource": resource}, **_retried())
    except gexc.NotFound:
        return False
    for binding in policy.bindings:
        if binding.role == role and member in binding.members:
            binding.members.remove(member)
            client.set_iam_policy(request={"resource": resource, "policy": policy}, timeout=CALL_TIMEOUT_S, retry=None)
            return True
    return False


def service_agent_email(project_number: str) -> str:
    """The Pub/Sub service agent: it forwards undeliverable messages to a dead-letter topic."""
    return f"service-{project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"


def iam_permissions(
    cfg: Config, permissions: Sequence[str], *, topic: str | None = None, subscription: str | None = None
) -> set[str] | None:
    """Which of `permissions` the caller holds on the topic or subscription; None when it does not exist."""
    client, resource = _iam_target(cfg, topic, subscription)
    try:
        response = client.test_iam_permissions(
            request={"resource": resource, "permissions": list(permissions)}, **_retried()
        )
    except gexc.NotFound:
        return None
    return set(response.permissions)
