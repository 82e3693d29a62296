"""Deduplication and retries, in-process: the job function against the session's local stack.

Each test counts, key by key, what BigQuery holds (tests/contract.py): exactly one row or one failure.
"""

from __future__ import annotations

import dataclasses
import threading
from types import SimpleNamespace
from unittest import mock

import pytest
import redis.exceptions
import requests
from google.api_core import exceptions as gexc

from classifier import delivery, jobs, ledger, outcomes
from classifier.cloud import bigquery, gcs
from classifier.queue import enqueue_classification, queue
from devstack import localstack
from tests import contract


@pytest.fixture
def redis_(cfg, stack):
    return ledger.connection(cfg)


@pytest.fixture
def qcfg(cfg, stack):
    return contract.quiet(cfg)


def _run(key: str) -> dict:
    bucket, name, generation = ledger.parse_key(key)
    return jobs.classify_object(bucket, name, generation)


def test_a_job_run_twice_writes_one_row(cfg, stack, photos, prefix, qcfg):
    key = contract.upload(qcfg, f"{prefix}twice.png", photos["chelsea.png"], "image/png")
    assert _run(key)["outcome"] == "row"
    assert _run(key) == {"outcome": "duplicate", "key": key, "previous": "row"}
    assert contract.violations(cfg, {key: "row"}) == {}


def test_duplicate_notifications_enqueue_one_job(cfg, stack, photos, prefix, qcfg):
    lonely = dataclasses.replace(cfg, queue_name=f"dups-{prefix.strip('/')}")  # no worker serves it
    key = contract.upload(qcfg, f"{prefix}dup.png", photos["coffee.png"], "image/png")
    bucket, name, generation = ledger.parse_key(key)
    args = dict(bucket=bucket, name=name, generation=generation, event_time=None)
    first = enqueue_classification(lonely, **args)
    second = enqueue_classification(lonely, **args)
    assert first[1] is True and second == (first[0], False)
    queue(lonely).empty()


def test_concurrent_jobs_for_one_key_write_one_row(cfg, stack, photos, prefix, qcfg):
    key = contract.upload(qcfg, f"{prefix}concurrent.png", photos["chelsea.png"], "image/png")
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(_run(key))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r["outcome"] for r in results) == ["duplicate", "duplicate", "row"]
    assert contract.violations(cfg, {key: "row"}) == {}


def test_death_between_insert_and_outcome_does_not_double_the_row(cfg, redis_, photos, prefix, qcfg):
    """The crash window: the insert landed, the process died before the ledger heard of it (claim left behind)."""
    key = contract.upload(qcfg, f"{prefix}crash.png", photos["rocket.jpg"], "image/jpeg")

    class Killed(BaseException):
        pass

    with (
        mock.patch.object(ledger, "outcome_set", autospec=True, side_effect=Killed),
        mock.patch.object(ledger, "claim_release", autospec=True),
        pytest.raises(Killed),
    ):
        _run(key)
    assert ledger.outcome_get(redis_, key) is None and ledger.inserting(redis_, key)
    # What a SIGKILLed work horse leaves: its claim, under an RQ execution that is no longer running.
    redis_.set(ledger.CLAIM_PREFIX + key, f"classify-x:dead-execution:{cfg.queue_name}", ex=delivery.CLAIM_TTL_S)

    assert _run(key) == {"outcome": "duplicate", "key": key, "previous": "row"}
    assert ledger.outcome_get(redis_, key) == "row" and not ledger.inserting(redis_, key)
    assert contract.violations(cfg, {key: "row"}) == {}


def test_death_before_the_insert_lets_the_retry_insert(cfg, redis_, photos, prefix, qcfg):
    key = contract.upload(qcfg, f"{prefix}early.png", photos["coffee.png"], "image/png")
    with (
        mock.patch.object(bigquery, "insert_row", autospec=True, side_effect=gexc.ServiceUnavailable("down")),
        pytest.raises(gexc.ServiceUnavailable),
    ):
        _run(key)
    assert ledger.inserting(redis_, key)  # the marker stays: the retry asks BigQuery, finds nothing, inserts
    assert _run(key)["outcome"] == "row"
    assert contract.violations(cfg, {key: "row"}) == {}


def test_a_lost_ledger_is_checked_against_bigquery(cfg, redis_, photos, prefix, qcfg):
    """After a Redis flush, a redelivered notification for a done object must not insert a second row."""
    key = contract.upload(qcfg, f"{prefix}flushed.png", photos["chelsea.png"], "image/png")
    assert _run(key)["outcome"] == "row"
    ledger.outcome_clear(redis_, key)
    redis_.delete(ledger.EPOCH_KEY)
    try:
        assert _run(key) == {"outcome": "duplicate", "key": key, "previous": "row"}
        assert ledger.outcome_get(redis_, key) == "row"
    finally:
        ledger.trust(redis_)
    assert contract.violations(cfg, {key: "row"}) == {}


def test_a_live_claim_makes_the_job_wait_then_retry(cfg, redis_, photos, prefix, monkeypatch, qcfg):
    key = contract.upload(qcfg, f"{prefix}busy.png", photos["chelsea.png"], "image/png")
    monkeypatch.setattr(delivery, "CLAIM_WAIT_S", 0.5)
    redis_.set(ledger.CLAIM_PREFIX + key, "local:someone-else", ex=30)
    with pytest.raises(delivery.ClaimBusy):
        _run(key)
    redis_.delete(ledger.CLAIM_PREFIX + key)
    assert _run(key)["outcome"] == "row"
    assert contract.violations(cfg, {key: "row"}) == {}


