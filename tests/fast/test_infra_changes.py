"""The Change/Plan model: what the summary says and what the checksum the operator agrees to covers."""

from __future__ import annotations

import dataclasses
from typing import Any

from controlplane.infra.changes import CREATE, DELETE, NOOP, PROVIDED, REPLACE, UPDATE, Change, Plan


def change(action: str, name: str = "x", **extra: Any) -> Change:
    return Change(action, "storage_bucket", name, "why", **extra)


def test_symbols_and_what_is_pending():
    assert [change(a).symbol for a in (CREATE, UPDATE, DELETE, REPLACE, NOOP, PROVIDED)] == [
        "+",
        "~",
        "-",
        "-/+",
        "=",
        "=",
    ]
    plan = Plan("apply", (change(CREATE, "a"), change(NOOP, "b"), change(PROVIDED, "c"), change(UPDATE, "d")))
    assert [c.name for c in plan.pending] == ["a", "d"] and plan.has_changes
    assert not Plan("apply", (change(NOOP),)).has_changes


def test_the_summary_counts_replacements_as_changes_and_says_apply_will_not_do_them():
    plan = Plan("apply", (change(CREATE), change(UPDATE), change(REPLACE), change(DELETE), change(DELETE)))
    assert plan.summary == (
        "Plan: 1 to create, 2 to change, 2 to destroy. "
        "1 change(s) need a destructive replacement: apply will not do them."
    )
    assert Plan("apply").summary == "Plan: 0 to create, 0 to change, 0 to destroy."


def test_the_checksum_ignores_how_much_data_but_not_whether_there_is_any():
    def plan(rows: int) -> Plan:
        return Plan("destroy", (change(DELETE, data_count=rows, data_noun="rows"),))

    assert plan(3).checksum == plan(300).checksum
    assert plan(0).checksum != plan(3).checksum
    assert Plan("apply", plan(3).changes).checksum != plan(3).checksum  # the mode is part of it
    moved = dataclasses.replace(plan(3).changes[0], reason="another reason")
    assert Plan("destroy", (moved,)).checksum != plan(3).checksum


def test_data_at_risk_and_its_label():
    held = change(DELETE, "b", data_count=2, data_noun="objects")
    plan = Plan("destroy", (held, change(DELETE, "t"), change(NOOP, "n", data_count=5, data_noun="rows")))
    assert plan.data_at_risk == [held] and held.data_label == "2 objects" and change(DELETE).data_label == ""


def test_as_dict_is_json_ready():
    d = change(UPDATE, details=("a", "b")).as_dict()
    assert d["details"] == ["a", "b"] and d["symbol"] == "~" and d["kind"] == "storage_bucket"
