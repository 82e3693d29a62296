"""Enqueueing classification jobs: one deterministic job per object generation."""

from __future__ import annotations

import functools

from rq import Callback, Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from classifier import jobs, ledger
from classifier.config import Config
from classifier.logsafe import shown

# A job that is queued, running or waiting for a retry must not be enqueued again by a redelivery.
LIVE_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


@functools.cache
def queue(cfg: Config) -> Queue:
    return Queue(
        cfg.queue_name,
        connection=ledger.connection(cfg),
        serializer=JSONSerializer,
        default_timeout=cfg.job_timeout_s,
    )


def _live(q: Queue, job: Job) -> bool:
    """Its status says live, and RQ's own structures agree: a job whose status lies (its key survived while the
    queue was lost, or it was left behind by hand) is not live and may be enqueued again."""
    status = job.get_status(refresh=False)
    if status not in LIVE_STATUSES:
        return False
    if status == JobStatus.QUEUED:
        # Dequeued but not started yet (a batching worker holds several) is in rq's intermediate list: still live;
        # rq's maintenance hands it back if its worker died.
        redis = q.connection
        return redis.lpos(q.key, job.id) is not None or redis.lpos(q.intermediate_queue_key, job.id) is not None
    if status == JobStatus.SCHEDULED:
        return q.connection.zscore(q.scheduled_job_registry.key, job.id) is not None
    if status == JobStatus.STARTED:
        return bool(job.get_executions())  # a dead worker's execution expires with its heartbeat
    return True


def enqueue_classification(
    cfg: Config, *, bucket: str, name: str, generation: int, event_time: str | None, force: bool = False
) -> tuple[str, bool]:
    """Returns (job id, whether a job was enqueued). Skips generations already done or in flight unless forced."""
    q = queue(cfg)
    job_id = jobs.job_id(bucket, name, generation)
    if not force:
        if ledger.outcome_get(q.connection, ledger.object_key(bucket, name, generation)) is not None:
            return job_id, False
        existing = (
            Job.fetch(job_id, connection=q.connection, serializer=JSONSerializer)
            if Job.exists(job_id, q.connection)
            else None
        )
        if existing is not None and _live(q, existing):
            return job_id, False
    q.enqueue(
        jobs.classify_object,
        kwargs={"bucket": bucket, "name": name, "generation": generation, "event_time": event_time},
        job_id=job_id,
        retry=jobs.RETRY,
        on_failure=Callback(jobs.on_failure),
        result_ttl=24 * 3600,
        failure_ttl=30 * 24 * 3600,
        # rq logs the description as each job starts: escaped, a name cannot forge a line of the worker log.
        description=f"classify gs://{bucket}/{shown(name)}#{generation}",
    )
    return job_id, True
