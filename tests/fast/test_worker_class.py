"""The batching worker runs its jobs in its own process: no work horse forked per job."""

from __future__ import annotations

from rq import SimpleWorker, Worker

from classifier.worker import ClassifierWorker, ForkingClassifierWorker


def _runs_jobs_with(worker_class: type) -> type:
    """The rq class whose execute_job the worker's own (super().execute_job / perform_job) ends in."""
    return next(c for c in worker_class.__mro__[1:] if "execute_job" in vars(c))


def test_the_classifier_worker_executes_jobs_in_process() -> None:
    # Before: the liveness mixin subclassed rq's forking Worker, whose execute_job came first in the MRO, so the
    # "in-process" worker forked a copy of its ~1 GB process for every job (~50 CPU ms per job).
    assert _runs_jobs_with(ClassifierWorker) is SimpleWorker
    assert not issubclass(ClassifierWorker, Worker)


def test_the_forking_worker_still_forks() -> None:
    assert _runs_jobs_with(ForkingClassifierWorker) is Worker
