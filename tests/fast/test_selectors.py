"""The dashboard's pure reads: the listener's state from its heartbeat, latency percentiles."""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta

from classifier import stats
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


def test_percentiles_from_the_workers_bucketed_histogram() -> None:
    """The dashboard's p50/p95 come from the per-minute histograms the workers record (classifier.stats)."""
    hist = [0] * (len(stats.BUCKETS_S) + 1)
    assert stats.percentile(hist, 50) is None
    for latency in [0.8] * 50 + [25.0] * 50:
        hist[bisect.bisect_left(stats.BUCKETS_S, latency)] += 1
    assert 0.75 <= stats.percentile(hist, 50) <= 1.0
    assert 20 <= stats.percentile(hist, 95) <= 30
    one = [0] * len(hist)
    one[bisect.bisect_left(stats.BUCKETS_S, 3.0)] = 1
    assert 2.0 < stats.percentile(one, 50) <= 3.0


def test_a_window_is_the_last_day_or_what_the_filter_names() -> None:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    start, end = selectors.ClassificationFilter().window(now)
    assert end - start == selectors.WINDOW and end == now + selectors.CLOCK_SLACK
    before = datetime(2026, 11, 20, tzinfo=UTC)
    assert selectors.ClassificationFilter(before=before).window(now) == (before - selectors.WINDOW, before)
    since = now - timedelta(days=7)
    assert selectors.ClassificationFilter(since=since).window(now) == (since, now + selectors.CLOCK_SLACK)
