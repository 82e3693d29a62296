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
from classifier.logsafe import shown

log = logging.getLogger(__name__)

# Transient faults (network, 5xx, timeouts, a busy claim) raise and are retried with backoff by RQ;
# permanent ones (a bad image, a gone object) become a failure record at once and never reach RQ's retry.
RETRY = Retry(max=3, interval=[5, 20, 60])


def job_id(bucket: str, name: str, generation: int, model: str | None = None) -> str:
    """Deterministic: a redelivered notification (or a repeated reprocess) maps to the same job and is not enqueued
    twice. One job per object generation per model; the live model's ids are those of before per-model keys."""
    key = ledger.model_key(ledger.object_key(bucket, name, generation), model)
    return f"classify-{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def model_refusal(job: Job, held: str) -> str | None:
    """Why a worker holding model `held` must not run `job`: it names another model. Never classified by the wrong
    model; a job without a model is the live queue's, whose workers hold the live model."""
    wanted = (job.kwargs or {}).get("model") if isinstance(job.kwargs, dict) else None
    if wanted is None or wanted == held:
        return None
    return f"the job is for model {shown(str(wanted))} and this worker holds {held}"


def _attempt() -> int:
    job = get_current_job()
    if job is None or job.retries_left is None:
        return 1
    return (RETRY.max or 0) - job.retries_left + 1


def _batch() -> Batch | None:
    """The batch the worker prepared for the running job, if it runs in one."""
    job = get_current_job()
    return job.batch if isinstance(job, BatchJob) else None


def classify_object(
    bucket: str, name: str, generation: int, event_time: str | None = None, model: str | None = None
) -> dict[str, Any]:
    """`model`: None for the live model (what the listener enqueues), else the model a reprocess asked for; the
    worker refused the job already if it holds another (`model_refusal`)."""
    cfg = get_config()
    obj = ObjectRef(bucket, name, generation, event_time, model)
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
            model=kwargs.get("model"),
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


def reprocess_step(op_id: str) -> str:
    """One step of a reprocess run (classifier/reprocess.py): enqueue a page, check progress, schedule the next."""
    from classifier import reprocess

    cfg = get_config()
    return reprocess.step(cfg, ledger.connection(cfg), op_id)


def retry_pending_deletes() -> int:
    """Deletes of failure records that BigQuery's streaming buffer refused, tried again until none is left."""
    cfg = get_config()
    left = failures.retry_pending(cfg, ledger.connection(cfg))
    if left:
        failures.schedule_retry(cfg, again=True)
    return left
