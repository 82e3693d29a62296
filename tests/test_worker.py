"""The worker classes: what they refuse to run."""

from __future__ import annotations

import json
import time
import uuid

from rq import Callback, Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from classifier import jobs, ledger, liveness, refusals
from classifier.worker import ClassifierWorker


def test_a_job_that_is_not_a_classification_is_refused_not_imported_not_run(cfg, stack, tmp_path, monkeypatch):
    """Whoever can write to Redis can name any importable function, or callback, in a job: the worker refuses it
    before anything imports it, records why, and still runs the classification jobs around it."""
    marker = tmp_path / "forged"
    monkeypatch.setenv("SIGHTLINE_FORGED_MARKER", str(marker))
    redis = ledger.connection(cfg)
    q = Queue(f"forged-{uuid.uuid4().hex[:8]}", connection=redis, serializer=JSONSerializer)
    before = int(redis.get(refusals.REFUSED_COUNT_KEY) or 0)
    forged = q.enqueue("tests.forged_payload.run", kwargs={"bucket": cfg.bucket}, retry=jobs.RETRY)
    callback = q.enqueue(
        jobs.classify_object,
        kwargs={"bucket": cfg.bucket, "name": "never-there.png", "generation": 1},
        on_failure=Callback("tests.forged_payload.run"),
    )
    fine = q.enqueue(jobs.classify_object, kwargs={"bucket": cfg.bucket, "name": "gone.png", "generation": 1})

    ClassifierWorker([q], connection=redis).work(burst=True)

    assert not marker.exists(), marker.read_text()
    for job in (forged, callback):
        assert job.get_status(refresh=True) == JobStatus.FAILED
        assert "refused by the worker" in (job.latest_result().exc_string or "")
    assert q.intermediate_queue.get_job_ids() == [] and q.count == 0
    assert fine.get_status(refresh=True) == JobStatus.FINISHED  # a failure record (object_gone), as usual
    assert int(redis.get(refusals.REFUSED_COUNT_KEY)) == before + 2
    recent = [json.loads(e) for e in redis.lrange(refusals.REFUSED_RECENT_KEY, 0, 1)]
    assert {e["job"] for e in recent} == {forged.id, callback.id}
    assert any("tests.forged_payload.run is not a job this worker runs" in e["reason"] for e in recent)


def test_what_a_dead_worker_had_taken_is_handed_back_at_once_as_an_attempt(cfg, stack):
    """A worker that stopped beating: its job in rq's intermediate list, and its job already started, go back to the
    front of the queue with one retry less; a job of a live worker is left alone."""
    redis = ledger.connection(cfg)
    q = Queue(f"reap-{uuid.uuid4().hex[:8]}", connection=redis, serializer=JSONSerializer)
    kwargs = {"bucket": cfg.bucket, "name": "x.png", "generation": 1}
    held, started, other, waiting = (
        q.enqueue(jobs.classify_object, kwargs={**kwargs, "generation": n}, retry=jobs.RETRY) for n in (1, 2, 3, 4)
    )
    for _ in range(3):  # held, started, other: taken off the queue
        redis.lmove(q.key, q.intermediate_queue_key, "LEFT", "RIGHT")
    redis.lrem(q.intermediate_queue_key, 1, started.id)
    redis.zadd(q.started_job_registry.key, {f"{started.id}:exec1": time.time() + 3600})
    started.set_status(JobStatus.STARTED)
    dead, living = f"ghost-{uuid.uuid4().hex[:6]}", f"alive-{uuid.uuid4().hex[:6]}"
    for name, taken in ((dead, [held.id, started.id]), (living, [other.id])):
        liveness.beat(redis, name)
        liveness.took(redis, name, q, taken)
    redis.delete(liveness.ALIVE_PREFIX + dead)  # stopped beating: SIGKILL, OOM, a lost machine

    reaped = liveness.reap(ClassifierWorker([q], connection=redis), q)

    assert dead in reaped.dead_workers and living not in reaped.dead_workers
    assert sorted(reaped.handed_back) == sorted([held.id, started.id])
    assert set(q.get_job_ids()[:2]) == {held.id, started.id} and q.get_job_ids()[2] == waiting.id  # at the front
    assert q.intermediate_queue.get_job_ids() == [other.id]
    assert redis.zcard(q.started_job_registry.key) == 0
    for job in (held, started):
        job.refresh()
        assert (job.get_status(), job.retries_left) == (JobStatus.QUEUED, jobs.RETRY.max - 1)
    assert not redis.exists(liveness.TAKEN_PREFIX + dead)
    liveness.gone(redis, living)


def test_the_infra_worker_runs_destroys_only(cfg, stack, tmp_path, monkeypatch):
    """The sightline-infra queue's worker (manage.py runinfra) refuses anything but destroy_run the same way."""
    from controlplane.infra.jobs import InfraWorker

    marker = tmp_path / "forged"
    monkeypatch.setenv("SIGHTLINE_FORGED_MARKER", str(marker))
    redis = ledger.connection(cfg)
    q = Queue(f"infra-forged-{uuid.uuid4().hex[:8]}", connection=redis, serializer=JSONSerializer)
    forged = q.enqueue("tests.forged_payload.run", kwargs={})
    InfraWorker([q], connection=redis, serializer=JSONSerializer).work(burst=True)
    assert not marker.exists()
    assert forged.get_status(refresh=True) == JobStatus.FAILED
    assert "is not a job this worker runs" in (forged.latest_result().exc_string or "")
