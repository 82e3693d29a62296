"""Live figures without scans: what the workers record in Redis, shared by every tab and process once per refresh."""

from __future__ import annotations

import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.test import Client
from django.urls import reverse

from bench import bqaudit
from classifier import ledger, stats
from classifier.config import Config
from controlplane import livecache, views
from tests.helpers import insert_row


def test_many_tabs_cost_one_set_of_bigquery_reads_per_refresh(
    staff: Client, viewer: Client, cfg: Config, stack: Any
) -> None:
    folder = f"t-{uuid.uuid4().hex[:8]}/"
    for i in range(views.PAGE_SIZE + 1):  # written as workers write: the live list needs no query at all
        insert_row(cfg, f"{folder}tab-{i}.png", [("tabby", 0.5)])
    livecache.forget_all()
    tabs = [staff, viewer] * 3
    with bqaudit.recording() as seen:
        for tab in tabs[:5]:  # five open dashboards refreshing within one interval
            assert tab.get(reverse("recent_partial")).status_code == 200
            assert tab.get(reverse("health_partial")).status_code == 200
    one_tab = len(seen)
    assert one_tab == 1, [q.sql for q in seen]  # the open-failure count; the objective comes from Redis counters
    time.sleep(livecache.REFRESH_S + 0.2)
    with bqaudit.recording() as seen:
        for tab in tabs[:5]:
            tab.get(reverse("recent_partial"))
            tab.get(reverse("health_partial"))
    assert len(seen) == 0  # the list from Redis; the failure count is shared for 30 s, the objective for 60 s


def test_the_page_says_how_old_each_figure_is(staff: Client, cfg: Config, stack: Any) -> None:
    livecache.forget_all()
    staff.get(reverse("dashboard"))
    time.sleep(1.1)
    html = staff.get(reverse("dashboard")).content.decode()
    assert 'id="recent-window"' in html and 'id="failures-age"' in html and "open count as of" in html
    # The shared figures computed by the first request have aged (by 1 s, or more if it was slow).
    ages = [int(a) for a in re.findall(r"as of (\d+) s ago", html)]
    assert ages and max(ages) >= 1


def test_throughput_and_latency_come_from_what_workers_recorded_not_from_bigquery(
    staff: Client, cfg: Config, stack: Any
) -> None:
    redis = ledger.connection(cfg)
    now = datetime.now(UTC)
    before = stats.throughput(redis, minutes=15)["rows"]
    rows = [{"upload": (now - timedelta(seconds=s)).isoformat(), "processed_at": now.isoformat()} for s in (1, 2, 40)]
    stats.record(redis, rows=rows, failures=[{"failed_at": now.isoformat()}])  # nothing in BigQuery
    livecache.forget_all()
    with bqaudit.recording() as seen:
        response = staff.get(reverse("health_partial"))
    tp = response.context["tp"]
    assert tp["rows"] == before + 3 and tp["failed"] >= 1
    assert tp["p50"] is not None and tp["p95"] >= tp["p50"]
    # No scan of the rows for any figure, the objective's 30 days included.
    assert not [q for q in seen if "processed_at" in q.sql]


def test_one_process_computes_while_the_others_wait_for_it(cfg: Config, stack: Any) -> None:
    livecache.forget_all()
    calls: list[int] = []

    def slow() -> str:
        calls.append(1)
        time.sleep(0.5)
        return "figure"

    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(livecache.shared("test:slow", slow))) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and [value for value, _age in results] == ["figure"] * 5


def test_an_unreachable_shared_cache_still_shows_the_figure(monkeypatch: Any) -> None:
    from unittest import mock

    from redis.exceptions import ConnectionError as RedisConnectionError

    broken = mock.Mock(**{"get.side_effect": RedisConnectionError("refused")})
    monkeypatch.setattr(livecache, "_cache", lambda: broken)
    assert livecache.shared("test:down", lambda: 42) == (42, 0.0)


def test_stale_ok_serves_the_previous_figure_while_one_process_recomputes_it(cfg: Config, stack: Any) -> None:
    livecache.forget_all()
    calls: list[float] = []

    def figure() -> int:
        calls.append(time.monotonic())
        time.sleep(0.3)
        return len(calls)

    assert livecache.shared("test:swr", figure, ttl_s=0.2, stale_ok=True) == (1, 0.0)  # nothing yet: computed here
    time.sleep(0.3)
    value, age = livecache.shared("test:swr", figure, ttl_s=0.2, stale_ok=True)
    assert (value, age >= 0.3) == (1, True)  # the previous figure with its age, not a wait for the next one
    assert livecache.shared("test:swr", figure, ttl_s=0.2, stale_ok=True)[0] == 1  # one recompute, not two
    deadline = time.monotonic() + 5
    while (livecache.peek("test:swr") or (None, 0))[0] != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert livecache.peek("test:swr")[0] == 2 and len(calls) == 2  # type: ignore[index]
    time.sleep(0.3)
    assert livecache.shared("test:swr", figure, ttl_s=0.2)[0] == 3  # without stale_ok the request waits for it