def test_an_overwrite_is_a_new_row_and_the_gone_generation_a_failure(cfg, stack, photos, prefix, qcfg):
    name = f"{prefix}overwritten.png"
    first = contract.upload(qcfg, name, photos["chelsea.png"], "image/png")
    assert _run(first)["outcome"] == "row"
    second = contract.upload(qcfg, name, photos["coffee.png"], "image/png")
    third = contract.upload(qcfg, name, photos["rocket.jpg"], "image/jpeg")
    assert len({first, second, third}) == 3
    # The second generation was replaced before its job ran: it no longer exists.
    assert _run(second)["reason_code"] == "object_gone"
    assert _run(third)["outcome"] == "row"
    # The first generation notified again: it already has its row, nothing more.
    assert _run(first)["outcome"] == "duplicate"
    assert contract.violations(cfg, {first: "row", second: "failure:object_gone", third: "row"}) == {}


@pytest.mark.parametrize(
    "error",
    [
        gexc.ServiceUnavailable("503"),
        gexc.InternalServerError("500"),
        gexc.TooManyRequests("429"),
        gexc.DeadlineExceeded("timeout"),
        requests.ConnectionError("connection refused"),
        redis.exceptions.ConnectionError("redis down"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transient_errors_raise_for_rq_to_retry_and_record_nothing(cfg, stack, photos, prefix, error, qcfg):
    key = contract.upload(qcfg, f"{prefix}transient.png", photos["chelsea.png"], "image/png")
    with mock.patch.object(gcs, "download", autospec=True, side_effect=error), pytest.raises(type(error)):
        _run(key)
    assert contract.found(cfg, [key]) == {key: []}


def test_rq_retries_transient_errors_with_backoff_bounded():
    assert jobs.RETRY.max == 3 and jobs.RETRY.intervals == [5, 20, 60]


def test_exhausted_retries_leave_one_failure_record(cfg, stack, prefix):
    key = ledger.object_key(cfg.bucket, f"{prefix}exhausted.png", 123)
    bucket, name, generation = ledger.parse_key(key)
    job = SimpleNamespace(
        id="classify-test", retries_left=0, kwargs={"bucket": bucket, "name": name, "generation": generation}
    )
    conn = ledger.connection(cfg)
    for _ in range(2):  # RQ may call it again (abandoned-job cleanup after a crash)
        jobs.on_failure(job, conn, gexc.ServiceUnavailable, gexc.ServiceUnavailable("503"), None)
    assert contract.violations(cfg, {key: "failure:transient_exhausted"}) == {}
    held = outcomes.find(cfg, [key])
    assert held == {key: ["failure:transient_exhausted"]}


def test_a_queued_job_that_no_list_holds_is_enqueued_again(cfg, redis_, photos, prefix, qcfg):
    """A job whose status says QUEUED but that no list of rq holds is not live: it can be enqueued again."""
    lonely = dataclasses.replace(cfg, queue_name=f"orphans-{prefix.strip('/')}")  # no worker serves it
    key = contract.upload(qcfg, f"{prefix}orphan.png", photos["chelsea.png"], "image/png")
    bucket, name, generation = ledger.parse_key(key)
    args = dict(bucket=bucket, name=name, generation=generation, event_time=None)
    job_id, created = enqueue_classification(lonely, **args)
    assert created and enqueue_classification(lonely, **args) == (job_id, False)
    q = queue(lonely)
    assert q.connection.lrem(q.key, 0, job_id) == 1  # what a worker's dequeue does, then it dies
    assert enqueue_classification(lonely, **args) == (job_id, True)
    assert q.get_job_ids() == [job_id]
    q.empty()


def test_only_one_contender_takes_over_a_dead_claim(redis_, prefix):
    key = f"b/{prefix}takeover.png#1"
    dead = "classify-x:dead-execution:classify"
    redis_.set(ledger.CLAIM_PREFIX + key, dead, ex=30)
    assert ledger.claim_takeover(redis_, key, dead, "first", 30) is True
    assert ledger.claim_takeover(redis_, key, dead, "second", 30) is False
    assert redis_.get(ledger.CLAIM_PREFIX + key) == b"first"
    ledger.claim_release(redis_, key, "first")
    assert not ledger.claimed(redis_, key)


def test_a_notification_that_cannot_be_enqueued_is_left_unacked_not_nacked(cfg):
    """Nacking would have Pub/Sub redeliver at once and burn its 5 delivery attempts during a Redis restart."""
    from classifier.listener import Listener

    no_redis = dataclasses.replace(cfg, redis_url=f"redis://127.0.0.1:{localstack.free_port()}/0")
    attributes = {"eventType": "OBJECT_FINALIZE", "bucketId": cfg.bucket, "objectId": "x.png", "objectGeneration": "1"}
    message = mock.Mock(attributes=attributes, data=b"{}", message_id="m1", ack_id="a1", delivery_attempt=1)
    with (
        mock.patch("classifier.cloud.pubsub.acknowledge") as ack,
        mock.patch("classifier.cloud.pubsub.hand_back") as nack,
    ):
        assert Listener(no_redis).handle_messages([message]) == ["unacked"]
    ack.assert_not_called()  # the pull's one ack request leaves it out...
    nack.assert_not_called()  # ...and it is not handed back for an immediate redelivery either
