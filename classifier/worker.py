"""The RQ worker classes: `rq worker -w classifier.worker.ClassifierWorker ...`.

The model is loaded (and warmed) once per worker process, before the first job, so no job pays the load.
`ClassifierWorker` runs jobs in the worker process itself (rq's SimpleWorker): no fork per job, and job
timeouts still hold (rq's SIGALRM death penalty works in-process). `ForkingClassifierWorker` is rq's
default model, a work horse forked per job (WORKER_FORK=1), kept to measure against and for torch-only setups.
Several workers on one machine each get TORCH_THREADS = cores / WORKERS (see classifier.config).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from rq import Queue, SimpleWorker, Worker
from rq.defaults import DEFAULT_WORKER_TTL
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import JobTimeoutException
from rq.worker import BaseWorker, WorkerStatus

from classifier import inference, ledger
from classifier.batch import Batch, BatchJob
from classifier.config import ConfigError, get_config
from classifier.delivery import ObjectRef
from classifier.model import ModelUnavailable

log = logging.getLogger(__name__)

CLASSIFY = "classifier.jobs.classify_object"
# rq's default worker TTL (420 s) makes an idle worker beat every 405 s, so a killed one looks alive for minutes.
# At 25 s it beats every 10 s (one BLPOP timeout each, nothing else), and the alerts see a dead worker within 30 s.
WORKER_TTL_S = 25


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
    try:
        cfg = get_config()
        clf = inference.load_and_warm(cfg)
    except (ConfigError, ModelUnavailable) as exc:
        # A wrong setting or missing weights stop the worker with one line that says what to fix, not a traceback.
        sys.exit(f"sightline worker cannot start: {exc}")
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


class ClassifierWorker(SimpleWorker):
    """Takes up to BATCH_SIZE queued jobs at once, classifies their images in one forward pass, then runs each job
    through rq as usual (its own status, timeout, retries and outcome); a job whose image was not prefetched, or
    failed to, does its own work and meets its own error. The batch is this worker's, handed to each of its jobs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = JSONSerializer  # rq's docs warn that pickle is not safe
        kwargs["job_class"] = BatchJob  # carries the batch to the job code
        super().__init__(*args, **_with_ttl(kwargs))
        _prepare(self)

    def execute_job(self, job: Job, queue: Queue) -> None:
        cfg = get_config()
        # BUSY for the whole batch: a SIGTERM then asks for a warm stop after it, instead of stopping with jobs taken
        # from the queue but not run (rq would only fail them over from its intermediate queue minutes later).
        self.set_state(WorkerStatus.BUSY)
        taken = self._take(job, queue, cfg.batch_size)
        if len(taken) > 1:
            batch = self._prepare_batch(self._objects([queued for queued, _ in taken]), job.id, cfg.job_timeout_s)
            for queued, _ in taken:
                if isinstance(queued, BatchJob):
                    queued.batch = batch
        for i, (queued, origin) in enumerate(taken):
            super().execute_job(queued, origin)  # ends by setting IDLE
            if i + 1 < len(taken):
                self.set_state(WorkerStatus.BUSY)
            self.heartbeat()

    def _take(self, job: Job, queue: Queue, batch_size: int) -> list[tuple[Job, Queue]]:
        """Up to `batch_size` jobs: the one given and what is already queued (non-blocking), unless a stop was asked."""
        taken = [(job, queue)]
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
        return taken

    @staticmethod
    def _objects(jobs: list[Job]) -> list[ObjectRef]:
        """The batch's classification jobs' objects (other jobs just run as they are)."""
        return [
            ObjectRef(j.kwargs["bucket"], j.kwargs["name"], int(j.kwargs["generation"]), j.kwargs.get("event_time"))
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


class ForkingClassifierWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = JSONSerializer
        super().__init__(*args, **_with_ttl(kwargs))
        _prepare(self)
