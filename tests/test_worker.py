"""The worker classes: what they refuse to run."""

from __future__ import annotations

import json
import uuid

from rq import Callback, Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from classifier import jobs, ledger, worker
from classifier.worker import ClassifierWorker


def test_a_job_that_is_not_a_classification_is_refused_not_imported_not_run(cfg, stack, tmp_path, monkeypatch):
    """Whoever can write to Redis can name any importable function, or callback, in a job: the worker refuses it
    before anything imports it, records why, and still runs the classification jobs around it."""
    marker = tmp_path / "forged"
    monkeypatch.setenv("SIGHTLINE_FORGED_MARKER", str(marker))
    redis = ledger.connection(cfg)
    q = Queue(f"forged-{uuid.uuid4().hex[:8]}", connection=redis, serializer=JSONSerializer)
    before = int(redis.get(worker.REFUSED_COUNT_KEY) or 0)
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
    assert int(redis.get(worker.REFUSED_COUNT_KEY)) == before + 2
    recent = [json.loads(e) for e in redis.lrange(worker.REFUSED_RECENT_KEY, 0, 1)]
    assert {e["job"] for e in recent} == {forged.id, callback.id}
    assert any("tests.forged_payload.run is not a classification job" in e["reason"] for e in recent)
