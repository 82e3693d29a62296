"""`.venv/bin/python -m bench.dashboard_cost`: the dashboard at scale, on a private local stack.

Fills the classifications table with --rows rows spread over 30 days (and the failures table with --failures),
inside the emulator (one INSERT ... SELECT FROM UNNEST(GENERATE_ARRAY(...))), then reports for each page and partial
the p50 response time (cold: no shared figure yet, and warm), the BigQuery queries per refresh with 1 and with 5 open
tabs, and, from each query's text (bench/bqaudit.py), whether it prunes to its window. Writes a JSON report to
bench/results/ and prints a Markdown table. See docs/cost-model.md for what the figures cost on BigQuery.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REFRESH = ("recent_partial", "health_partial")
# One INSERT of a million rows: about 20 s alone, minutes on a loaded machine (the query default is 60 s).
FILL_TIMEOUT_S = 900.0  # what one open dashboard polls every 3 s


def _env() -> None:
    from devstack.localstack import free_port

    os.environ.update(
        {
            "SIGHTLINE_LOCAL": "1",
            "GCP_PROJECT": "sightline-bench",
            "BUCKET_NAME": "sightline-bench-images",
            "SIGHTLINE_DATA_DIR": tempfile.mkdtemp(prefix="sightline-cost-"),
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{free_port()}",
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}",
            "BIGQUERY_EMULATOR_HOST": f"http://127.0.0.1:{free_port()}",
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "DJANGO_SECRET_KEY": "bench-only-not-secret",
            "DJANGO_SETTINGS_MODULE": "controlplane.settings",
            "METRICS_TOKEN": "bench-metrics-token-0123456789",
        }
    )
    for name in ("BQ_TABLE", "BQ_FAILURES_TABLE", "RQ_QUEUE", "PUBSUB_TOPIC", "PUBSUB_SUBSCRIPTION"):
        os.environ.pop(name, None)


@contextlib.contextmanager
def dashboard_on_private_stack(*, staff: bool) -> Iterator[tuple[Any, Any]]:
    """(cfg, a user to log the bench's clients in as) on a private local stack with a migrated database; the stack
    stops on the way out, whatever happened."""
    _env()
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    from devstack import localstack

    setup_test_environment()
    cfg = settings.SIGHTLINE
    stack = localstack.start(cfg)
    try:
        call_command("migrate", verbosity=0)
        yield cfg, get_user_model().objects.create_user("bench", password="bench-pass-123", is_staff=staff)
    finally:
        stack.stop()


def fill(
    cfg: Any, rows: int, failures: int, now: datetime, *, prefix: str = "bench/", days: int = 30, scatter: bool = False
) -> dict[str, float]:
    """`rows` classification rows and `failures` failure records, processed evenly over the `days` before `now`,
    inserted by the emulator itself (one INSERT ... SELECT each): a million rows in about 15 s.

    The rows are stored in the order they were processed, as the workers stream them (DuckDB then skips the blocks
    outside a query's window, as BigQuery skips partitions); `scatter` stores them in no order instead, the worst
    case for the emulator (the "before" measure of docs/cost-model.md was taken that way)."""
    from classifier.cloud import bigquery

    end = now.strftime("%Y-%m-%d %H:%M:%S.%f+00")
    spread = days * 24 * 3600
    # 7919 is prime: processed times spread evenly over the days, not in insertion order.
    uploaded = f"TIMESTAMP_SUB(TIMESTAMP '{end}', INTERVAL MOD(i * 7919, {spread}) SECOND)"
    timings = {}
    started = time.monotonic()
    bigquery.query(
        cfg,
        f"INSERT INTO `{cfg.table_id}` (image_name, upload, classifications, bucket, generation, content_type, "
        "size_bytes, model, processed_at) "
        f"SELECT CONCAT('{prefix}photos/', CAST(i AS STRING), '.jpg'), {uploaded}, "
        # The top-1 confidence from 0.30 to 0.99 (row i: 0.30 + (i mod 70) / 100), above the others: sorted as written.
        "[STRUCT('tabby' AS classification, 0.3 + MOD(i, 70) / 100 AS confidence), "
        "STRUCT('tiger cat' AS classification, 0.2 AS "
        "confidence), STRUCT('Egyptian cat' AS classification, 0.1 AS confidence), STRUCT('lynx' AS "
        "classification, 0.05 AS confidence), STRUCT('carton' AS classification, 0.01 AS confidence)], "
        f"'{cfg.bucket}', 1700000000000000 + i, 'image/jpeg', 100000 + MOD(i, 50000), 'efficientnet_lite0', "
        f"TIMESTAMP_ADD({uploaded}, INTERVAL 800 + MOD(i, 4000) MILLISECOND) "
        f"FROM UNNEST(GENERATE_ARRAY(1, {rows})) AS i" + ("" if scatter else f" ORDER BY MOD(i * 7919, {spread}) DESC"),
        timeout_s=FILL_TIMEOUT_S,
    )
    timings["fill_rows_s"] = time.monotonic() - started
    started = time.monotonic()
    bigquery.query(
        cfg,
        f"INSERT INTO `{cfg.failures_table_id}` (image_name, upload, bucket, generation, content_type, size_bytes, "
        "reason_code, reason, attempts, model, failed_at) "
        f"SELECT CONCAT('{prefix}bad/', CAST(i AS STRING), '.txt'), {uploaded}, '{cfg.bucket}', i, 'text/plain', "
        "12, 'not_an_image', 'cannot identify image file', 1, 'efficientnet_lite0', "
        f"TIMESTAMP_ADD({uploaded}, INTERVAL 2 SECOND) FROM UNNEST(GENERATE_ARRAY(1, {failures})) AS i",
        timeout_s=FILL_TIMEOUT_S,
    )
    timings["fill_failures_s"] = time.monotonic() - started
    return timings


def record_recent_stats(cfg: Any, now: datetime, *, prefix: str = "bench/", since: datetime | None = None) -> int:
    """What the workers would have recorded in Redis (classifier.stats) as they wrote the rows of the fill processed
    since `since` (default: the last day and a bit, the live list's window): the per-minute counters and the newest
    rows, recorded through the same function the workers call; the newest-rows record then says it is complete from
    `since`, as it would after workers had run that long."""
    try:
        from classifier import stats
    except ImportError:
        return 0  # the code before live figures: nothing to record
    from classifier import ledger
    from classifier.cloud import bigquery

    since = since or now - timedelta(days=1, hours=1)
    columns = "image_name, upload, classifications, bucket, generation, content_type, size_bytes, model, processed_at"
    sql = (
        f"SELECT {columns} FROM `{cfg.table_id}` WHERE processed_at >= @since "
        "AND STARTS_WITH(image_name, @prefix) ORDER BY processed_at"
    )
    params = [bigquery.param("since", "TIMESTAMP", since), bigquery.param("prefix", "STRING", prefix)]
    recent = bigquery.query(cfg, sql, params, timeout_s=FILL_TIMEOUT_S)
    failed = bigquery.query(
        cfg,
        f"SELECT failed_at FROM `{cfg.failures_table_id}` WHERE failed_at >= @since AND STARTS_WITH(image_name, @prefix)",
        params,
    )
    redis = ledger.connection(cfg)
    for i in range(0, len(recent), 5000):  # as the workers did, a batch at a time
        stats.record(redis, rows=recent[i : i + 5000], failures=failed if i == 0 else [])
    if hasattr(stats, "RECENT_SINCE_KEY"):
        redis.set(stats.RECENT_SINCE_KEY, repr(since.timestamp()))
    if hasattr(stats, "COUNTED_SINCE_KEY"):  # the objective's counters: as if the workers had counted every row
        redis.set(stats.COUNTED_SINCE_KEY, repr(since.timestamp()))
        _fill_objective_hours()
    return len(recent)


def _fill_objective_hours() -> None:
    """The objective's per-hour counters of the 30 days before the last one, as the workers would have recorded
    them, refilled from the tables the way runalerts refills a Redis that lost them (a day per query)."""
    from controlplane.alerts.services import objective_fill_step

    while objective_fill_step() is not None:
        pass


def _forget() -> None:
    from django.core.cache import cache

    from controlplane import metrics

    cache.clear()
    metrics.cache_clear()
    try:
        from controlplane import livecache
    except ImportError:
        return
    livecache.forget_all()


def _pages(rows: int) -> dict[str, tuple[dict[str, str], dict[str, Any]]]:
    """Page -> (query, headers)."""
    token = os.environ["METRICS_TOKEN"]
    return {
        "dashboard": ({}, {}),
        "recent_partial": ({}, {}),
        "health_partial": ({}, {}),
        "dashboard, label filter": ({"label": "lynx"}, {}),
        "dashboard, confidence filter": ({"min_confidence": "0.5", "max_confidence": "0.7"}, {}),
        "dashboard, page 2": ({"page": "2"}, {}),
        "failures": ({}, {}),
        "failures, dead letters": ({"part": "dead-letters"}, {}),
        "requeue all (confirm)": ({}, {}),
        "object story": ({"name": f"bench/photos/{rows // 2}.jpg"}, {}),
        "/metrics": ({}, {"HTTP_AUTHORIZATION": f"Bearer {token}"}),
    }


def _query_floor(cfg: Any, n: int) -> float:
    """What one query costs the emulator on this machine, whatever it reads: the floor under every page."""
    from classifier.cloud import bigquery

    samples = []
    for _ in range(n):
        started = time.perf_counter()
        bigquery.query(cfg, "SELECT 1 AS one")
        samples.append(time.perf_counter() - started)
    return round(statistics.median(samples) * 1000, 1)


@contextlib.contextmanager
def _round_trips() -> Iterator[list[str]]:
    """Every HTTP request the BigQuery client makes meanwhile (method and path), at `Client._call_api`."""
    from unittest import mock

    from google.cloud import bigquery as gbq

    seen: list[str] = []
    real = gbq.Client._call_api

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(f"{kwargs.get('method')} {kwargs.get('path')}")
        return real(self, *args, **kwargs)

    with mock.patch.object(gbq.Client, "_call_api", call):
        yield seen


def _url(name: str) -> str:
    from django.urls import reverse

    return reverse(name)


def _time(client: Any, path: str, params: dict[str, str], headers: dict[str, Any], *, cold: bool, n: int) -> float:
    samples = []
    for _ in range(n):
        if cold:
            _forget()
        started = time.perf_counter()
        response = client.get(path, params, **headers)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(samples) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--failures", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=11, help="requests per page for each p50 (default 11)")
    parser.add_argument("--label", default="", help="a name for this run in the report (e.g. before/after)")
    parser.add_argument("--scatter", action="store_true", help="store the rows in no order (the worst case)")
    args = parser.parse_args(argv)
    with dashboard_on_private_stack(staff=True) as (cfg, user):
        from django.test import Client

        from bench import bqaudit

        now = datetime.now(UTC)
        report: dict[str, Any] = {
            "label": args.label,
            "rows": args.rows,
            "failures": args.failures,
            "at": now.isoformat(),
        }
        report["scatter"] = args.scatter
        report.update(fill(cfg, args.rows, args.failures, now, scatter=args.scatter))
        record_recent_stats(cfg, now)
        report["emulator_floor_ms"] = _query_floor(cfg, args.samples)
        report["load_average"] = os.getloadavg()[0]
        tabs = [Client() for _ in range(5)]
        for tab in tabs:
            tab.force_login(user)
        paths = {
            "dashboard": _url("dashboard"),
            "recent_partial": _url("recent_partial"),
            "health_partial": _url("health_partial"),
            "failures": _url("failures"),
            "requeue all (confirm)": _url("failure_requeue_all"),
            "object story": _url("object_find"),
            "/metrics": "/metrics",
        }
        partitions = {cfg.table_id: "processed_at", cfg.failures_table_id: "failed_at"}
        pages = []
        for name, (params, headers) in _pages(args.rows).items():
            path = paths[name.split(",")[0]]
            cold = _time(tabs[0], path, params, headers, cold=True, n=args.samples)
            warm = _time(tabs[0], path, params, headers, cold=False, n=args.samples)
            _forget()
            with bqaudit.recording() as seen, _round_trips() as trips:
                tabs[0].get(path, params, **headers)
            verdicts = [bqaudit.verdict(q.sql, partitions) for q in seen]
            pages.append(
                {
                    "page": name,
                    "load_1m": round(os.getloadavg()[0], 1),
                    "p50_cold_ms": round(cold, 1),
                    "p50_warm_ms": round(warm, 1),
                    "queries": len(seen),
                    "bq_round_trips": len(trips),
                    "capped": all(q.max_bytes for q in seen),
                    "reads": sorted({how for v in verdicts for how in v.values()}),
                    "sql": [q.sql for q in seen],
                }
            )
        report["pages"] = pages
        refresh = {}
        for count in (1, 5):
            _forget()
            with bqaudit.recording() as seen:
                for tab in tabs[:count]:
                    for partial in REFRESH:
                        tab.get(paths[partial])
            refresh[f"{count} tab{'s' if count > 1 else ''}"] = len(seen)
        report["queries_per_refresh"] = refresh
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"dashboard-cost-{args.label or 'run'}-{now:%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2, default=str))
    print(_markdown(report))
    print(f"\nreport: {out}")
    return 0


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        f"### {report['label'] or 'run'}: {report['rows']:,} rows over 30 days"
        f"{' (stored in no order)' if report.get('scatter') else ' (stored as processed)'}, {report['failures']:,} failures "
        f"(filled in {report['fill_rows_s']:.1f} s + {report['fill_failures_s']:.1f} s)",
        "",
        "| page / partial | p50 cold (ms) | p50 warm (ms) | BigQuery queries | HTTP round trips | all capped "
        "| how each reads the tables | load (1 min) |",
        "|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for p in report["pages"]:
        reads = ", ".join(p["reads"]) or "no BigQuery query"
        lines.append(
            f"| {p['page']} | {p['p50_cold_ms']} | {p['p50_warm_ms']} | {p['queries']} | {p.get('bq_round_trips', '')} | "
            f"{'yes' if p['capped'] else 'NO'} | {reads} | {p.get('load_1m', '')} |"
        )
    per = report["queries_per_refresh"]
    lines += [
        "",
        f"One `SELECT 1` through the emulator: p50 {report['emulator_floor_ms']} ms; "
        f"load average {report['load_average']:.1f} at the start.",
    ]
    lines += [
        "",
        "Queries per dashboard refresh (recent + health partials): " + ", ".join(f"{k}: {v}" for k, v in per.items()),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
