"""Reads of the dead-letter topic: notifications the listener could not parse, kept for an operator to see.

The listener publishes them with a `sightline_error` attribute; Pub/Sub also forwards there a message that
failed delivery MAX_DELIVERY_ATTEMPTS times. The inspect subscription is read with pull-then-nack, so
listing never consumes them (they stay for the subscription's 7-day retention).
"""

from __future__ import annotations

from typing import Any

from classifier.cloud import pubsub
from classifier.config import Config

PREVIEW_CHARS = 300


def dead_letter_list(cfg: Config, limit: int = 50) -> list[dict[str, Any]]:
    """Newest first: message id, when it was published, why it is here, its attributes and a data preview."""
    messages = pubsub.peek(cfg, cfg.dead_letter_subscription, limit=limit)
    return [
        {
            "message_id": m.message_id,
            "published_at": m.publish_time,
            "error": m.attributes.get("sightline_error") or "delivery attempts exhausted",
            "attributes": {k: v for k, v in m.attributes.items() if k != "sightline_error"},
            "object": m.attributes.get("objectId"),
            "data_preview": m.data[:PREVIEW_CHARS].decode("utf-8", errors="replace"),
            "size_bytes": len(m.data),
        }
        for m in messages
    ]
