"""The desired state of one pipeline's cloud resources, from settings, in dependency order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from classifier.cloud import bigquery, gcs, pubsub
from classifier.config import Config

DATASET = "bigquery_dataset"
TABLE = "bigquery_table"
TOPIC = "pubsub_topic"
SUBSCRIPTION = "pubsub_subscription"
TOPIC_IAM = "pubsub_topic_iam_member"
SUBSCRIPTION_IAM = "pubsub_subscription_iam_member"
BUCKET = "storage_bucket"
NOTIFICATION = "storage_notification"

GCS_SERVICE_AGENT = "the Cloud Storage service agent"
PUBSUB_SERVICE_AGENT = "the Pub/Sub service agent"
AGENTS = {"storage": GCS_SERVICE_AGENT, "pubsub": PUBSUB_SERVICE_AGENT}


@dataclass(frozen=True)
class Resource:
    kind: str
    name: str
    attrs: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class StackSpec:
    cfg: Config
    resources: tuple[Resource, ...]

    @property
    def local(self) -> bool:
        return self.cfg.local

    def resource(self, key: str) -> Resource:
        return next(r for r in self.resources if r.key == key)


def _subscription(cfg: Config, name: str, topic: str, dead_letter_topic: str | None) -> Resource:
    return Resource(
        SUBSCRIPTION,
        name,
        {
            "topic": f"projects/{cfg.project}/topics/{topic}",
            "ack_deadline_seconds": pubsub.ACK_DEADLINE_S,
            "message_retention_seconds": pubsub.RETENTION_S,
            "expiration_ttl_seconds": None,  # never expires
            "dead_letter_topic": f"projects/{cfg.project}/topics/{dead_letter_topic}" if dead_letter_topic else None,
            "max_delivery_attempts": pubsub.MAX_DELIVERY_ATTEMPTS if dead_letter_topic else None,
            "_topic": topic,
            "_dead_letter_topic": dead_letter_topic,
        },
    )


def _grant(kind: str, target: str, role: str, agent: str) -> Resource:
    """`agent` names a Google-managed service account ("storage" or "pubsub"), resolved when live state is read."""
    attrs = {"topic" if kind == TOPIC_IAM else "subscription": target, "role": role, "agent": agent}
    return Resource(kind, f"{target} {role} {AGENTS[agent]}", attrs)


def stack_spec(*, cfg: Config) -> StackSpec:
    """Every resource, each after the ones it needs: the tables before anything can write to them, the topics before
    their subscriptions, the topic and its publisher grant before the bucket starts notifying.

    Dead-lettering on GCP needs the Pub/Sub service agent to publish to the dead-letter topic and to subscribe to the
    subscription it forwards from; without those grants undeliverable messages are silently retried forever."""
    resources = (
        Resource(DATASET, cfg.dataset_id),
        Resource(
            TABLE, cfg.table_id, {"schema": bigquery.CLASSIFICATIONS_SCHEMA, "shape": bigquery.CLASSIFICATIONS_SHAPE}
        ),
        Resource(TABLE, cfg.failures_table_id, {"schema": bigquery.FAILURES_SCHEMA, "shape": bigquery.FAILURES_SHAPE}),
        Resource(TOPIC, cfg.dead_letter_topic),
        _grant(TOPIC_IAM, cfg.dead_letter_topic, pubsub.PUBLISHER_ROLE, "pubsub"),
        _subscription(cfg, cfg.dead_letter_subscription, cfg.dead_letter_topic, None),
        Resource(TOPIC, cfg.topic),
        _subscription(cfg, cfg.subscription, cfg.topic, cfg.dead_letter_topic),
        _grant(SUBSCRIPTION_IAM, cfg.subscription, pubsub.SUBSCRIBER_ROLE, "pubsub"),
        _grant(TOPIC_IAM, cfg.topic, pubsub.PUBLISHER_ROLE, "storage"),
        Resource(BUCKET, cfg.bucket),
        Resource(
            NOTIFICATION,
            f"gs://{cfg.bucket} -> {cfg.topic}",
            {
                "bucket": cfg.bucket,
                "topic": f"projects/{cfg.project}/topics/{cfg.topic}",
                "event_types": gcs.NOTIFICATION_EVENT_TYPES,
                "payload_format": gcs.NOTIFICATION_PAYLOAD_FORMAT,
            },
        ),
    )
    return StackSpec(cfg=cfg, resources=resources)
