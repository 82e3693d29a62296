"""Redis holds the work in flight, not the history (issue 17): dedup beyond the ledger's window, finished jobs that
leave, the memory a steady rate costs, and a backlog that waits in Pub/Sub instead of the queue."""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from rq.job import Job
from rq.results import Result
from rq.serializers import JSONSerializer

from bench import redis_memory
from classifier import jobs, ledger, outcomes
from classifier.cloud import pubsub
from classifier.listener import Listener
from classifier.queue import depth, enqueue_classification, queue
from tests import contract


@pytest.fixture
def qcfg(cfg, stack, prefix):
    """Quiet bucket (nobody notified), and a queue no session worker serves: this test runs its own jobs."""
    lonely = dataclasses.replace(contract.quiet(cfg), queue_name=f"mem-{prefix.strip('/')}")
    yield lonely
    queue(lonely).empty()


def _notification(cfg, key: str, *, age: timedelta) -> pubsub.Pulled:
    bucket, name, generation = ledger.parse_key(key)
    attributes = {
        "eventType": "OBJECT_FINALIZE",
        "payloadFormat": "JSON_API_V1",
        "bucketId": bucket,
        "objectId": name,
        "objectGeneration": str(generation),
        "eventTime": (datetime.now(UTC) - age).isoformat().replace("+00:00", "Z"),
    }
    return pubsub.Pulled(cfg, cfg.subscription_path, f"ack-{uuid.uuid4().hex}", uuid.uuid4().hex, b"{}", attributes)


def _redeliver(cfg, key: str, *, age: timedelta) -> str:
    """Hand the listener a repeat of the key's notification; run its job if one was enqueued, as a worker would."""
    with mock.patch.object(pubsub, "acknowledge", autospec=True):
        (outcome,) = Listener(cfg).handle_messages([_notification(cfg, key, age=age)])
    if outcome == "enqueued":
        contract.drain(cfg)
    return outcome


def test_a_duplicate_inside_the_window_gives_no_second_row(cfg, qcfg, photos, prefix):
    key = contract.upload(qcfg, f"{prefix}inside.png", photos["chelsea.png"], "image/png")
    assert jobs.classify_object(*ledger.parse_key(key))["outcome"] == "row"
    assert _redeliver(qcfg, key, age=timedelta(days=6)) == "duplicate"
    assert contract.violations(cfg, {key: "row"}) == {}


def test_a_duplicate_older_than_the_window_gives_no_second_row(cfg, qcfg, photos, prefix):
    key = contract.upload(qcfg, f"{prefix}older.png", photos["coffee.png"], "image/png")
    assert jobs.classify_object(*ledger.parse_key(key))["outcome"] == "row"
    # Past its window the ledger has let the outcome go (its day's sets expired): only BigQuery still knows.
    ledger.outcome_clear(ledger.connection(cfg), key)
    assert _redeliver(qcfg, key, age=timedelta(days=10)) == "duplicate"
    assert contract.violations(cfg, {key: "row"}) == {}
    assert ledger.outcome_get(ledger.connection(cfg), key) == "row"  # written back: the next repeat stops there


def test_an_old_notification_bigquery_cannot_check_is_left_for_redelivery(cfg, qcfg, photos, prefix):
    key = contract.upload(qcfg, f"{prefix}unchecked.png", photos["coffee.png"], "image/png")
    with mock.patch.object(outcomes, "find", autospec=True, side_effect=RuntimeError("BigQuery is down")):
        assert _redeliver(qcfg, key, age=timedelta(days=10)) == "unacked"
    assert queue(qcfg).count == 0


def test_a_finished_job_leaves_no_hash_or_result_after_its_span(cfg, qcfg, photos, prefix):
    short = dataclasses.replace(qcfg, job_result_ttl_s=2)
    key = contract.upload(short, f"{prefix}leaves.png", photos["rocket.jpg"], "image/jpeg")
    bucket, name, generation = ledger.parse_key(key)
    job_id, created = enqueue_classification(short, bucket=bucket, name=name, generation=generation, event_time=None)
    assert created
    contract.drain(short)
    redis = ledger.connection(cfg)
    job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
    assert job.get_status() == "finished" and redis.exists(Result.get_key(job_id))
    time.sleep(3)  # real time: Redis expires the keys itself
    assert not Job.exists(job_id, redis) and not redis.exists(Result.get_key(job_id))
    registry = queue(short).finished_job_registry
    registry.cleanup()
    assert job_id not in registry.get_job_ids()
    assert contract.violations(cfg, {key: "row"}) == {}


def test_redis_memory_per_image_stays_under_the_target(monkeypatch):
    # Fewer sets per day, filled as full as the real number is at 100 uploads/s (~264 members each): bytes per image
    # as at that rate, measured on 135,000 images instead of a day's 8.6 million.
    monkeypatch.setattr(ledger, "BUCKET_BITS", 9, raising=False)
    images = 2**9 * 264
    report = redis_memory.measure(sizes=[images], jobs_n=200)
    held = redis_memory.projection(report, 100)
    assert sum(held.values()) < redis_memory.TARGET_BYTES_100_PER_S, redis_memory.table(report)
    assert report["sizes"][images]["ledger_bytes_per_image"] < 12, redis_memory.table(report)


@pytest.fixture
def private_subscription(qcfg):
    name = f"mem-{uuid.uuid4().hex[:8]}"
    cfg = dataclasses.replace(qcfg, topic=name, subscription=f"{name}-sub", queue_max_jobs=4)
    pubsub.topic_ensure(cfg, cfg.topic)
    pubsub.subscription_ensure(cfg, cfg.subscription, cfg.topic)
    yield cfg
    pubsub.subscription_delete(cfg, cfg.subscription)
    pubsub.topic_delete(cfg, cfg.topic)


def test_backpressure_keeps_the_queue_bounded_and_the_burst_in_pubsub(cfg, private_subscription, photos, prefix):
    cfg_ = private_subscription
    keys = [contract.upload(cfg_, f"{prefix}burst-{i:02d}.png", photos["chelsea.png"], "image/png") for i in range(14)]
    for key in keys:
        bucket, name, generation = ledger.parse_key(key)
        pubsub.publish(
            cfg_,
            cfg_.topic,
            b"{}",
            eventType="OBJECT_FINALIZE",
            bucketId=bucket,
            objectId=name,
            objectGeneration=str(generation),
            eventTime=datetime.now(UTC).isoformat(),
        )
    listener, q, held_back, deepest = Listener(cfg_), queue(cfg_), 0, 0
    deadline = time.monotonic() + 120
    while not contract.settled(cfg, keys) and time.monotonic() < deadline:
        for _ in range(3):  # the listener's loop runs faster than the workers: it meets a full queue
            room = listener.room()
            if not room:
                held_back += 1
                continue
            listener.handle_messages(pubsub.pull(cfg_, max_messages=room, wait_s=2))
            deepest = max(deepest, depth(q))
        contract.drain(cfg_)  # a worker takes what is queued
    assert held_back > 0 and deepest <= 4, (held_back, deepest)
    assert contract.violations(cfg, {k: "row" for k in keys}) == {}
