"""Failure records acted on in bulk: set-based reads and deletes, deletes the streaming buffer refused retried
until they succeed, and the operator's "requeue all" run as a background job with its progress in Redis.

Django-free: the RQ worker runs `requeue_all_job` and `retry_pending_job` (classifier.jobs names them).
Every query names the failure window (`failed_at`, the partition column) and the clustering columns.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis import Redis

from classifier import ledger
from classifier.cloud import bigquery
from classifier.config import MODEL_CHOICES, Config
from classifier.operations import Operations

log = logging.getLogger(__name__)

# Open failures are those of the last 30 days: every read of the failures table names this window (its partitions).
WINDOW = timedelta(days=30)
CHUNK = 500  # keys per query or DML: one array parameter, well under BigQuery's 10 MB request limit
PENDING_KEY = "sightline:failure:pending"  # hash: ledger key -> the `before` of the refused delete (epoch s)
RETRY_AFTER_S = 10 * 60
RETRY_SCHEDULED_KEY = "sightline:failure:retry-scheduled"
RETRY_JOB_PREFIX = "failures-retry-pending-deletes-"
# "requeue all" runs: the keys are those the page has always read
OPS = Operations(prefix="sightline:op:", latest="sightline:op:latest", counters=("total", "done", "pending"))

COLUMNS = (
    "image_name, upload, bucket, generation, content_type, size_bytes, reason_code, reason, attempts, model, failed_at"
)
_KEY = "CONCAT(bucket, '/', image_name, '#', CAST(generation AS STRING))"


def row_model(cfg: Config, row: dict[str, Any]) -> str | None:
    """The model a failure record is of, as enqueue_classification takes it: None for the live model (and for a
    record whose model is unknown or unreadable), so requeueing another model's failure retries it with that model,
    under its own key, and never clears or doubles the live model's outcome."""
    from classifier.queue import routed_model

    model = str(row.get("model") or "").split(" ")[0]
    return routed_model(cfg, model) if model in MODEL_CHOICES and model != "auto" else None


