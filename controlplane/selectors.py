"""Reads. Every query is parameterised; table ids come from validated settings, never from requests."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from rq import Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from classifier import jobs, ledger, listener
from classifier.cloud import bigquery, gcs, monitoring
from classifier.config import Config
from classifier.queue import bound, depth, queue
from classifier.weights import resolve_model_name

# A heartbeat older than this (the listener beats every second) means the process is gone or hung.
LISTENER_STALE_S = 10
RESOLVED_PREFIX = "sightline:failure:resolved:"


def _cfg() -> Config:
    return settings.SIGHTLINE


def _redis() -> Any:
    return ledger.connection(_cfg())


def pipeline_identity() -> dict[str, Any]:
    cfg = _cfg()
    return {
        "project": cfg.project,
        "bucket": cfg.bucket,
        "table": cfg.table_id,
        "failures_table": cfg.failures_table_id,
        "model": resolve_model_name(cfg),
        "local": cfg.local,
    }


@dataclass(frozen=True)
class ClassificationFilter:
    label: str = ""
    name: str = ""
    since: datetime | None = None
    until: datetime | None = None

    @property
    def active(self) -> bool:
        return bool(self.label or self.name or self.since or self.until)


def _with_latency(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        upload, done = row.get("upload"), row.get("processed_at")
        row["latency_s"] = (done - upload).total_seconds() if upload and done else None
    return rows


_COLUMNS = "image_name, upload, classifications, bucket, generation, content_type, size_bytes, model, processed_at"


def classification_list(
    *, filters: ClassificationFilter, limit: int = 25, offset: int = 0
) -> tuple[list[dict[str, Any]], bool]:
    """One page, newest first; the flag says whether another page follows."""
    cfg = _cfg()
    where, params = ["TRUE"], [bigquery.param("limit", "INT64", limit + 1), bigquery.param("offset", "INT64", offset)]
    if filters.label:
        where.append(
            "EXISTS (SELECT 1 FROM UNNEST(classifications) AS c "
            "WHERE STRPOS(LOWER(c.classification), LOWER(@label)) > 0)"
        )
        params.append(bigquery.param("label", "STRING", filters.label))
    if filters.name:
        where.append("STRPOS(LOWER(image_name), LOWER(@name)) > 0")
        params.append(bigquery.param("name", "STRING", filters.name))
    if filters.since:
        where.append("upload >= @since")
        params.append(bigquery.param("since", "TIMESTAMP", filters.since))
    if filters.until:
        where.append("upload < @until")
        params.append(bigquery.param("until", "TIMESTAMP", filters.until))
    sql = (
        f"SELECT {_COLUMNS} FROM `{cfg.table_id}` WHERE {' AND '.join(where)} "
        "ORDER BY processed_at DESC, upload DESC LIMIT @limit OFFSET @offset"
    )
    rows = _with_latency(bigquery.query(cfg, sql, params))
    return rows[:limit], len(rows) > limit


def classification_list_for_name(*, name: str) -> list[dict[str, Any]]:
    cfg = _cfg()
    sql = f"SELECT {_COLUMNS} FROM `{cfg.table_id}` WHERE image_name = @name ORDER BY processed_at DESC LIMIT 100"
    return _with_latency(bigquery.query(cfg, sql, [bigquery.param("name", "STRING", name)]))


# --- Failures -------------------------------------------------------------------------------------------------------

_FAILURE_COLUMNS = (
    "image_name, upload, bucket, generation, content_type, size_bytes, reason_code, reason, attempts, model, failed_at"
)


def resolved_cutoffs(keys: list[str]) -> dict[str, float]:
    """Failures an operator requeued or dismissed while BigQuery still refused to delete them (streaming buffer)."""
    if not keys:
        return {}
    values = _redis().mget([RESOLVED_PREFIX + k for k in keys])
    return {k: float(v) for k, v in zip(keys, values, strict=True) if v is not None}


def _visible(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["key"] = ledger.object_key(row["bucket"], row["image_name"], row["generation"])
    cutoffs = resolved_cutoffs([r["key"] for r in rows])
    return [
        r
        for r in rows
        if r["key"] not in cutoffs or (r["failed_at"] is not None and r["failed_at"].timestamp() > cutoffs[r["key"]])
    ]


def failure_list(*, name: str = "", limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], bool]:
    cfg = _cfg()
    where, params = ["TRUE"], [bigquery.param("limit", "INT64", limit + 1), bigquery.param("offset", "INT64", offset)]
    if name:
        where.append("STRPOS(LOWER(image_name), LOWER(@name)) > 0")
        params.append(bigquery.param("name", "STRING", name))
    sql = (
        f"SELECT {_FAILURE_COLUMNS} FROM `{cfg.failures_table_id}` WHERE {' AND '.join(where)} "
        "ORDER BY failed_at DESC LIMIT @limit OFFSET @offset"
    )
    rows = bigquery.query(cfg, sql, params)
    return _visible(rows[:limit]), len(rows) > limit


def failure_list_all(*, cap: int = 10_000) -> list[dict[str, Any]]:
    """Every open failure (up to `cap`), oldest first: what "requeue all" acts on."""
    cfg = _cfg()
    sql = f"SELECT {_FAILURE_COLUMNS} FROM `{cfg.failures_table_id}` ORDER BY failed_at LIMIT @cap"
    return _visible(bigquery.query(cfg, sql, [bigquery.param("cap", "INT64", cap)]))


def failure_get(*, bucket: str, name: str, generation: int) -> list[dict[str, Any]]:
    cfg = _cfg()
    sql = (
        f"SELECT {_FAILURE_COLUMNS} FROM `{cfg.failures_table_id}` "
        f"WHERE {bigquery.OBJECT_MATCH} ORDER BY failed_at DESC"
    )
    return _visible(bigquery.query(cfg, sql, bigquery.object_params(bucket, name, generation)))


def failure_list_for_name(*, name: str) -> list[dict[str, Any]]:
    cfg = _cfg()
    sql = (
        f"SELECT {_FAILURE_COLUMNS} FROM `{cfg.failures_table_id}` WHERE image_name = @name "
        "ORDER BY failed_at DESC LIMIT 100"
    )
    return _visible(bigquery.query(cfg, sql, [bigquery.param("name", "STRING", name)]))


def failure_count() -> int:
    """Open failures: the records in BigQuery, less those resolved but not yet deletable (few, short-lived)."""
    cfg = _cfg()
    total = int(bigquery.query(cfg, f"SELECT COUNT(*) AS n FROM `{cfg.failures_table_id}`")[0]["n"])
    keys = [k.decode().removeprefix(RESOLVED_PREFIX) for k in _redis().scan_iter(RESOLVED_PREFIX + "*", count=1000)]
    if not keys:
        return total
    names = sorted({ledger.parse_key(k)[1] for k in keys})
    sql = f"SELECT {_FAILURE_COLUMNS} FROM `{cfg.failures_table_id}` WHERE image_name IN UNNEST(@names)"
    rows = bigquery.query(cfg, sql, [bigquery.array_param("names", "STRING", names)])
    return total - (len(rows) - len(_visible(rows)))


# --- Pipeline health ------------------------------------------------------------------------------------------------


def listener_status() -> dict[str, Any]:
    redis = _redis()
    raw = redis.get(listener.HEARTBEAT_KEY)
    return listener_state(json.loads(raw) if raw else None, desired=listener.desired_get(redis), now=time.time())


def listener_state(beat: dict[str, Any] | None, *, desired: str, now: float) -> dict[str, Any]:
    """running / paused / reconnecting from a fresh heartbeat; stopped after a clean exit; dead when it went quiet."""
    if beat is None:
        return {"state": "dead", "desired": desired, "detail": "no heartbeat: the listener is not running"}
    age = max(0.0, now - float(beat["at"]))
    state = beat["state"]
    if state != "stopped" and age > LISTENER_STALE_S:
        state = "dead"
    return {
        "state": state,
        "desired": desired,
        "age_s": age,
        "at": datetime.fromtimestamp(float(beat["at"]), UTC),
        "started_at": datetime.fromtimestamp(float(beat["started_at"]), UTC),
        "received": int(beat.get("received", 0)),
        "enqueued": int(beat.get("enqueued", 0)),
        "pid": beat.get("pid"),
        "host": beat.get("host"),
        "detail": f"last heartbeat {age:.0f} s ago" if state == "dead" else "",
    }


def queue_status() -> dict[str, Any]:
    q = queue(_cfg())
    workers = []
    for worker in Worker.all(queue=q):
        job = worker.get_current_job_id()
        workers.append(
            {
                "name": worker.name,
                "state": getattr(worker.get_state(), "value", str(worker.get_state())),
                "job": job,
                "hostname": worker.hostname,
            }
        )
    return {
        "name": q.name,
        "depth": q.count,
        "waiting": depth(q),  # queued, and taken by a batching worker but not started
        "bound": bound(_cfg(), q),
        "started": q.started_job_registry.count,
        "scheduled": q.scheduled_job_registry.count,
        "failed": q.failed_job_registry.count,
        "workers": workers,
        "workers_busy": sum(1 for w in workers if w["state"] == "busy"),
    }


def pubsub_backlog() -> dict[str, Any]:
    """Messages waiting in the subscription (Cloud Monitoring, on GCP only), and whether the listener holds back."""
    beat = _redis().get(listener.HEARTBEAT_KEY)
    held_back = bool(json.loads(beat).get("held_back")) if beat else False
    try:
        return {"undelivered": monitoring.undelivered_messages(_cfg()), "detail": "", "held_back": held_back}
    except monitoring.Unavailable as exc:
        return {"undelivered": None, "detail": str(exc), "held_back": held_back}


def redis_memory() -> dict[str, Any]:
    """Redis' used memory against the alert threshold, and what it holds by kind (counted from rq's lists and
    registries and the ledger's day counters: no scan of the keyspace)."""
    cfg, redis = _cfg(), _redis()
    q = queue(cfg)
    info = redis.info("memory")
    with redis.pipeline(transaction=False) as pipe:
        pipe.dbsize()
        for key in (q.started_job_registry.key, q.finished_job_registry.key, q.failed_job_registry.key):
            pipe.zcard(key)
        pipe.zcard(q.scheduled_job_registry.key)
        total, started, finished, failed, scheduled = pipe.execute()
    return {
        "used_bytes": int(info["used_memory"]),
        "peak_bytes": int(info["used_memory_peak"]),
        "max_bytes": int(info.get("maxmemory", 0)) or None,
        "alert_bytes": cfg.redis_memory_alert_mb * 1024 * 1024,
        "keys": int(total),
        "kinds": {
            "jobs waiting": depth(q),
            "jobs running": int(started),
            "jobs awaiting retry": int(scheduled),
            "finished jobs kept": int(finished),
            "failed jobs kept": int(failed),
            "ledger outcomes": ledger.outcome_count(redis),
        },
    }


