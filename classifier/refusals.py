"""Jobs a worker refuses to run: anything but the classification job, checked by name before rq imports a thing.

Whoever can write to Redis can put any importable function (or callback) in a job, and rq would import and call it
in the worker. A refused job is failed without a retry or a callback, logged, counted and kept in a short list.
Torch-free: the dashboard reads the count.
"""

from __future__ import annotations

import json
import time

from rq import Queue
from rq.job import Job
from rq.worker import BaseWorker

from classifier.logsafe import shown

CLASSIFY = "classifier.jobs.classify_object"
# The pipeline's own jobs (classifier/jobs.py): the classification, and the operator's background failure chores.
ALLOWED_FUNCS = frozenset(
    {
        CLASSIFY,
        "classifier.jobs.requeue_all_failures",
        "classifier.jobs.retry_pending_deletes",
        "classifier.jobs.reprocess_step",
    }
)
ALLOWED_CALLBACKS = frozenset({"classifier.jobs.on_failure"})
REFUSED_COUNT_KEY = "sightline:worker:refused"
REFUSED_RECENT_KEY = "sightline:worker:refused:recent"
REFUSED_RECENT_KEPT = 100


def refusal(
    job: Job, funcs: frozenset[str] = ALLOWED_FUNCS, callbacks: frozenset[str] = ALLOWED_CALLBACKS
) -> str | None:
    """Why `job` must not run, or None. Reads names only: nothing is imported."""
    if job.func_name not in funcs:
        return f"function {shown(job.func_name)} is not a job this worker runs"
    # rq has no public read of a callback's name that does not import it.
    named = (job._success_callback_name, job._failure_callback_name, job._stopped_callback_name)
    stray = sorted(name for name in named if name and name not in callbacks)
    return f"callback {shown(stray[0])} is not allowed" if stray else None


def refuse(worker: BaseWorker, job: Job, queue: Queue, reason: str) -> None:
    """Fail `job` without running, retrying or calling back anything it names; count and keep the refusal."""
    worker.log.error("refused job %s: %s; not run", shown(job.id), reason)
    job.retries_left = 0
    job._success_callback_name = job._failure_callback_name = job._stopped_callback_name = None
    worker.handle_job_failure(job, queue, exc_string=f"refused by the worker: {reason}")
    queue.intermediate_queue.remove(job.id)
    entry = json.dumps({"job": job.id, "reason": reason, "worker": worker.name, "at": time.time()})
    with worker.connection.pipeline() as pipe:
        pipe.incr(REFUSED_COUNT_KEY)
        pipe.lpush(REFUSED_RECENT_KEY, entry)
        pipe.ltrim(REFUSED_RECENT_KEY, 0, REFUSED_RECENT_KEPT - 1)
        pipe.execute()
