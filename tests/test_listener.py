"""Notifications -> jobs: one job per object generation however often Pub/Sub delivers; a pull's acks.

Parsing a notification is tested in the fast tier (tests/fast/test_listener.py)."""

from __future__ import annotations

from rq.job import Job

from classifier.queue import enqueue_classification, queue
from tests.helpers import FINALIZE


def test_redelivery_does_not_enqueue_twice(cfg, stack, prefix):
    name = f"{prefix}never-uploaded.png"
    q = queue(cfg)
    job_id, created = enqueue_classification(cfg, bucket=cfg.bucket, name=name, generation=7, event_time=None)
    again_id, again = enqueue_classification(cfg, bucket=cfg.bucket, name=name, generation=7, event_time=None)
    assert created is True and again is False and again_id == job_id
    job = Job.fetch(job_id, connection=q.connection, serializer=q.serializer)
    assert job.kwargs == {"bucket": cfg.bucket, "name": name, "generation": 7, "event_time": None}
    _, other = enqueue_classification(cfg, bucket=cfg.bucket, name=name, generation=8, event_time=None)
    assert other is True


def test_a_pulls_messages_are_acked_in_one_request_after_each_was_handled(cfg, stack, prefix, monkeypatch):
    """One ack request per pull (not per message), covering every handled message: the enqueued, the duplicate,
    the ignored and the dead-lettered. (One that cannot be enqueued is never acked: see test_delivery.)"""
    import dataclasses

    from classifier.cloud import pubsub
    from classifier.listener import Listener

    topic, subscription = f"acks-{prefix.strip('/')}", f"acks-{prefix.strip('/')}-sub"
    lonely = dataclasses.replace(cfg, subscription=subscription, queue_name=f"acks-{prefix.strip('/')}")
    pubsub.topic_ensure(cfg, topic)
    pubsub.subscription_ensure(cfg, subscription, topic)
    try:
        finalize = {**FINALIZE, "bucketId": cfg.bucket}
        for i, attributes in enumerate(
            [
                {**finalize, "objectId": f"{prefix}a.png"},
                {**finalize, "objectId": f"{prefix}a.png"},  # the same generation again: a duplicate
                {**finalize, "eventType": "OBJECT_DELETE", "objectId": f"{prefix}b.png"},
                {"unrelated": "yes"},  # dead-lettered
            ]
        ):
            pubsub.publish(cfg, topic, b"{}", **attributes, order=str(i))
        messages = _pull_all(lonely, 4)

        acks: list[list[str]] = []
        real = pubsub.acknowledge
        monkeypatch.setattr(pubsub, "acknowledge", lambda c, ms: (acks.append([m.ack_id for m in ms]), real(c, ms)))
        outcomes = Listener(lonely).handle_messages(sorted(messages, key=lambda m: int(m.attributes["order"])))

        assert outcomes == ["enqueued", "duplicate", "ignored", "dead_letter"]
        assert len(acks) == 1 and len(acks[0]) == 4
        # Hand every lease back at once: an acked message cannot come again, any other would.
        pubsub.subscriber(cfg).modify_ack_deadline(
            request={
                "subscription": pubsub.subscription_path(cfg, subscription),
                "ack_ids": [m.ack_id for m in messages],
                "ack_deadline_seconds": 0,
            }
        )
        assert pubsub.pull(lonely, max_messages=10, wait_s=2.0) == []
    finally:
        queue(lonely).empty()
        pubsub.subscription_delete(cfg, subscription)
        pubsub.topic_delete(cfg, topic)


def _pull_all(cfg, count: int, timeout_s: float = 10.0) -> list:
    import time

    from classifier.cloud import pubsub

    messages: list = []
    deadline = time.monotonic() + timeout_s
    while len(messages) < count and time.monotonic() < deadline:
        messages += pubsub.pull(cfg, max_messages=count - len(messages), wait_s=1.0)
    assert len(messages) == count
    return messages