def _percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


def throughput(*, minutes: int = 15, now: datetime | None = None) -> dict[str, Any]:
    """Rows per minute and upload-to-row latency over the last minutes, from BigQuery."""
    cfg = _cfg()
    now = now or datetime.now(UTC)
    start = (now - timedelta(minutes=minutes - 1)).replace(second=0, microsecond=0)
    sql = f"SELECT upload, processed_at FROM `{cfg.table_id}` WHERE processed_at >= @since LIMIT 50000"
    rows = bigquery.query(cfg, sql, [bigquery.param("since", "TIMESTAMP", start)])
    buckets: dict[datetime, list[float]] = {start + timedelta(minutes=i): [] for i in range(minutes)}
    for row in rows:
        minute = row["processed_at"].replace(second=0, microsecond=0)
        if minute in buckets and row["upload"] is not None:
            buckets[minute].append((row["processed_at"] - row["upload"]).total_seconds())
    latencies = [v for values in buckets.values() for v in values]
    series = [
        {"minute": m, "count": len(v), "p50": _percentile(v, 50), "p95": _percentile(v, 95)} for m, v in buckets.items()
    ]
    failures_sql = f"SELECT COUNT(*) AS n FROM `{cfg.failures_table_id}` WHERE failed_at >= @since"
    failed = bigquery.query(cfg, failures_sql, [bigquery.param("since", "TIMESTAMP", start)])[0]["n"]
    last_minute = series[-1]["count"] if series else 0
    return {
        "minutes": minutes,
        "series": series,
        "rows": len(latencies),
        "per_minute": len(latencies) / minutes,
        "last_minute": last_minute,
        "p50": _percentile(latencies, 50),
        "p95": _percentile(latencies, 95),
        "failed": int(failed),
    }


