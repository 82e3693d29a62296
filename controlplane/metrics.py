"""Prometheus exposition: read on scrape from BigQuery, Redis and RQ, cached briefly so scrapes stay cheap."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from classifier import ledger, stats
from controlplane import livecache, selectors
from controlplane.alerts.rules import IDLE_WORKER_STALE_S

CACHE_S = 15.0

_lock = threading.Lock()
_cache: tuple[float, dict[str, Any]] | None = None


def snapshot() -> dict[str, Any]:
    """Counters the workers recorded in Redis (classifier.stats), queue and listener state: no table scan. The
    open-failure count is the dashboard's shared figure (one windowed BigQuery count per 30 s, whoever asks)."""
    global _cache
    with _lock:
        if _cache is not None and time.monotonic() - _cache[0] < CACHE_S:
            return _cache[1]
        failures, _age = livecache.shared(
            livecache.FAILURE_COUNT_KEY, selectors.failure_count, ttl_s=livecache.FAILURE_COUNT_S
        )
        data = {
            "totals": stats.totals(ledger.connection(settings.SIGHTLINE)),
            "throughput": selectors.throughput(minutes=5),
            "failures": failures,
            "queue": selectors.queue_status(),
            "listener": selectors.listener_status(),
            "memory": selectors.redis_memory(),
            "backlog": selectors.pubsub_backlog(),
            "oldest_job_s": selectors.queue_oldest_age_s(),
            "workers_live": selectors.workers_live(
                idle_stale_s=IDLE_WORKER_STALE_S, busy_stale_s=settings.SIGHTLINE.job_timeout_s + 60
            ),
        }
        _cache = (time.monotonic(), data)
        return data


def cache_clear() -> None:
    global _cache
    with _lock:
        _cache = None


class SightlineCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        data = snapshot()
        hist, tp, q, lst = data["totals"], data["throughput"], data["queue"], data["listener"]
        yield CounterMetricFamily(
            "sightline_classifications", "Classification rows written (recorded by the workers).", value=hist["rows"]
        )
        yield HistogramMetricFamily(
            "sightline_upload_to_row_seconds",
            "Time from upload to classification row.",
            buckets=hist["buckets"],
            sum_value=hist["sum_s"],
        )
        yield GaugeMetricFamily(
            "sightline_throughput_rows_per_minute", "Rows per minute over the last 5 minutes.", value=tp["per_minute"]
        )
        yield GaugeMetricFamily("sightline_failures", "Open failure records in BigQuery.", value=data["failures"])
        yield GaugeMetricFamily("sightline_queue_depth", "Jobs waiting in the RQ queue.", value=q["depth"])
        workers = GaugeMetricFamily("sightline_workers", "RQ workers of the queue by state.", labels=["state"])
        workers.add_metric(["busy"], q["workers_busy"])
        workers.add_metric(["idle"], q["workers_alive"] - q["workers_busy"])
        workers.add_metric(["dead"], q["workers_dead"])
        yield workers
        yield GaugeMetricFamily("sightline_jobs_taken", "Jobs taken off the queue, not started yet.", value=q["taken"])
        yield CounterMetricFamily(
            "sightline_refused_jobs", "Jobs refused by a worker: not a classification job.", value=q["refused"]
        )
        yield from _memory_metrics(data["memory"], q, data["backlog"])
        yield GaugeMetricFamily("sightline_rq_failed_jobs", "Jobs in RQ's failed registry.", value=q["failed"])
        up = GaugeMetricFamily("sightline_listener_state", "1 for the listener's current state.", labels=["state"])
        for state in ("running", "paused", "reconnecting", "stopped", "dead"):
            up.add_metric([state], 1.0 if lst["state"] == state else 0.0)
        yield up
        yield from _alert_inputs(data)
        yield GaugeMetricFamily(
            "sightline_listener_messages_received",
            "Messages the running listener received since it started.",
            value=lst.get("received", 0),
        )


def within(buckets: list[tuple[str, int]], limit_s: float) -> int:
    """Rows surely within `limit_s`: the cumulative count at the largest bound not above it (SLO_LATENCY_S is best
    set to one of classifier.stats.BUCKETS_S, as the default 60 s is; then the count is exact)."""
    good = 0
    for le, count in buckets:
        if le != "+Inf" and float(le) <= limit_s:
            good = count
    return good


def _alert_inputs(data: dict[str, Any]) -> Iterator[Metric]:
    """What the alert rules read, for those who alert from Prometheus (ops/prometheus/sightline-rules.yml)."""
    totals, tp = data["totals"], data["throughput"]
    yield CounterMetricFamily(
        "sightline_classifications_within_objective",
        "Classification rows that came within SLO_LATENCY_S of their upload.",
        value=within(totals["buckets"], settings.SLO_LATENCY_S),
    )
    yield GaugeMetricFamily(
        "sightline_objective_target_ratio",
        "The objective: this share of uploads within SLO_LATENCY_S.",
        value=settings.SLO_TARGET_PERCENT / 100,
    )
    yield GaugeMetricFamily(
        "sightline_objective_latency_seconds", "The objective's upload-to-row latency.", value=settings.SLO_LATENCY_S
    )
    yield GaugeMetricFamily("sightline_recent_rows", "Rows written in the last 5 minutes.", value=tp["rows"])
    yield GaugeMetricFamily(
        "sightline_recent_failures", "Failure records written in the last 5 minutes.", value=tp["failed"]
    )
    yield GaugeMetricFamily(
        "sightline_queue_oldest_job_age_seconds",
        "How long the job at the head of the queue has waited (0 when empty).",
        value=data["oldest_job_s"] or 0.0,
    )
    yield GaugeMetricFamily(
        "sightline_workers_live",
        "Workers with a fresh heartbeat (a killed one drops out within 30 s).",
        value=data["workers_live"],
    )


def _memory_metrics(memory: dict[str, Any], q: dict[str, Any], backlog: dict[str, Any]) -> Iterator[Metric]:
    yield GaugeMetricFamily("sightline_redis_used_memory_bytes", "Redis used_memory.", value=memory["used_bytes"])
    yield GaugeMetricFamily(
        "sightline_redis_memory_alert_bytes",
        "Alert when sightline_redis_used_memory_bytes exceeds this (REDIS_MEMORY_ALERT_MB).",
        value=memory["alert_bytes"],
    )
    keys = GaugeMetricFamily("sightline_redis_records", "What Redis holds, by kind.", labels=["kind"])
    for kind, count in memory["kinds"].items():
        keys.add_metric([kind.replace(" ", "_")], count)
    yield keys
    yield GaugeMetricFamily("sightline_redis_keys", "Keys in Redis' database (DBSIZE).", value=memory["keys"])
    yield GaugeMetricFamily(
        "sightline_queue_waiting", "Jobs queued or taken but not started (rq's intermediate list).", value=q["waiting"]
    )
    yield GaugeMetricFamily(
        "sightline_queue_bound", "The listener pulls nothing while sightline_queue_waiting is here.", value=q["bound"]
    )
    yield GaugeMetricFamily(
        "sightline_listener_held_back", "1 while the queue is at its bound.", value=float(backlog["held_back"])
    )
    if backlog["undelivered"] is not None:  # only on GCP: the emulator has no Cloud Monitoring
        yield GaugeMetricFamily(
            "sightline_pubsub_undelivered_messages",
            "Messages waiting in the subscription (Cloud Monitoring's last sample).",
            value=backlog["undelivered"],
        )


def exposition() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SightlineCollector())
    return generate_latest(registry)
