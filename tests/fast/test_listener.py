"""A notification's attributes -> the object generation to classify, or why not; its deterministic job id."""

from __future__ import annotations

import pytest

from classifier import jobs
from classifier.listener import BadMessage, ObjectEvent, event_age_s, parse
from tests.helpers import FINALIZE


def test_finalize_becomes_a_notification():
    assert parse(FINALIZE) == ObjectEvent("b", "dir/with space/çat.png", 1795603288518325, "2026-11-25T10:41:28.123Z")


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


@pytest.mark.parametrize(
    ("event_time", "age"),
    [
        ("2026-11-25T10:41:28.123Z", 3600.0),
        ("2026-11-25T10:41:28.123456789Z", 3600.0),  # nanoseconds, as Go's RFC 3339 writes them
        ("2026-11-25T10:41:28.123", 3600.0),  # no zone: UTC, as Cloud Storage means it
        (None, None),
        ("yesterday", None),
    ],
)
def test_a_notifications_age_comes_from_its_event_time(event_time, age):
    now = 1795603288.123 + 3600  # 2026-11-25T11:41:28.123Z
    found = event_age_s(ObjectEvent("b", "n", 1, event_time), now)
    assert found == pytest.approx(age, abs=0.01) if age is not None else found is None
