"""RQ entry points: thin adapters that take primitives (JSON-serialisable arguments only) and call the real work.

Queued jobs name these functions by their dotted path (`classifier.jobs.classify_object`, `...on_failure`):
they stay here under these names. The work itself is in classifier/delivery.py (one row or one failure per
object generation) and classifier/batch.py (what a batching worker prepares for its jobs).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from types import TracebackType
from typing import Any

from redis import Redis
from rq import Retry, get_current_job
from rq.job import Job

from classifier import delivery, failures, ledger
from classifier.batch import Batch, BatchJob
from classifier.config import get_config
from classifier.delivery import ObjectRef

log = logging.getLogger(__name__)

# Transient faults (network, 5xx, timeouts, a busy claim) raise and are retried with backoff by RQ;
# permanent ones (a bad image, a gone object) become a failure record at once and never reach RQ's retry.
RETRY = Retry(max=3, interval=[5, 20, 60])


def job_id(bucket: str, name: str, generation: int) -> str:
    """Deterministic: a redelivered notification maps to the same job and is not enqueued twice."""
    digest = hashlib.sha256(ledger.object_key(bucket, name, generation).encode()).hexdigest()[:32]
    return f"classify-{digest}"


def _attempt() -> int:
    job = get_current_job()
    if job is None or job.retries_left is None:
        return 1
    return (RETRY.max or 0) - job.retries_left + 1


def _batch() -> Batch | None:
    """The batch the worker prepared for the running job, if it runs in one."""
    job = get_current_job()
    return job.batch if isinstance(job, BatchJob) else None


def classify_object(bucket: str, name: str, generation: int, event_time: str | None = None) -> dict[str, Any]:
    cfg = get_config()
    obj = ObjectRef(bucket, name, generation, event_time)
    return delivery.classify(cfg, ledger.connection(cfg), obj, attempts=_attempt(), batch=_batch())


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
        delivery.record_failure(
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


def requeue_all_failures(op_id: str, before: str, cap: int) -> int:
    """The operator's "requeue all", in the background: progress in Redis (classifier.failures.op_get)."""
    cfg = get_config()
    return failures.requeue_all(
        cfg, ledger.connection(cfg), op_id=op_id, before=datetime.fromisoformat(before), cap=cap
    )


def retry_pending_deletes() -> int:
    """Deletes of failure records that BigQuery's streaming buffer refused, tried again until none is left."""
    cfg = get_config()
    left = failures.retry_pending(cfg, ledger.connection(cfg))
    if left:
        failures.schedule_retry(cfg, again=True)
    return left