# --- One object's story ---------------------------------------------------------------------------------------------


def _job_summary(bucket: str, name: str, generation: int) -> dict[str, Any] | None:
    q = queue(_cfg())
    job_id = jobs.job_id(bucket, name, generation)
    if not Job.exists(job_id, q.connection):
        return None
    job = Job.fetch(job_id, connection=q.connection, serializer=JSONSerializer)
    result = job.latest_result()
    exc = result.exc_string if result else None
    return {
        "id": job_id,
        "status": getattr(job.get_status(), "value", str(job.get_status())),
        "enqueued_at": job.enqueued_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "retries_left": job.retries_left,
        "error": exc.strip().splitlines()[-1] if exc else None,
    }


def object_for_job(*, job_id: str) -> tuple[str, str, int] | None:
    """(bucket, name, generation) of a job id, while RQ still has the job (JOB_RESULT_TTL_S after it finished,
    FAILED_JOB_TTL_S after it failed)."""
    q = queue(_cfg())
    if not job_id.startswith("classify-") or not Job.exists(job_id, q.connection):
        return None
    kwargs = Job.fetch(job_id, connection=q.connection, serializer=JSONSerializer).kwargs
    return str(kwargs["bucket"]), str(kwargs["name"]), int(kwargs["generation"])


def object_story(*, name: str, known: tuple[str, int] | None = None) -> dict[str, Any]:
    """Everything known about one object name: each generation's job, ledger outcome, row and failures.

    `known` adds a (bucket, generation) found elsewhere, e.g. from a job id, that has no row, failure or object yet."""
    cfg = _cfg()
    rows = classification_list_for_name(name=name)
    failures = failure_list_for_name(name=name)
    current = gcs.object_current(cfg, name=name)
    generations: dict[tuple[str, int], dict[str, Any]] = {}

    def entry(bucket: str, generation: int) -> dict[str, Any]:
        return generations.setdefault(
            (bucket, generation), {"bucket": bucket, "generation": generation, "rows": [], "failures": []}
        )

    for row in rows:
        entry(row["bucket"], row["generation"])["rows"].append(row)
    for failure in failures:
        entry(failure["bucket"], failure["generation"])["failures"].append(failure)
    if current is not None:
        entry(cfg.bucket, current.generation)["object"] = current
    if known is not None:
        entry(*known)
    redis = _redis()
    for (bucket, generation), item in generations.items():
        item["job"] = _job_summary(bucket, name, generation)
        item["outcome"] = ledger.outcome_get(redis, ledger.object_key(bucket, name, generation))
        item["job_id"] = jobs.job_id(bucket, name, generation)
    ordered = sorted(generations.values(), key=lambda g: g["generation"], reverse=True)
    return {"name": name, "generations": ordered, "current": current}


