"""Batching across jobs: one forward pass for several images, and still one outcome per image, on its own."""

from __future__ import annotations

import uuid
from unittest import mock

import pytest
import redis.exceptions as redis_errors
from google.api_core import exceptions as gexc
from rq import Queue
from rq.serializers import JSONSerializer

from classifier import delivery, inference, jobs, ledger
from classifier.batch import Batch
from classifier.cloud import bigquery, gcs
from classifier.config import get_config
from classifier.delivery import ObjectRef
from classifier.worker import ClassifierWorker
from tests import contract

QUIET_BUCKET = "sightline-test-batching"  # no notifications: the session's workers never race these jobs


@pytest.fixture
def quiet_upload(cfg, stack):
    gcs.bucket_create(cfg, QUIET_BUCKET)

    def _upload(name: str, data: bytes) -> int:
        blob = gcs.client(cfg).bucket(QUIET_BUCKET).blob(name)
        blob.upload_from_string(data)
        return int(blob.generation)

    return _upload


def test_a_batch_keeps_each_images_outcome_its_own(cfg, photos, prefix, quiet_upload):
    good = {f"{prefix}{name}": quiet_upload(f"{prefix}{name}", data) for name, data in photos.items()}
    bad = f"{prefix}notes.jpg"
    objects = [ObjectRef(QUIET_BUCKET, name, generation) for name, generation in good.items()]
    objects += [
        ObjectRef(QUIET_BUCKET, bad, quiet_upload(bad, b"plain text")),
        ObjectRef(QUIET_BUCKET, f"{prefix}gone.jpg", 12345),
    ]

    batch = Batch()
    assert _prefetch(cfg, batch, objects) == len(good)
    redis = ledger.connection(cfg)
    results = {o.name: delivery.classify(cfg, redis, o, batch=batch) for o in objects}

    clf = inference.get_classifier()
    for name in good:
        alone = clf.classify(photos[name.removeprefix(prefix)])
        assert (results[name]["outcome"], results[name]["top"]) == ("row", alone[0].classification)
    assert results[bad]["reason_code"] == "not_an_image"
    assert results[f"{prefix}gone.jpg"]["reason_code"] == "object_gone"


def test_a_job_without_a_prefetched_image_does_its_own_work(cfg, photos, prefix, quiet_upload):
    generation = quiet_upload(f"{prefix}rocket.jpg", photos["rocket.jpg"])
    assert jobs.classify_object(QUIET_BUCKET, f"{prefix}rocket.jpg", generation)["outcome"] == "row"


# --- One BigQuery insert for the batch's rows (Batch.write_rows), still one outcome per key ---


def _objects(keys: list[str]) -> list[ObjectRef]:
    return [ObjectRef(*ledger.parse_key(key)) for key in keys]


def _prefetch(cfg, batch: Batch, objects: list[ObjectRef]) -> int:
    return batch.prefetch(cfg, ledger.connection(cfg), inference.get_classifier(), objects)


def _run(key: str, batch: Batch) -> dict:
    """The key's job, run as its batching worker runs it: handed the batch."""
    cfg = get_config()
    return delivery.classify(cfg, ledger.connection(cfg), ObjectRef(*ledger.parse_key(key)), batch=batch)


@pytest.fixture
def batch() -> Batch:
    return Batch()


@pytest.fixture
def batch_keys(cfg, stack, photos, prefix, batch):
    qcfg = contract.quiet(cfg)
    good = [contract.upload(qcfg, f"{prefix}{name}", data) for name, data in photos.items()]
    bad = contract.upload(qcfg, f"{prefix}notes.jpg", b"plain text")
    gone = ledger.object_key(qcfg.bucket, f"{prefix}gone.jpg", 12345)
    assert _prefetch(cfg, batch, _objects([*good, bad, gone])) == len(good)
    return good, bad, gone


def test_a_batch_writes_its_rows_in_one_insert_and_each_job_reports_its_row(cfg, batch, batch_keys):
    good, bad, gone = batch_keys
    redis = ledger.connection(cfg)
    with mock.patch.object(bigquery, "insert_rows", wraps=bigquery.insert_rows) as insert:
        assert batch.write_rows(cfg, redis, _objects([*good, bad, gone])) == len(good)
    assert insert.call_count == 1 and insert.call_args.kwargs["row_ids"] == good
    assert all(ledger.outcome_get(redis, k) == "row" and not ledger.inserting(redis, k) for k in good)
    assert not any(ledger.claimed(redis, k) for k in [*good, bad, gone])

    with mock.patch.object(bigquery, "insert_rows", wraps=bigquery.insert_rows) as insert:
        results = {k: _run(k, batch) for k in [*good, bad, gone]}
    assert insert.call_count == 2  # only the two failure records, each its own
    assert all(results[k]["outcome"] == "row" and results[k]["top"] for k in good)
    assert (results[bad]["reason_code"], results[gone]["reason_code"]) == ("not_an_image", "object_gone")
    assert _run(good[0], batch) == {"outcome": "duplicate", "key": good[0], "previous": "row"}  # a redelivery, later
    expected = {k: "row" for k in good} | {bad: "failure:not_an_image", gone: "failure:object_gone"}
    assert contract.violations(cfg, expected) == {}


