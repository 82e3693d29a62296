"""Notifications -> jobs: one job per object generation however often Pub/Sub delivers; a pull's acks.

Parsing a notification is tested in the fast tier (tests/fast/test_listener.py)."""

from __future__ import annotations

import json
import threading
import time
from unittest import mock

import pytest
from rq.job import Job

from classifier import ledger
from classifier.cloud import pubsub
from classifier.listener import HEARTBEAT_KEY, TICK_S, Listener, desired_set
from classifier.queue import enqueue_classification, queue
from tests.helpers import FINALIZE, wait_for


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


# --- How the listener pulls (checked at the client boundary: no emulator shows a pull its client left) ----------


def _message(cfg, n: int):
    from google.pubsub_v1.types import ReceivedMessage

    attributes = {**FINALIZE, "bucketId": cfg.bucket, "objectId": f"held/{n}.png", "objectGeneration": str(n)}
    return ReceivedMessage(ack_id=f"ack-{n}", message={"message_id": f"m{n}", "attributes": attributes})


@pytest.fixture
def held_pull(cfg, stack):
    """A subscriber whose pull is held by the 'server' until released, as real Pub/Sub holds an idle pull."""
    from google.pubsub_v1.types import PullResponse

    release = threading.Event()
    answers: list[list] = []
    fake = mock.create_autospec(pubsub.pubsub_v1.SubscriberClient, instance=True)
    fake.subscription_path.side_effect = pubsub.pubsub_v1.SubscriberClient.subscription_path

    def pull(request, timeout, retry):
        release.wait(timeout)
        release.clear()
        return PullResponse(received_messages=answers.pop(0) if answers else [])

    fake.pull.side_effect = pull
    with mock.patch.object(pubsub, "subscriber", autospec=True, return_value=fake):
        yield fake, release, answers


def _serving(cfg):
    stop = threading.Event()
    listener = Listener(cfg)
    thread = threading.Thread(target=listener.serve, args=(stop,), daemon=True)
    thread.start()
    return listener, stop, thread


def _heartbeat(cfg) -> dict:
    return json.loads(ledger.connection(cfg).get(HEARTBEAT_KEY))


def test_the_listener_holds_long_pulls_and_reports_and_obeys_pause_while_one_is_held(cfg, held_pull):
    """A long server-held pull (never a 1 s client timeout that leaves pulls the server still fills), with the
    heartbeat and pause on their own loop: "Stop listener" takes effect within a tick even mid-pull, and what the held
    pull then brings is handed back at once, never taken."""
    fake, release, answers = held_pull
    redis = ledger.connection(cfg)
    desired_set(redis, "running")
    listener, stop, thread = _serving(cfg)
    try:
        assert wait_for(lambda: fake.pull.called, timeout=5)
        request = fake.pull.call_args.kwargs
        assert request["timeout"] == pubsub.PULL_HOLD_S >= 20 and request["retry"] is None
        first = _heartbeat(cfg)["at"]
        assert wait_for(lambda: _heartbeat(cfg)["at"] > first, timeout=3)  # beats while the pull is held

        desired_set(redis, "paused")
        assert wait_for(lambda: _heartbeat(cfg)["state"] == "paused", timeout=3)
        answers.append([_message(cfg, 1), _message(cfg, 2)])
        release.set()  # the held pull now brings two messages, after "Stop"
        assert wait_for(lambda: fake.modify_ack_deadline.called, timeout=3)
        handed_back = fake.modify_ack_deadline.call_args.kwargs["request"]
        assert handed_back["ack_ids"] == ["ack-1", "ack-2"] and handed_back["ack_deadline_seconds"] == 0
        assert listener.enqueued == 0 and not fake.acknowledge.called
        calls = fake.pull.call_count
        time.sleep(2 * TICK_S)
        assert fake.pull.call_count == calls  # paused: no new pull
    finally:
        desired_set(redis, "running")
        stop.set()
        release.set()
        thread.join(10)
    assert _heartbeat(cfg)["state"] == "stopped"


def test_peek_reads_past_short_answers_without_holding_a_pull(cfg, stack):
    """Pub/Sub may answer a pull with fewer messages than are waiting: only an empty answer means "no more"."""
    from google.pubsub_v1.types import PullResponse

    fake = mock.create_autospec(pubsub.pubsub_v1.SubscriberClient, instance=True)
    fake.subscription_path.side_effect = pubsub.pubsub_v1.SubscriberClient.subscription_path
    answers = [[_message(cfg, 1), _message(cfg, 2)], [_message(cfg, 3)], [_message(cfg, 4), _message(cfg, 5)], []]
    fake.pull.side_effect = [PullResponse(received_messages=a) for a in answers]
    with mock.patch.object(pubsub, "subscriber", autospec=True, return_value=fake):
        peeked = pubsub.peek(cfg, cfg.dead_letter_subscription, limit=50)
    assert sorted(p.message_id for p in peeked) == ["m1", "m2", "m3", "m4", "m5"]
    assert fake.pull.call_count == 4
    assert all(c.kwargs["request"]["return_immediately"] is True for c in fake.pull.call_args_list)
    (nack,) = fake.modify_ack_deadline.call_args_list
    assert nack.kwargs["request"]["ack_ids"] == [f"ack-{n}" for n in range(1, 6)]