def object_names_like(*, text: str, limit: int = 20) -> list[str]:
    """Suggestions when a search does not name an object exactly."""
    cfg = _cfg()
    sql = (
        f"SELECT DISTINCT image_name FROM (SELECT image_name FROM `{cfg.table_id}` "
        f"UNION ALL SELECT image_name FROM `{cfg.failures_table_id}`) "
        "WHERE STRPOS(LOWER(image_name), LOWER(@text)) > 0 ORDER BY image_name LIMIT @limit"
    )
    params = [bigquery.param("text", "STRING", text), bigquery.param("limit", "INT64", limit)]
    return [r["image_name"] for r in bigquery.query(cfg, sql, params)]


# --- Alerts and the objective (controlplane/alerts/) -----------------------------------------------------------------


def queue_oldest_age_s(*, now: datetime | None = None) -> float | None:
    """Seconds the job at the head of the queue has waited; None when the queue is empty."""
    q = queue(_cfg())
    for job_id in q.get_job_ids(0, 1):
        job = Job.fetch(job_id, connection=q.connection, serializer=JSONSerializer)
        if job.enqueued_at is not None:
            return max(0.0, ((now or datetime.now(UTC)) - job.enqueued_at.replace(tzinfo=UTC)).total_seconds())
    return None


def workers_live(*, idle_stale_s: float, busy_stale_s: float, now: datetime | None = None) -> int:
    """Workers whose heartbeat is fresh. rq keeps a killed worker's key for its TTL plus a minute, so the registry
    alone would count a dead worker as alive for minutes; an idle worker beats at every dequeue timeout."""
    now = now or datetime.now(UTC)
    live = 0
    for worker in Worker.all(queue=queue(_cfg())):
        beat = worker.last_heartbeat
        if beat is None:
            continue
        age = (now - beat.replace(tzinfo=UTC)).total_seconds()
        busy = getattr(worker.get_state(), "value", str(worker.get_state())) == "busy"
        live += age <= (busy_stale_s if busy else idle_stale_s)
    return live


