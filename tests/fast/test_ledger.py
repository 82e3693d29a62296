"""The ledger's keys name one object generation; Redis replies read as text."""

from __future__ import annotations

import pytest

from classifier import ledger


@pytest.mark.parametrize("name", ["cat.png", "dir/with space/çat#1.png", "a/b/c"])
def test_an_object_key_parses_back(name: str) -> None:
    key = ledger.object_key("bucket-1", name, 1795603288518325)
    assert key == f"bucket-1/{name}#1795603288518325"
    assert ledger.parse_key(key) == ("bucket-1", name, 1795603288518325)


def test_replies_are_text_whichever_type_redis_answers() -> None:
    assert ledger.text(b"paused") == "paused"
    assert ledger.text("paused") == "paused"


def test_a_record_is_a_bucketed_64_bit_member() -> None:
    record = ledger._record("bucket-1/cat.png#1795603288518325")
    assert record == ledger._record("bucket-1/cat.png#1795603288518325")  # deterministic
    assert -(2**63) <= int(record.member) < 2**63
    assert 0 <= int(record.bucket, 16) < 2**ledger.BUCKET_BITS
    assert record != ledger._record("bucket-1/cat.png#1795603288518326")  # another generation, another record


def test_the_window_covers_pubsubs_retention_with_a_margin() -> None:
    from classifier.cloud import pubsub

    assert ledger.WINDOW_S > pubsub.RETENTION_S
    days = ledger._days()
    assert len(days) == ledger.WINDOW_DAYS + 1 and days[0] == ledger._day()
    # A set written today expires WINDOW_DAYS after today ends: every lookup in the window still finds it.
    assert ledger._expire_at(days[0]) - ledger.time.time() > ledger.WINDOW_S
