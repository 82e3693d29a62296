"""A notification's attributes -> the object generation to classify, or why not; its deterministic job id."""

from __future__ import annotations

import pytest

from classifier import jobs, ledger
from classifier.listener import BadMessage, ObjectEvent, event_age_s, parse
from tests.helpers import FINALIZE

BUCKET = FINALIZE["bucketId"]


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
