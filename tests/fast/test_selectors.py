"""The dashboard's pure reads: the listener's state from its heartbeat, latency percentiles."""

from __future__ import annotations

import pytest

from controlplane import selectors


def test_listener_state_from_the_heartbeat() -> None:
    now = 1_000_000.0
    beat = {"state": "running", "at": now - 2, "started_at": now - 100, "received": 7, "enqueued": 5}
    assert selectors.listener_state(None, desired="running", now=now)["state"] == "dead"
    assert selectors.listener_state(beat, desired="running", now=now)["state"] == "running"
    assert selectors.listener_state(beat, desired="running", now=now)["received"] == 7
    assert selectors.listener_state({**beat, "state": "paused"}, desired="paused", now=now)["state"] == "paused"
    stale = selectors.listener_state(beat, desired="running", now=now + 60)
    assert stale["state"] == "dead" and "last heartbeat 62 s ago" in stale["detail"]
    assert (
        selectors.listener_state({**beat, "state": "stopped"}, desired="running", now=now + 600)["state"] == "stopped"
    )


def test_percentiles_of_few_values() -> None:
    assert selectors._percentile([], 95) is None
    assert selectors._percentile([3.0], 95) == 3.0
    assert selectors._percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert selectors._percentile([float(v) for v in range(1, 101)], 95) == pytest.approx(95.05)
