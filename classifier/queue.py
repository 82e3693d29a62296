"""Enqueueing classification jobs: one deterministic job per object generation."""

from __future__ import annotations

import functools

from rq import Callback, Queue, Worker
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from classifier import jobs, ledger
from classifier.config import Config
from classifier.logsafe import shown
from classifier.weights import resolve_model_name

# With QUEUE_MAX_JOBS unset, each live worker has this many batches waiting: enough to take its next batch at once,
# few enough that a backlog waits in Pub/Sub (7 days, free) rather than in Redis (memory).
BATCHES_PER_WORKER = 4

# A job that is queued, running or waiting for a retry must not be enqueued again by a redelivery.
LIVE_STATUSES = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def live_model(cfg: Config) -> str:
    """The model of the live pipeline: what every process with the shared settings resolves MODEL to."""
    return resolve_model_name(cfg)


def routed_model(cfg: Config, model: str | None) -> str | None:
    """None (the live queue, the live keys) for the live model; the model itself otherwise."""
    return None if model is None or model == live_model(cfg) else model


def queue_name(cfg: Config, model: str | None = None) -> str:
    """The live model keeps RQ_QUEUE ("classify"); another model's jobs wait in `<RQ_QUEUE>-<model>`, served only by
    workers started with MODEL=<model> on that queue."""
    model = routed_model(cfg, model)
    if model is None:
        return cfg.queue_name
    if not ledger.MODEL_ID.fullmatch(model):
        raise ValueError(f"not a model id: {model[:60]!r}")
    return f"{cfg.queue_name}-{model}"


def queue_mismatch(cfg: Config, names: list[str]) -> str | None:
    """Why a worker holding this process's model must not serve `names`: another model's queue."""
    held = resolve_model_name(cfg)
    prefix = f"{cfg.queue_name}-"
    for name in names:
        if name.startswith(prefix) and name != f"{prefix}{held}":
            return (
                f"queue {name} is another model's; this worker holds {held} (serve {prefix}{held} or {cfg.queue_name})"
            )
    return None


@functools.cache
def queue(cfg: Config, model: str | None = None) -> Queue:
    return Queue(
        queue_name(cfg, model),
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
    cfg: Config,
    *,
    bucket: str,
    name: str,
    generation: int,
    event_time: str | None,
    force: bool = False,
    model: str | None = None,
) -> tuple[str, bool]:
    """Returns (job id, whether a job was enqueued). Skips generations already done or in flight (for that model)
    unless forced. `model`: None or the live model for the live pipeline; another goes to its own queue."""
    model = routed_model(cfg, model)
    q = queue(cfg, model)
    job_id = jobs.job_id(bucket, name, generation, model)
    if not force:
        key = ledger.model_key(ledger.object_key(bucket, name, generation), model)
        if ledger.outcome_get(q.connection, key) is not None:
            return job_id, False
        existing = (
            Job.fetch(job_id, connection=q.connection, serializer=JSONSerializer)
            if Job.exists(job_id, q.connection)
            else None
        )
        if existing is not None and _live(q, existing):
            return job_id, False
    kwargs: dict[str, object] = {"bucket": bucket, "name": name, "generation": generation, "event_time": event_time}
    if model is not None:
        kwargs["model"] = model  # the live jobs' arguments stay as they were
    q.enqueue(
        jobs.classify_object,
        kwargs=kwargs,
        job_id=job_id,
        retry=jobs.RETRY,
        on_failure=Callback(jobs.on_failure),
        # Finished work leaves Redis within minutes (BigQuery holds the row, the ledger the outcome); a job that
        # failed all its retries stays, with its traceback, as long as an operator needs it.
        result_ttl=cfg.job_result_ttl_s,
        failure_ttl=cfg.failed_job_ttl_s,
        # rq logs the description as each job starts: escaped, a name cannot forge a line of the worker log.
        description=f"classify gs://{bucket}/{shown(name)}#{generation}" + (f" with {model}" if model else ""),
    )
    return job_id, True


def depth(q: Queue) -> int:
    """Jobs waiting: in the queue, and taken by a batching worker but not started yet (rq's intermediate list)."""
    with q.connection.pipeline(transaction=False) as pipe:
        pipe.llen(q.key)
        pipe.llen(q.intermediate_queue_key)
        return sum(pipe.execute())


def bound(cfg: Config, q: Queue) -> int:
    """How many jobs may wait in Redis: QUEUE_MAX_JOBS, or a few batches per live worker (at least one worker's
    worth, so jobs are ready for the first worker that starts)."""
    if cfg.queue_max_jobs:
        return cfg.queue_max_jobs
    return max(1, Worker.count(queue=q)) * cfg.batch_size * BATCHES_PER_WORKER