def window_start(now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - WINDOW


def chunks(items: Sequence[Any], size: int | None = None) -> Iterable[Sequence[Any]]:
    size = size or CHUNK
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _by_bucket(keys: Iterable[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key in keys:
        out.setdefault(ledger.parse_key(key)[0], []).append(key)
    return out


def _key_params(bucket: str, keys: Sequence[str]) -> list[Any]:
    names = sorted({ledger.parse_key(k)[1] for k in keys})
    return [
        bigquery.param("bucket", "STRING", bucket),
        bigquery.array_param("names", "STRING", names),
        bigquery.array_param("keys", "STRING", list(keys)),
    ]


# A lookup by the clustering columns (bucket, then names), narrowed to exact generations by the key.
KEYS_MATCH = f"bucket = @bucket AND image_name IN UNNEST(@names) AND {_KEY} IN UNNEST(@keys)"


def delete(cfg: Config, redis: Redis, keys: Sequence[str], *, before: datetime) -> tuple[int, int]:
    """Delete the failure records of `keys` written before `before` (never one a new attempt recorded since), one
    DML per chunk of keys. A chunk BigQuery refuses (streaming buffer) is kept as pending and retried later.
    Returns (records deleted, keys left pending)."""
    deleted = pending = 0
    since = window_start(before)
    for bucket, bucket_keys in _by_bucket(keys).items():
        for chunk in chunks(bucket_keys):
            sql = (
                f"DELETE FROM `{cfg.failures_table_id}` WHERE failed_at >= @since AND failed_at < @before "
                f"AND {KEYS_MATCH}"
            )
            params = [
                bigquery.param("since", "TIMESTAMP", since),
                bigquery.param("before", "TIMESTAMP", before),
                *_key_params(bucket, chunk),
            ]
            try:
                deleted += bigquery.dml(cfg, sql, params)
                redis.hdel(PENDING_KEY, *chunk)
            except bigquery.StreamingBufferBusy:
                redis.hset(PENDING_KEY, mapping={k: str(before.timestamp()) for k in chunk})
                pending += len(chunk)
    if pending:
        log.warning("%d failure records are in the streaming buffer: shown as pending, deleted later", pending)
        schedule_retry(cfg)
    return deleted, pending


def pending(redis: Redis) -> dict[str, float]:
    """Ledger key -> the cutoff of its refused delete: records failed before it are on their way out."""
    return {ledger.text(k): float(v) for k, v in redis.hgetall(PENDING_KEY).items()}


def is_pending(row: dict[str, Any], cutoffs: dict[str, float]) -> bool:
    key = ledger.object_key(row["bucket"], row["image_name"], row["generation"])
    failed = row.get("failed_at")
    return key in cutoffs and (failed is None or failed.timestamp() < cutoffs[key])


def retry_pending(cfg: Config, redis: Redis) -> int:
    """Try every pending delete again, grouped by cutoff; returns how many keys are still pending."""
    by_cutoff: dict[float, list[str]] = {}
    for key, cutoff in pending(redis).items():
        by_cutoff.setdefault(cutoff, []).append(key)
    for cutoff, keys in by_cutoff.items():
        delete(cfg, redis, keys, before=datetime.fromtimestamp(cutoff, UTC))
    return int(redis.hlen(PENDING_KEY))


def schedule_retry(cfg: Config, *, again: bool = False) -> str | None:
    """One retry scheduled at a time (the rq worker's scheduler runs it); `again`: from the retry job itself.
    Returns the scheduled job's id, or None when one is already waiting."""
    from classifier.queue import queue  # the queue module imports jobs, which imports this

    q = queue(cfg)
    if again:
        q.connection.delete(RETRY_SCHEDULED_KEY)
    if not q.connection.set(RETRY_SCHEDULED_KEY, "1", nx=True, ex=RETRY_AFTER_S):
        return None
    job = q.enqueue_in(
        timedelta(seconds=RETRY_AFTER_S),
        "classifier.jobs.retry_pending_deletes",
        job_id=f"{RETRY_JOB_PREFIX}{uuid.uuid4().hex[:12]}",
        result_ttl=3600,
        description="retry failure deletes the streaming buffer refused",
    )
    return str(job.id)


# --- reads shared by the dashboard and the background job ---------------------------------------------------------


def open_failures(cfg: Config, *, cap: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """The open failure records of the window, oldest first (up to `cap`)."""
    sql = f"SELECT {COLUMNS} FROM `{cfg.failures_table_id}` WHERE failed_at >= @since ORDER BY failed_at LIMIT @cap"
    params = [bigquery.param("since", "TIMESTAMP", window_start(now)), bigquery.param("cap", "INT64", cap)]
    return bigquery.query(cfg, sql, params)


def not_pending(redis: Redis, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cutoffs = pending(redis)
    return [r for r in rows if not is_pending(r, cutoffs)]


# --- background operations with progress -------------------------------------------------------------------------


def op_start(redis: Redis, *, kind: str, total: int, user: str) -> str:
    fields = {"kind": kind, "total": total, "done": 0, "state": "queued", "user": user, "error": ""}
    return OPS.start(redis, fields)


def op_get(redis: Redis, op_id: str | None = None) -> dict[str, Any] | None:
    return OPS.get(redis, op_id)


def requeue_all(cfg: Config, redis: Redis, *, op_id: str, before: datetime, cap: int) -> int:
    """Requeue every open failure failed before `before`: per chunk, clear the outcomes, enqueue forced jobs, then
    one DELETE for the chunk. Progress goes to the op's hash; returns the objects requeued."""
    from classifier.queue import enqueue_classification

    OPS.set(redis, op_id, state="running")
    rows = not_pending(redis, [r for r in open_failures(cfg, cap=cap, now=before) if r["failed_at"] < before])
    seen: dict[str, dict[str, Any]] = {}  # by delivery key: an object's failures of two models are two entries
    for row in rows:
        key = ledger.object_key(row["bucket"], row["image_name"], row["generation"])
        seen.setdefault(ledger.model_key(key, row_model(cfg, row)), row)
    OPS.set(redis, op_id, total=len(seen))
    done = left = 0
    try:
        for chunk in chunks(list(seen)):
            for key in chunk:
                ledger.outcome_clear(redis, key)
                bucket, name, generation = ledger.parse_key(key)
                upload = seen[key]["upload"]
                event_time = upload.isoformat() if isinstance(upload, datetime) else upload
                enqueue_classification(
                    cfg,
                    bucket=bucket,
                    name=name,
                    generation=generation,
                    event_time=event_time,
                    force=True,
                    model=ledger.split_model(key)[1],
                )
            object_keys = sorted({ledger.split_model(k)[0] for k in chunk})
            left += delete(cfg, redis, object_keys, before=before)[1]
            done += len(chunk)
            OPS.set(redis, op_id, done=done, pending=left)
    except Exception as exc:
        OPS.set(redis, op_id, state="failed", error=f"{exc.__class__.__name__}: {exc}")
        raise
    OPS.set(redis, op_id, state="done", finished=time.time())
    log.info("requeue-all %s: %d objects requeued, %d deletes pending", op_id, done, left)
    return done
