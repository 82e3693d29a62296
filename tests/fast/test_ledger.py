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
