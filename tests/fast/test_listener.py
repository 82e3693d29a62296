"""A notification's attributes -> the object generation to classify, or why not; its deterministic job id."""

from __future__ import annotations

import pytest

from classifier import jobs
from classifier.listener import BadMessage, ObjectEvent, parse
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