def test_a_failed_batched_insert_leaves_each_job_its_own_write(cfg, batch, batch_keys):
    good, _, _ = batch_keys
    redis = ledger.connection(cfg)
    with (
        mock.patch.object(bigquery, "insert_rows", autospec=True, side_effect=gexc.ServiceUnavailable("down")),
        pytest.raises(gexc.ServiceUnavailable),
    ):
        batch.write_rows(cfg, redis, _objects(good))
    assert all(ledger.inserting(redis, k) and not ledger.claimed(redis, k) for k in good)  # markers stay
    assert all(_run(k, batch)["outcome"] == "row" for k in good)  # each asks BigQuery, finds nothing, inserts
    assert contract.violations(cfg, {k: "row" for k in good}) == {}


def test_a_death_after_the_batched_insert_does_not_double_a_row(cfg, batch, batch_keys):
    """The insert landed but no outcome was recorded (the worker died): each job finds its row in BigQuery."""
    good, _, _ = batch_keys
    redis = ledger.connection(cfg)
    with (
        mock.patch.object(ledger, "outcome_set_rows", autospec=True, side_effect=redis_errors.ConnectionError("gone")),
        pytest.raises(redis_errors.ConnectionError),
    ):
        batch.write_rows(cfg, redis, _objects(good))
    assert all(ledger.inserting(redis, k) and ledger.outcome_get(redis, k) is None for k in good)
    assert all(_run(k, batch) == {"outcome": "duplicate", "key": k, "previous": "row"} for k in good)
    assert contract.violations(cfg, {k: "row" for k in good}) == {}


def test_a_batch_leaves_held_done_and_half_written_keys_to_their_jobs(cfg, batch, batch_keys):
    held, done, half = batch_keys[0]
    redis = ledger.connection(cfg)
    redis.set(ledger.CLAIM_PREFIX + held, "local:someone-else", ex=delivery.CLAIM_TTL_S)
    ledger.outcome_set(redis, done, "failure:undecodable")
    ledger.inserting_mark(redis, half)
    try:
        with mock.patch.object(bigquery, "insert_rows", autospec=True) as insert:
            assert batch.write_rows(cfg, redis, _objects([held, done, half])) == 0
        insert.assert_not_called()
        assert redis.get(ledger.CLAIM_PREFIX + held) == b"local:someone-else"
        assert ledger.outcome_get(redis, done) == "failure:undecodable" and ledger.inserting(redis, half)
    finally:
        redis.delete(ledger.CLAIM_PREFIX + held)
    assert _run(held, batch)["outcome"] == "row" and _run(half, batch)["outcome"] == "row"
    assert contract.violations(cfg, {held: "row", half: "row"}) == {}


def test_an_untrusted_ledger_leaves_every_write_to_its_job(cfg, batch, batch_keys):
    good, _, _ = batch_keys
    redis = ledger.connection(cfg)
    redis.delete(ledger.EPOCH_KEY)
    try:
        with mock.patch.object(bigquery, "insert_rows", autospec=True) as insert:
            assert batch.write_rows(cfg, redis, _objects(good)) == 0
        insert.assert_not_called()
    finally:
        ledger.trust(redis)


def test_the_worker_hands_its_batch_to_each_of_its_jobs(cfg, photos, prefix, quiet_upload):
    """ClassifierWorker takes the queued jobs as one batch: one forward pass, ONE insert for all their rows, and
    each job (run through rq, on its own) reports its row from the batch it was handed."""
    redis = ledger.connection(cfg)
    q = Queue(f"sightline-test-batching-{uuid.uuid4().hex[:8]}", connection=redis, serializer=JSONSerializer)
    objects = [
        ObjectRef(QUIET_BUCKET, f"{prefix}{n}", quiet_upload(f"{prefix}{n}", data)) for n, data in photos.items()
    ]
    queued = [q.enqueue(jobs.classify_object, kwargs=o._asdict()) for o in objects]

    with mock.patch.object(bigquery, "insert_rows", wraps=bigquery.insert_rows) as insert:
        ClassifierWorker([q], connection=redis).work(burst=True)

    assert insert.call_count == 1 and sorted(insert.call_args.kwargs["row_ids"]) == sorted(o.key for o in objects)
    assert [job.return_value()["outcome"] for job in queued] == ["row"] * len(objects)
