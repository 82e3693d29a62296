"""Which workers are alive, and handing back the jobs a dead one had taken, within about half a minute.

rq 3.0 moves a dequeued job into the queue's intermediate list before it starts it (a batching worker holds several
there). If the worker dies, only a maintenance pass hands them back, in two passes a minute apart, and an idle worker
blocked on dequeue runs none until a job arrives: a SIGKILLed worker's batch waited ~6 minutes. A job it had
started stays "started" until its heartbeat (the job timeout + 60 s) expires.

So each sightline worker:
- beats `sightline:worker:alive:<name>` every BEAT_S seconds from a thread of its own (the main thread may spend
  minutes in one batch), with a TTL of ALIVE_TTL_S: a SIGKILL, an OOM kill or a lost machine stops the beat;
- records the jobs it takes in `sightline:worker:taken:<name>` before running them, and forgets each once run;
- wakes at least every REAP_S seconds, even when idle, and hands back what dead workers had taken (`reap`).

A handed-back job counts as an attempt (an image that kills every worker that takes it must end, as a failure
record); it goes to the front of the queue at once, not through rq's scheduler, which may have died with the worker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis import Redis
from rq import Queue, Worker
from rq.job import JobStatus
from rq.worker import BaseWorker

from classifier import jobs, ledger
from classifier.refusals import CLASSIFY

log = logging.getLogger(__name__)

ALIVE_PREFIX = "sightline:worker:alive:"
TAKEN_PREFIX = "sightline:worker:taken:"
KNOWN_KEY = "sightline:workers"
BEAT_S = 5
ALIVE_TTL_S = 20  # four missed beats: a busy process still beats (its thread runs while inference releases the GIL)
REAP_S = 10
# A job in the intermediate list that no live worker recorded taking: its worker died between rq's dequeue and the
# record, one Redis round trip later. Seen unrecorded this long (two passes at least), it is nobody's.
UNRECORDED_GRACE_S = 15
TAKEN_TTL_S = 24 * 3600  # a set outliving its worker by a day at most, even if no reaper ever sees it


class WorkerDied(Exception):
    """The worker that had taken a job stopped beating before finishing it."""


def beat(redis: Redis, name: str) -> None:
    with redis.pipeline() as pipe:
        pipe.set(ALIVE_PREFIX + name, "1", ex=ALIVE_TTL_S)
        pipe.sadd(KNOWN_KEY, name)
        pipe.execute()


def alive(redis: Redis, name: str) -> bool:
    return bool(redis.exists(ALIVE_PREFIX + name))


def took(redis: Redis, name: str, queue: Queue, job_ids: list[str]) -> None:
    """Record jobs just taken; forget when they were first seen unrecorded (a job id comes back on each retry)."""
    with redis.pipeline() as pipe:
        pipe.sadd(TAKEN_PREFIX + name, *job_ids)
        pipe.expire(TAKEN_PREFIX + name, TAKEN_TTL_S)
        pipe.delete(*(queue.intermediate_queue.get_first_seen_key(job_id) for job_id in job_ids))
        pipe.execute()


def finished(redis: Redis, name: str, job_id: str) -> None:
    redis.srem(TAKEN_PREFIX + name, job_id)


def finished_many(redis: Redis, name: str, job_ids: list[str]) -> None:
    if job_ids:
        redis.srem(TAKEN_PREFIX + name, *job_ids)


def gone(redis: Redis, name: str) -> None:
    """An exit: whatever it still holds (a cold shutdown mid-batch) is handed back at the next reap."""
    redis.delete(ALIVE_PREFIX + name)


def _members(redis: Redis, key: str) -> set[str]:
    return {ledger.text(m) for m in redis.smembers(key)}


def _started_entries(redis: Redis, queue: Queue, job_id: str) -> list[str]:
    """The started registry's `job_id:execution_id` entries of `job_id`, read raw (rq's reads clean up as they go)."""
    entries = [
        ledger.text(e) for e in redis.zrange(queue.started_job_registry.key, 0, -1) if isinstance(e, bytes | str)
    ]
    return [e for e in entries if e.rsplit(":", 1)[0] == job_id]


def _release(redis: Redis, queue: Queue, job_id: str) -> bool:
    """Take `job_id` out of the intermediate list or the started registry; True for the one reaper that did."""
    if redis.lrem(queue.intermediate_queue_key, 1, job_id):
        return True
    return any(redis.zrem(queue.started_job_registry.key, entry) for entry in _started_entries(redis, queue, job_id))


def hand_back(worker: BaseWorker, queue: Queue, job_id: str, reason: str) -> None:
    """Requeue a released job at the front, as an attempt; after the last one, fail it and record the failure."""
    worker.connection.delete(queue.intermediate_queue.get_first_seen_key(job_id))
    job = queue.fetch_job(job_id)
    if job is None or job.get_status(refresh=False) not in (JobStatus.QUEUED, JobStatus.STARTED):
        return
    if job.retries_left:
        job.retries_left -= 1
        queue.enqueue_job(job, at_front=True)
        log.warning("job %s handed back to the queue: %s (%d retries left)", job_id, reason, job.retries_left)
        return
    log.warning("job %s failed: %s, and it has no retries left", job_id, reason)
    worker.handle_job_failure(job, queue, exc_string=f"{WorkerDied.__name__}: {reason}")
    # Only the classification job's own failure record, called by name: a dead worker's job may be a forged one.
    if job.func_name == CLASSIFY:
        jobs.on_failure(job, worker.connection, WorkerDied, WorkerDied(reason), None)


@dataclass
class Reaped:
    dead_workers: list[str] = field(default_factory=list)
    handed_back: list[str] = field(default_factory=list)


def reap(worker: BaseWorker, queue: Queue) -> Reaped:
    """Hand back what dead workers had taken; safe to run in every worker at once (each job is released once)."""
    redis = worker.connection
    known = _members(redis, KNOWN_KEY)
    live = {name for name in known if alive(redis, name)}
    held_by_live = set().union(*(_members(redis, TAKEN_PREFIX + name) for name in live))
    done = Reaped()
    for name in sorted(known - live):
        done.dead_workers.append(name)
        for job_id in sorted(_members(redis, TAKEN_PREFIX + name) - held_by_live):
            if _release(redis, queue, job_id):
                hand_back(worker, queue, job_id, f"worker {name} stopped beating with it taken")
                done.handed_back.append(job_id)
        with redis.pipeline() as pipe:
            pipe.delete(TAKEN_PREFIX + name)
            pipe.srem(KNOWN_KEY, name)
            pipe.execute()
        _unregister(redis, name)
    done.handed_back += _reap_unrecorded(worker, queue, held_by_live)
    return done


def _unregister(redis: Redis, name: str) -> None:
    """rq keeps a dead worker's registration, "busy", until its key expires (up to job timeout + 60 s, or 8 min)."""
    dead = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=redis)
    if dead is not None and dead.death_date is None:
        dead.register_death()


def _reap_unrecorded(worker: BaseWorker, queue: Queue, held_by_live: set[str]) -> list[str]:
    redis = worker.connection
    intermediate = queue.intermediate_queue
    handed = []
    for job_id in intermediate.get_job_ids():
        if job_id in held_by_live or _started_entries(redis, queue, job_id):
            continue
        first_seen = intermediate.get_first_seen(job_id)
        if first_seen is None:
            intermediate.set_first_seen(job_id)
            continue
        if (datetime.now(UTC) - first_seen).total_seconds() > UNRECORDED_GRACE_S and _release(redis, queue, job_id):
            hand_back(worker, queue, job_id, "held in rq's intermediate list by no live worker")
            handed.append(job_id)
    return handed
