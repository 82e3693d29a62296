"""The objective from what the workers record in Redis (classifier/stats.py), not from a 30-day scan of the tables;
what it says after a Redis that lost its counters, and the refill from the tables (controlplane/alerts/services.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.test import Client
from django.urls import reverse

from bench import bqaudit
from classifier import ledger, stats
from classifier.cloud import bigquery
from classifier.config import Config
from classifier.weights import resolve_model_name
from controlplane import livecache
from controlplane.alerts import objective
from controlplane.alerts.services import objective_fill_step

WINDOWS = [30 * 86_400, 3600, 300]


def _row(processed: datetime, latency_s: float, *, model: str = "efficientnet_lite0 (test)") -> dict[str, Any]:
    return {
        "image_name": f"t-{uuid.uuid4().hex[:8]}/a.png",
        "upload": (processed - timedelta(seconds=latency_s)).isoformat(),
        "processed_at": processed.isoformat(),
        "model": model,
    }


def test_each_window_counts_rows_in_time_late_rows_and_failures(cfg: Config, stack: Any) -> None:
    redis = ledger.connection(cfg)
    # A moment no other test writes at: counted as the workers record, the windows read back from it.
    at = datetime(2026, 11, 10, 12, 30, tzinfo=UTC) - timedelta(minutes=uuid.uuid4().int % 10_000)
    before = stats.window_counts(redis, windows_s=WINDOWS, within_s=60, now=at)
    recent = [_row(at - timedelta(minutes=1), 2), _row(at - timedelta(minutes=1), 60), _row(at, 600)]
    stats.record(redis, rows=recent, failures=[{"failed_at": (at - timedelta(minutes=2)).isoformat()}])
    stats.record(redis, rows=[_row(at - timedelta(days=2), 5)])  # in the 30 days only
    stats.record(redis, rows=[_row(at - timedelta(hours=2), 5)])  # in the 30 days, not the last hour
    stats.record(redis, rows=[_row(at + timedelta(minutes=3), 5)])  # a worker's clock 3 minutes ahead: counted
    after = stats.window_counts(redis, windows_s=WINDOWS, within_s=60, now=at)
    delta = [{k: a[k] - b[k] for k in ("rows", "good", "failed")} for a, b in zip(after, before, strict=True)]
    assert delta == [
        {"rows": 6, "good": 5, "failed": 1},  # 30 days
        {"rows": 4, "good": 3, "failed": 1},  # the last hour
        {"rows": 4, "good": 3, "failed": 1},  # the last 5 minutes (60 s is within 60 s; 600 s is not)
    ]


def test_the_objective_reads_no_table(staff: Client, cfg: Config, stack: Any) -> None:
    redis = ledger.connection(cfg)
    now = datetime.now(UTC)
    before = objective.objective_status(fresh=True)
    stats.record(redis, rows=[_row(now, 1), _row(now, 1), _row(now, 900)], failures=[{"failed_at": now.isoformat()}])
    livecache.forget_all()
    with bqaudit.recording() as seen:
        after = objective.objective_status(fresh=True)
        assert staff.get(reverse("health_partial")).status_code == 200
    assert after["uploads"] - before["uploads"] == 4 and after["good"] - before["good"] == 2
    assert after["burn"]["burn_fast"]["short"] > 0
    assert not [q.sql for q in seen if "processed_at" in q.sql], "the objective scanned the table"


def _forget_the_counters(redis: Any) -> None:
    """What a Redis that lost its data looks like to the objective: no counters, no mark of when they began."""
    keys = list(redis.scan_iter(stats.HOUR_PREFIX + "*", count=1000))
    redis.delete(stats.COUNTED_SINCE_KEY, stats.HOURS_SINCE_KEY, *keys)


def _hour_in_the_table(cfg: Config, hour: datetime, model: str) -> dict[str, int]:
    sql = (
        "SELECT COUNT(*) AS n, COUNTIF(UNIX_MICROS(processed_at) - UNIX_MICROS(upload) <= 60000000) AS good "
        f"FROM `{cfg.table_id}` WHERE processed_at >= @start AND processed_at < @end AND model = @model"
    )
    params = [
        bigquery.param("start", "TIMESTAMP", hour),
        bigquery.param("end", "TIMESTAMP", hour + timedelta(hours=1)),
        bigquery.param("model", "STRING", model),
    ]
    found = bigquery.query(cfg, sql, params)[0]
    return {"rows": int(found["n"]), "good": int(found["good"])}


def test_after_a_redis_that_lost_its_counters_the_page_says_so_and_the_tables_refill_them(
    staff: Client, cfg: Config, stack: Any
) -> None:
    redis = ledger.connection(cfg)
    model = resolve_model_name(cfg)
    now = datetime.now(UTC)
    hour = stats.hour_of(now - timedelta(days=3))
    written = [_row(hour + timedelta(minutes=10), 4, model=model), _row(hour + timedelta(minutes=20), 300, model=model)]
    for row in written:  # rows written three days ago, before the counters were lost
        full = {**row, "classifications": [], "bucket": cfg.bucket, "generation": 1, "content_type": "image/png"}
        bigquery.insert_row(cfg, cfg.table_id, full, row_id=uuid.uuid4().hex)
    _forget_the_counters(redis)
    stats.record(redis, rows=[_row(now, 1, model=model)])  # the first row written after: the counters begin
    livecache.forget_all()
    status = objective.objective_status(fresh=True)
    assert status["complete"] is False and status["counted_since"] >= now - timedelta(seconds=5)
    assert status["burn"]["burn_slow"]["complete"] is False
    html = staff.get(reverse("health_partial")).content.decode()
    assert 'id="objective-since"' in html and "counted only since" in html

    filled = [objective_fill_step()]
    while filled[-1] is not None and len(filled) < 40:  # a day per round, as runalerts runs it
        filled.append(objective_fill_step())
    assert filled[-1] is None and len(filled) == 31  # 30 days and the hour the counters began in
    counters = {ledger.text(k): int(v) for k, v in redis.hgetall(stats._hour_key(hour)).items()}
    good = sum(counters.get(f, 0) for f in stats.within_fields(60))
    assert {"rows": counters["rows"], "good": good} == _hour_in_the_table(cfg, hour, model)
    assert objective.objective_status(fresh=True)["complete"] is True


def test_a_window_longer_than_the_hours_are_kept_is_never_whole(cfg: Config, stack: Any) -> None:
    redis = ledger.connection(cfg)
    saved = redis.get(stats.COUNTED_SINCE_KEY)
    now = datetime.now(UTC)
    try:
        redis.set(stats.COUNTED_SINCE_KEY, repr((now - timedelta(days=60)).timestamp()))
        thirty, forty = stats.window_counts(redis, windows_s=[30 * 86_400, 40 * 86_400], within_s=60, now=now)
        assert thirty["complete"] is True
        assert forty["complete"] is False and forty["counted_since"] > now - timedelta(days=stats.HOUR_KEEP_DAYS)
    finally:
        redis.set(stats.COUNTED_SINCE_KEY, saved) if saved is not None else redis.delete(stats.COUNTED_SINCE_KEY)
