"""Notifications -> jobs: parsing, and one job per object generation however often Pub/Sub delivers."""

from __future__ import annotations

import pytest
from rq.job import Job

from classifier import jobs, ledger
from classifier.listener import BadMessage, ObjectEvent, parse
from classifier.queue import enqueue_classification, queue
from controlplane.deadletters import dead_letter_list

BUCKET = "sightline-images"
FINALIZE = {
    "eventType": "OBJECT_FINALIZE",
    "payloadFormat": "JSON_API_V1",
    "bucketId": BUCKET,
    "objectId": "dir/with space/çat.png",
    "objectGeneration": "1795603288518325",
    "eventTime": "2026-11-25T10:41:28.123Z",
}


def test_finalize_becomes_a_notification():
    event = ObjectEvent(BUCKET, "dir/with space/çat.png", 1795603288518325, "2026-11-25T10:41:28.123000Z")
    assert parse(FINALIZE, bucket=BUCKET) == event


@pytest.mark.parametrize("event", ["OBJECT_DELETE", "OBJECT_METADATA_UPDATE", "OBJECT_ARCHIVE"])
def test_other_events_are_ignored(event):
    assert parse({**FINALIZE, "eventType": event}, bucket=BUCKET) is None


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("2026-11-25T10:41:28Z", "2026-11-25T10:41:28.000000Z"),
        ("2026-11-25t10:41:28.5z", "2026-11-25T10:41:28.500000Z"),
        ("2026-11-25T11:41:28.123456789+01:00", "2026-11-25T10:41:28.123456Z"),
    ],
)
def test_event_time_is_rfc3339_normalised_to_utc(raw, normalised):
    assert parse({**FINALIZE, "eventTime": raw}, bucket=BUCKET).event_time == normalised


def test_names_gcs_allows_are_kept_as_they_are():
    for name in ("#", "a#1", "%2F..%2F", "x" * 1024, "é" * 512, "tab\there", "dir/"):
        assert parse({**FINALIZE, "objectId": name}, bucket=BUCKET).name == name


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({}, "no eventType"),
        ({**FINALIZE, "objectGeneration": "abc"}, "not a positive 64-bit integer"),
        ({k: v for k, v in FINALIZE.items() if k != "objectId"}, "missing attribute objectId"),
        ({**FINALIZE, "payloadFormat": "XML"}, "unsupported payloadFormat"),
        # Forged or odd: another bucket (read with our service account, shown to every viewer), and the bucket
        # "b/dir" whose object "x" would share the key `b/dir/x#1` with the real object "dir/x".
        ({**FINALIZE, "bucketId": "someone-elses-bucket"}, "is not the pipeline's bucket"),
        ({**FINALIZE, "bucketId": f"{BUCKET}/dir", "objectId": "x"}, "is not the pipeline's bucket"),
        ({**FINALIZE, "objectGeneration": "0"}, "not a positive 64-bit integer"),
        ({**FINALIZE, "objectGeneration": "-5"}, "not a positive 64-bit integer"),
        ({**FINALIZE, "objectGeneration": str(2**63)}, "not a positive 64-bit integer"),
        ({**FINALIZE, "objectGeneration": "1_000"}, "not a positive 64-bit integer"),
        ({**FINALIZE, "objectId": ""}, "0 bytes"),
        ({**FINALIZE, "objectId": "x" * 1025}, "1025 bytes"),
        ({**FINALIZE, "objectId": "é" * 513}, "1026 bytes"),
        ({**FINALIZE, "objectId": "a\nb"}, "not a Cloud Storage object name"),
        ({**FINALIZE, "objectId": "a\rb"}, "not a Cloud Storage object name"),
        ({**FINALIZE, "objectId": "a\x00b"}, "not a Cloud Storage object name"),
        ({**FINALIZE, "objectId": ".."}, "not a Cloud Storage object name"),
        ({**FINALIZE, "objectId": "\ud800"}, "not valid UTF-8"),
        ({**FINALIZE, "eventTime": "yesterday"}, "not an RFC 3339"),
        ({**FINALIZE, "eventTime": "2026-11-25"}, "not an RFC 3339"),
        ({**FINALIZE, "eventTime": "2026-13-45T10:00:00Z"}, "not an RFC 3339"),
        ({**FINALIZE, "eventTime": "2026-11-25T10:41:28"}, "not an RFC 3339"),  # no offset: which zone?
        ({**FINALIZE, "eventTime": "0001-01-01T00:00:00+01:00"}, "not an RFC 3339"),  # before year 1 in UTC
    ],
)
def test_unparseable_messages_say_why(attributes, reason):
    with pytest.raises(BadMessage, match=reason):
        parse(attributes, bucket=BUCKET)


def test_object_keys_cannot_collide():
    assert ledger.object_key("b", "dir/x", 1) == "b/dir/x#1"
    with pytest.raises(ValueError):
        ledger.object_key("b/dir", "x", 1)
    for bucket, name, generation in [("b", "dir/x#2", 1), ("b", "x/", 3), ("b", "#", 4)]:
        assert ledger.parse_key(ledger.object_key(bucket, name, generation)) == (bucket, name, generation)


def test_job_id_is_deterministic_and_distinct_per_generation():
    assert jobs.job_id("b", "x.png", 1) == jobs.job_id("b", "x.png", 1)
    assert jobs.job_id("b", "x.png", 1) != jobs.job_id("b", "x.png", 2)
    assert jobs.job_id("b", "x.png", 1) != jobs.job_id("c", "x.png", 1)
    with pytest.raises(ValueError):  # would share the job (and ledger entry) of "dir/x" in bucket "b"
        jobs.job_id("b/dir", "x", 1)


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
                # Forged: another bucket, and a `sightline_error` of its own to overwrite: dead-lettered, with our reason.
                {**finalize, "bucketId": "someone-elses", "objectId": f"{prefix}forged", "sightline_error": "fine"},
            ]
        ):
            pubsub.publish(cfg, topic, b"{}", **attributes, order=str(i))
        messages = _pull_all(lonely, 5)

        acks: list[list[str]] = []
        real = pubsub.acknowledge
        monkeypatch.setattr(pubsub, "acknowledge", lambda c, ms: (acks.append([m.ack_id for m in ms]), real(c, ms)))
        outcomes = Listener(lonely).handle_messages(sorted(messages, key=lambda m: int(m.attributes["order"])))

        assert outcomes == ["enqueued", "duplicate", "ignored", "dead_letter", "dead_letter"]
        assert len(acks) == 1 and len(acks[0]) == 5
        forged = [m for m in dead_letter_list(cfg, 100) if m["object"] == f"{prefix}forged"]
        assert [m["error"] for m in forged] == [
            f"bucketId 'someone-elses' is not the pipeline's bucket {cfg.bucket!r}"
        ], forged
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
