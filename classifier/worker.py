"""The RQ worker classes: `rq worker -w classifier.worker.ClassifierWorker ...`.

The model is loaded (and warmed) once per worker process, before the first job, so no job pays the load.
`ClassifierWorker` runs jobs in the worker process itself (rq's SimpleWorker): no fork per job, and job
timeouts still hold (rq's SIGALRM death penalty works in-process). `ForkingClassifierWorker` is rq's
default model, a work horse forked per job (WORKER_FORK=1), kept to measure against and for torch-only setups.
Several workers on one machine each get TORCH_THREADS = cores / WORKERS (see classifier.config).
"""

from __future__ import annotations

import logging
from typing import Any

from rq import SimpleWorker, Worker
from rq.serializers import JSONSerializer

from classifier import runtime
from classifier.config import get_config

log = logging.getLogger(__name__)


def _log_like_rq() -> None:
    """rq configures only its own logger; give the classifier's lines the same timestamps in the worker log."""
    logger = logging.getLogger("classifier")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _prepare(worker: Worker) -> None:
    _log_like_rq()
    cfg = get_config()
    clf = runtime.load_and_warm(cfg)
    worker.log.info(
        "classifier ready: %s on %s with %s, %d threads, %s",
        clf.name,
        clf.device,
        clf.backend,
        cfg.torch_threads,
        "a work horse per job" if cfg.worker_fork else "jobs in-process",
    )


class ClassifierWorker(SimpleWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = JSONSerializer  # rq's docs warn that pickle is not safe
        super().__init__(*args, **kwargs)
        _prepare(self)


class ForkingClassifierWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = JSONSerializer
        super().__init__(*args, **kwargs)
        _prepare(self)
