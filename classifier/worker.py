"""The RQ worker classes: `rq worker -w classifier.worker.ClassifierWorker ...`.

The model is loaded (and warmed) once per worker process, before the first job, so no job pays the load.
`ClassifierWorker` runs jobs in the worker process itself (rq's SimpleWorker): no fork per job, and job
timeouts still hold (rq's SIGALRM death penalty works in-process). `ForkingClassifierWorker` is rq's
default model, a work horse forked per job (WORKER_FORK=1), kept to measure against and for torch-only setups.
Several workers on one machine each get TORCH_THREADS = cores / WORKERS (see classifier.config).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError
from rq import Queue, SimpleWorker, Worker, worker_registration
from rq.defaults import DEFAULT_WORKER_TTL
from rq.job import Job
from rq.registry import clean_registries
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException
from rq.utils import now
from rq.worker import BaseWorker, WorkerStatus

from classifier import inference, jobs, ledger, liveness, stages
from classifier.batch import Batch, BatchJob
from classifier.config import ConfigError, get_config
from classifier.delivery import ObjectRef
from classifier.model import ModelUnavailable
from classifier.queue import queue_mismatch
from classifier.refusals import CLASSIFY, refusal, refuse
from classifier.weights import resolve_model_name

log = logging.getLogger(__name__)


def _safe(kwargs: dict[str, Any]) -> dict[str, Any]:
    """rq's docs warn that pickle is not safe; a job's description is whatever its author wrote, so rq does not log it
    (a forged one could forge log lines; delivery logs each object, escaped)."""
    return {**kwargs, "serializer": JSONSerializer, "log_job_description": False}


def _allowed(worker: BaseWorker, taken: list[tuple[Job, Queue]]) -> list[tuple[Job, Queue]]:
    """The jobs of `taken` that may run; the others are refused (a stray function, or another model's job)."""
    allowed = []
    held = resolve_model_name(get_config())
    for job, queue in taken:
        reason = refusal(job) or jobs.model_refusal(job, held)
        if reason is None:
            allowed.append((job, queue))
        else:
            refuse(worker, job, queue, reason)
    return allowed


# rq's default worker TTL (420 s) makes an idle worker beat every 405 s, so a killed one looks alive for minutes.
# At 25 s it beats every 10 s (one BLPOP timeout each, nothing else), and the alerts see a dead worker within 30 s.
WORKER_TTL_S = 25
HEARTBEAT_EVERY_S = 5.0  # within a batch; rq's prepare_execution keeps each job's own heartbeat


def _log_like_rq() -> None:
    """rq configures only its own logger; give the classifier's lines the same timestamps in the worker log."""
    logger = logging.getLogger("classifier")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _prepare(worker: BaseWorker) -> None:
    _log_like_rq()
    stages.count_redis()
    try:
        cfg = get_config()
        clf = inference.load_and_warm(cfg)
    except (ConfigError, ModelUnavailable) as exc:
        # A wrong setting or missing weights stop the worker with one line that says what to fix, not a traceback.
        sys.exit(f"sightline worker cannot start: {exc}")
    wrong = queue_mismatch(cfg, [q.name for q in worker.queues])
    if wrong:
        sys.exit(f"sightline worker cannot start: {wrong}")
    worker.log.info(
        "classifier ready: %s on %s with %s, %d threads, %s",
        clf.name,
        clf.device,
        clf.backend,
        cfg.torch_threads,
        "a work horse per job" if cfg.worker_fork else "jobs in-process",
    )


def _with_ttl(kwargs: dict[str, Any]) -> dict[str, Any]:
    """WORKER_TTL_S unless `rq worker --worker-ttl` asked for something other than rq's default."""
    if kwargs.get("worker_ttl") in (None, DEFAULT_WORKER_TTL):
        kwargs["worker_ttl"] = WORKER_TTL_S
    kwargs.pop("default_worker_ttl", None)  # deprecated in rq 3; worker_ttl wins anyway
    return kwargs


class _Liveness(BaseWorker):
    """Beats while alive, records what it takes, and hands back what dead workers had taken (classifier/liveness.py),
    waking every liveness.REAP_S seconds even when no job arrives.

    A mixin over rq's BaseWorker, not its forking Worker: as a Worker subclass it put Worker.execute_job (a work
    horse forked per job) ahead of SimpleWorker's in ClassifierWorker's MRO, so the "in-process" worker forked a
    copy of its ~1 GB process for every job (measured: ~50 CPU ms per job, see docs/performance.md)."""

    _beating: threading.Event | None = None
    _reaped_at = 0.0

    def register_birth(self) -> None:
        super().register_birth()
        liveness.beat(self.connection, self.name)
        self._beating = threading.Event()
        threading.Thread(target=self._beat, args=(self._beating,), name="sightline-beat", daemon=True).start()

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(liveness.BEAT_S):
            try:
                liveness.beat(self.connection, self.name)
            except RedisError:  # Redis restarting: the next beat, within the TTL, will do
                continue

    def register_death(self) -> None:
        if self._beating is not None:
            self._beating.set()
        with contextlib.suppress(RedisError):
            liveness.gone(self.connection, self.name)
        super().register_death()

    @property
    def dequeue_timeout(self) -> int:
        # rq blocks on dequeue for worker_ttl - 15 s (405 s by default) and runs maintenance only between blocks.
        return liveness.REAP_S

    @property
    def should_run_maintenance_tasks(self) -> bool:
        return self._reap_due() or bool(super().should_run_maintenance_tasks)

    def _reap_due(self) -> bool:
        return time.monotonic() - self._reaped_at >= liveness.REAP_S

    def run_maintenance_tasks(self) -> None:
        if self._reap_due():
            self._reaped_at = time.monotonic()
            self._reap()
        if super().should_run_maintenance_tasks:
            super().run_maintenance_tasks()

    def _reap(self) -> None:
        for queue in self.queues:
            try:
                reaped = liveness.reap(self, queue)
            except Exception:  # the worker goes on working; the next pass tries again
                self.log.exception("reaping dead workers' jobs on %s failed", queue.name)
                continue
            if reaped.dead_workers:
                self.log.warning(
                    "dead workers %s: %d jobs handed back", ", ".join(reaped.dead_workers), len(reaped.handed_back)
                )
        # The scheduler (scheduled retries) may have died with its worker: take it over as soon as its lock expires,
        # not at rq's next full maintenance pass.
        if self.scheduler and (not self.scheduler._process or not self.scheduler._process.is_alive()):
            self.scheduler.acquire_locks(auto_start=True)

    def clean_registries(self) -> None:
        """rq's, less its intermediate-list cleanup: that fails every job held there for a minute, which a live
        batching worker does on a slow batch; liveness.reap hands back only what dead workers held."""
        for queue in self.queues:
            if queue.acquire_maintenance_lock():
                clean_registries(queue, self._exc_handlers)
                worker_registration.clean_worker_registry(queue)
                queue.release_maintenance_lock()
        self.last_cleaned_at = now()  # type: ignore[assignment]  # rq annotates it by its initial None

    def _run_taken(self, job: Job, queue: Queue, run: Callable[[Job, Queue], None]) -> None:
        try:
            run(job, queue)
        finally:
            liveness.finished(self.connection, self.name, job.id)


class ClassifierWorker(_Liveness, SimpleWorker):
    """Takes up to BATCH_SIZE queued jobs at once, classifies their images in one forward pass, then runs each job
    through rq as usual (its own status, timeout, retries and outcome); a job whose image was not prefetched, or
    failed to, does its own work and meets its own error. The batch is this worker's, handed to each of its jobs."""

    # rq logs three lines per successful job; delivery logs each object's outcome, and "result is kept for 60
    # seconds" said once per job adds nothing (a line formatted and written per image).
    log_result_lifespan = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["job_class"] = BatchJob  # carries the batch to the job code
        super().__init__(*args, **_with_ttl(_safe(kwargs)))
        _prepare(self)

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            self._execute_batch(job, queue)
        finally:
            stages.flush(self.connection, self.name)

    def _execute_batch(self, job: Job, queue: Queue) -> None:
        cfg = get_config()
        with stages.stage(stages.TAKE):
            # BUSY for the whole batch: a SIGTERM then asks for a warm stop after it, instead of stopping with jobs
            # taken from the queue but not run (rq would only fail them over from its intermediate queue minutes later).
            self.set_state(WorkerStatus.BUSY)
            everything = self._take(job, queue, cfg.batch_size)
            taken = _allowed(self, everything)
            refused = {j.id for j, _ in everything} - {j.id for j, _ in taken}
            if refused:
                liveness.finished_many(self.connection, self.name, sorted(refused))
        if not taken:
            self.set_state(WorkerStatus.IDLE)
            return
        if len(taken) > 1:
            batch = self._prepare_batch(self._objects([queued for queued, _ in taken]), job.id, cfg.job_timeout_s)
            for queued, _ in taken:
                if isinstance(queued, BatchJob):
                    queued.batch = batch
        ran: list[str] = []
        try:
            for queued, origin in taken:
                with stages.stage(stages.RQ_JOB):
                    # SimpleWorker.execute_job less its set_state(IDLE) per job: the worker stays BUSY for the batch.
                    self.perform_job(queued, origin, self.prepare_execution(queued))
                    ran.append(queued.id)
                    self._heartbeat_every(HEARTBEAT_EVERY_S)
        finally:
            with stages.stage(stages.RQ_JOB):
                liveness.finished_many(self.connection, self.name, ran)  # one SREM for the batch
                self.set_state(WorkerStatus.IDLE)

    _heartbeat_at = 0.0

    def _heartbeat_every(self, seconds: float) -> None:
        """rq's worker heartbeat, at most every `seconds` within a batch (its TTL is WORKER_TTL_S)."""
        if time.monotonic() - self._heartbeat_at >= seconds:
            self._heartbeat_at = time.monotonic()
            self.heartbeat()

    def _take(self, job: Job, queue: Queue, batch_size: int) -> list[tuple[Job, Queue]]:
        """Up to `batch_size` jobs: the one given and what is already queued (non-blocking), unless a stop was asked.
        All are recorded as taken in one round trip per queue once taken: a death in between leaves them in rq's
        intermediate list, which the reaper hands back after liveness.UNRECORDED_GRACE_S."""
        taken = [(job, queue)]
        try:
            while len(taken) < batch_size and not self._stop_requested:
                more = self.queue_class.dequeue_any(
                    self._ordered_queues,
                    None,
                    connection=self.connection,
                    job_class=self.job_class,
                    serializer=self.serializer,
                    death_penalty_class=self.death_penalty_class,
                )
                if more is None:
                    break
                more[0].redis_server_version = self.get_redis_server_version()
                taken.append(more)
        finally:
            by_queue: dict[str, tuple[Queue, list[str]]] = {}
            for j, q in taken:
                by_queue.setdefault(q.name, (q, []))[1].append(j.id)
            for q, ids in by_queue.values():
                liveness.took(self.connection, self.name, q, ids)
        return taken

    @staticmethod
    def _objects(jobs: list[Job]) -> list[ObjectRef]:
        """The batch's classification jobs' objects (other jobs just run as they are)."""
        return [
            ObjectRef(
                j.kwargs["bucket"],
                j.kwargs["name"],
                int(j.kwargs["generation"]),
                j.kwargs.get("event_time"),
                j.kwargs.get("model"),
            )
            for j in jobs
            if j.func_name == CLASSIFY and {"bucket", "name", "generation"} <= j.kwargs.keys()
        ]

    def _prepare_batch(self, objects: list[ObjectRef], job_id: str, timeout_s: int) -> Batch:
        """One forward pass, then one BigQuery insert, each under a job timeout; what fails is left to the jobs."""
        batch = Batch()
        self._prefetch(batch, objects, job_id, timeout_s)
        self._write_rows(batch, objects, job_id, timeout_s)
        return batch

    def _prefetch(self, batch: Batch, objects: list[ObjectRef], job_id: str, timeout_s: int) -> None:
        started = time.perf_counter()
        try:
            cfg = get_config()
            with self.death_penalty_class(timeout_s, JobTimeoutException, job_id=job_id):
                ready = batch.prefetch(cfg, ledger.connection(cfg), inference.get_classifier(), objects)
        except Exception:  # the jobs still run one by one and meet their own errors
            self.log.exception("prefetch of %d objects failed", len(objects))
            return
        self.log.info(
            "batch of %d: %d classified together in %.2fs", len(objects), ready, time.perf_counter() - started
        )

    def _write_rows(self, batch: Batch, objects: list[ObjectRef], job_id: str, timeout_s: int) -> None:
        """One BigQuery insert for the rows of the batch's classified images (Batch.write_rows); on any error the
        jobs write their own rows, each under its own claim, as if this had not run."""
        started = time.perf_counter()
        try:
            cfg = get_config()
            with self.death_penalty_class(timeout_s, JobTimeoutException, job_id=job_id):
                written = batch.write_rows(cfg, ledger.connection(cfg), objects)
        except Exception:
            self.log.exception("batched insert of %d rows failed; each job writes its own", len(objects))
            return
        self.log.info(
            "batch of %d: %d rows in one insert in %.2fs", len(objects), written, time.perf_counter() - started
        )


class ForkingClassifierWorker(_Liveness, Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **_with_ttl(_safe(kwargs)))
        _prepare(self)

    def execute_job(self, job: Job, queue: Queue) -> None:
        if _allowed(self, [(job, queue)]):
            liveness.took(self.connection, self.name, queue, [job.id])
            self._run_taken(job, queue, super().execute_job)
