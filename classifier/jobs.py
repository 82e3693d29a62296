"""RQ jobs: thin adapters that take primitives and call the real work. JSON-serialisable arguments only."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from redis import Redis
from rq import Retry
from rq.job import Job

from classifier import ledger, runtime
from classifier.cloud import bigquery, gcs
from classifier.config import Config, get_config
from classifier.model import BadImage

log = logging.getLogger(__name__)

# Transient faults (network, 5xx, timeouts) are retried with backoff; permanent ones never reach RQ's retry.
RETRY = Retry(max=3, interval=[5, 20, 60])


def job_id(bucket: str, name: str, generation: int) -> str:
    """Deterministic: a redelivered notification maps to the same job and is not enqueued twice."""
    digest = hashlib.sha256(ledger.object_key(bucket, name, generation).encode()).hexdigest()[:32]
    return f"classify-{digest}"


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _iso(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def record_failure(
    cfg: Config,
    redis: Redis,
    *,
    bucket: str,
    name: str,
    generation: int,
    code: str,
    reason: str,
    upload: str | None,
    attempts: int,
    blob: gcs.Blob | None = None,
) -> dict[str, Any]:
    key = ledger.object_key(bucket, name, generation)
    row = {
        "image_name": name,
        "upload": upload,
        "bucket": bucket,
        "generation": generation,
        "content_type": blob.content_type if blob else None,
        "size_bytes": blob.size if blob else None,
        "reason_code": code,
        "reason": reason,
        "attempts": attempts,
        "model": runtime.get_classifier().name,
        "failed_at": _now(),
    }
    bigquery.insert_row(cfg, cfg.failures_table_id, row, row_id=key)
    ledger.outcome_set(redis, key, f"failure:{code}")
    log.warning("failed %s: %s (%s)", key, reason, code)
    return {"outcome": "failure", "key": key, "reason_code": code, "reason": reason}


def classify_object(bucket: str, name: str, generation: int, event_time: str | None = None) -> dict[str, Any]:
    cfg = get_config()
    redis = ledger.connection(cfg)
    key = ledger.object_key(bucket, name, generation)
    previous = ledger.outcome_get(redis, key)
    if previous is not None:
        log.info("skipped %s: already ended as %s", key, previous)
        return {"outcome": "duplicate", "key": key, "previous": previous}

    clf = runtime.get_classifier()
    fail = dict(bucket=bucket, name=name, generation=generation, upload=event_time, attempts=1)
    try:
        blob = gcs.download(cfg, bucket=bucket, name=name, generation=generation)
    except gcs.ObjectGone as exc:
        return record_failure(cfg, redis, code="object_gone", reason=str(exc), **fail)
    except gcs.TooLarge as exc:
        return record_failure(cfg, redis, code="too_large", reason=str(exc), **fail)
    try:
        predictions = clf.classify(blob.data)
    except BadImage as exc:
        return record_failure(cfg, redis, code=exc.code, reason=exc.reason, blob=blob, **fail)

    row = {
        "image_name": name,
        "upload": event_time or _iso(blob.time_created) or _now(),
        "classifications": [{"classification": p.classification, "confidence": p.confidence} for p in predictions],
        "bucket": bucket,
        "generation": generation,
        "content_type": blob.content_type,
        "size_bytes": blob.size,
        "model": clf.name,
        "processed_at": _now(),
    }
    bigquery.insert_row(cfg, cfg.table_id, row, row_id=key)
    ledger.outcome_set(redis, key, "row")
    top = predictions[0]
    log.info("classified %s: %s (%.3f) by %s", key, top.classification, top.confidence, clf.name)
    return {"outcome": "row", "key": key, "top": top.classification, "confidence": top.confidence}


def on_failure(
    job: Job,
    connection: Redis,
    exc_type: type[BaseException],
    exc_value: BaseException,
    traceback: TracebackType | None,
) -> None:
    """RQ calls this on every failed attempt; after the last one, leave a failure record an operator can read."""
    if job.retries_left:
        log.warning(
            "job %s attempt failed (%s: %s); %s retries left", job.id, exc_type.__name__, exc_value, job.retries_left
        )
        return
    kwargs = job.kwargs
    cfg = get_config()
    attempts = (RETRY.max or 0) + 1
    try:
        record_failure(
            cfg,
            connection,
            bucket=kwargs["bucket"],
            name=kwargs["name"],
            generation=kwargs["generation"],
            code="transient_exhausted",
            reason=f"gave up after {attempts} attempts: {exc_type.__name__}: {exc_value}",
            upload=kwargs.get("event_time"),
            attempts=attempts,
        )
    except Exception:
        # The failure stays in RQ's failed registry and reconcile will pick the object up again.
        log.exception("could not record the failure of job %s", job.id)