def objective_counts(*, windows_s: list[int], latency_s: float, now: datetime | None = None) -> list[dict[str, int]]:
    """Per window (seconds back from now): uploads that became a row, those within `latency_s`, and failures.

    One aggregate query per table over the longest window: the objective reads each row once."""
    cfg = _cfg()
    now = now or datetime.now(UTC)
    starts = [bigquery.param(f"w{i}", "TIMESTAMP", now - timedelta(seconds=w)) for i, w in enumerate(windows_s)]
    oldest = bigquery.param("oldest", "TIMESTAMP", now - timedelta(seconds=max(windows_s)))
    within = "TIMESTAMP_DIFF(processed_at, upload, MILLISECOND) <= @ms"
    rows_cols = ", ".join(
        f"COUNTIF(processed_at >= @w{i}) AS n{i}, COUNTIF(processed_at >= @w{i} AND {within}) AS g{i}"
        for i in range(len(windows_s))
    )
    ms = bigquery.param("ms", "INT64", int(latency_s * 1000))
    rows_sql = f"SELECT {rows_cols} FROM `{cfg.table_id}` WHERE processed_at >= @oldest"
    counts = bigquery.query(cfg, rows_sql, [*starts, oldest, ms])[0]
    fail_cols = ", ".join(f"COUNTIF(failed_at >= @w{i}) AS f{i}" for i in range(len(windows_s)))
    fail_sql = f"SELECT {fail_cols} FROM `{cfg.failures_table_id}` WHERE failed_at >= @oldest"
    failed = bigquery.query(cfg, fail_sql, [*starts, oldest])[0]
    return [
        {"rows": int(counts[f"n{i}"] or 0), "good": int(counts[f"g{i}"] or 0), "failed": int(failed[f"f{i}"] or 0)}
        for i in range(len(windows_s))
    ]
