"""Notifications -> jobs: parsing, and one job per object generation however often Pub/Sub delivers."""

from __future__ import annotations

import pytest
from rq.job import Job

from classifier import jobs
from classifier.queue import enqueue_classification, queue
from controlplane.listener import BadMessage, Notification, parse

FINALIZE = {
    "eventType": "OBJECT_FINALIZE",
    "payloadFormat": "JSON_API_V1",
    "bucketId": "b",
    "objectId": "dir/with space/çat.png",
    "objectGeneration": "1795603288518325",
    "eventTime": "2026-11-25T10:41:28.123Z",
}


def test_finalize_becomes_a_notification():
    assert parse(FINALIZE) == Notification("b", "dir/with space/çat.png", 1795603288518325, "2026-11-25T10:41:28.123Z")


@pytest.mark.parametrize("event", ["OBJECT_DELETE", "OBJECT_METADATA_UPDATE", "OBJECT_ARCHIVE"])
def test_other_events_are_ignored(event):
    assert parse({**FINALIZE, "eventType": event}) is None


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ({}, "no eventType"),
        ({**FINALIZE, "objectGeneration": "abc"}, "not an integer"),
        ({k: v for k, v in FINALIZE.items() if k != "objectId"}, "missing attribute objectId"),
        ({**FINALIZE, "payloadFormat": "XML"}, "unsupported payloadFormat"),
    ],
)
def test_unparseable_messages_say_why(attributes, reason):
    with pytest.raises(BadMessage, match=reason):
        parse(attributes)


def test_job_id_is_deterministic_and_distinct_per_generation():
    assert jobs.job_id("b", "x.png", 1) == jobs.job_id("b", "x.png", 1)
    assert jobs.job_id("b", "x.png", 1) != jobs.job_id("b", "x.png", 2)
    assert jobs.job_id("b", "x.png", 1) != jobs.job_id("c", "x.png", 1)


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
