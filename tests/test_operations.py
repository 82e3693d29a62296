"""Background operations' records in Redis (classifier/operations.py): a run written by an earlier release, with the
keys and fields it used, still reads, so a "requeue all" or a reprocess running across a deploy keeps its page."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from classifier import failures, ledger, reprocess
from classifier.config import Config


def _written_before(redis: Redis, prefix: str, latest: str, fields: dict[str, str]) -> str:
    """A run's record exactly as the code before classifier/operations.py wrote it."""
    op_id = uuid.uuid4().hex[:12]
    redis.hset(prefix + op_id, mapping={**fields, "id": op_id})
    redis.set(latest, op_id)
    return op_id


def test_a_requeue_all_run_written_before_still_reads(cfg: Config, stack: Any) -> None:
    redis = ledger.connection(cfg)
    started = time.time()
    fields = {"kind": "requeue all", "total": "7", "done": "3", "state": "running", "user": "ann"}
    op_id = _written_before(redis, "sightline:op:", "sightline:op:latest", fields | {"started": str(started)})
    op = failures.op_get(redis)
    assert op is not None and op["id"] == op_id
    assert (op["total"], op["done"], op["pending"]) == (7, 3, 0)
    assert op["started"] == datetime.fromtimestamp(started, UTC) and op["user"] == "ann"


def test_a_reprocess_run_written_before_still_reads_and_cancels(cfg: Config, stack: Any) -> None:
    redis = ledger.connection(cfg)
    sel = reprocess.Selection(
        model="resnet50",
        bucket=cfg.bucket,
        since=datetime(2026, 11, 1, tzinfo=UTC),
        until=datetime(2026, 11, 2, tzinfo=UTC),
    )
    counters = {"total": "5", "enqueued": "4", "done": "2", "failed": "1", "lost": ""}
    fields = sel.as_fields() | counters | {"state": "running", "user": "bo", "started": str(time.time())}
    op_id = _written_before(redis, "sightline:reprocess:op:", "sightline:reprocess:latest", fields)
    redis.sadd("sightline:reprocess:pending:" + op_id, "a", "b")
    op = reprocess.get(redis)
    assert op is not None and op["id"] == op_id
    assert (op["total"], op["enqueued"], op["done"], op["failed"], op["lost"]) == (5, 4, 2, 1, 0)
    assert op["pending"] == 2 and op["active"] and reprocess.Selection.from_fields(op) == sel
    assert reprocess.cancel(redis, op_id)
    assert redis.hget("sightline:reprocess:op:" + op_id, "state") == b"cancelling"


def test_a_new_run_reads_back_as_it_was_started(cfg: Config, stack: Any) -> None:
    redis = ledger.connection(cfg)
    op_id = failures.op_start(redis, kind="requeue all", total=9, user="cy")
    op = failures.op_get(redis, op_id)
    assert op is not None and op == failures.op_get(redis)
    assert (op["kind"], op["total"], op["done"], op["state"], op["error"]) == ("requeue all", 9, 0, "queued", "")
    assert 0 < redis.ttl("sightline:op:" + op_id) <= 7 * 24 * 3600
