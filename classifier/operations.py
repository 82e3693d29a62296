"""Background operations with progress, kept in Redis: one hash per run plus a key naming the latest run.

The operator's "requeue all" (classifier.failures) and a reprocess run (classifier.reprocess) both keep their state
this way; each names its own keys (`Operations`), so what each wrote before keeps reading. Hash values are text;
`get` turns the counters back into ints and `started` into a datetime.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis

from classifier import ledger

TTL_S = 7 * 24 * 3600  # a run's record outlives it by a week: the page still shows how the last one ended


@dataclass(frozen=True)
class Operations:
    """One kind of operation: `prefix` + id is a run's hash, `latest` holds the last run's id, and the `counters`
    are read back as ints (0 when missing)."""

    prefix: str
    latest: str
    counters: tuple[str, ...]

    def key(self, op_id: str) -> str:
        return self.prefix + op_id

    def start(self, redis: Redis, fields: Mapping[str, object]) -> str:
        """Record a new run with `fields` (plus its id and start time) and make it the latest; returns its id."""
        op_id = uuid.uuid4().hex[:12]
        record = {**fields, "id": op_id, "started": time.time()}
        with redis.pipeline() as pipe:
            pipe.hset(self.key(op_id), mapping={k: str(v) for k, v in record.items()})
            pipe.expire(self.key(op_id), TTL_S)
            pipe.set(self.latest, op_id, ex=TTL_S)
            pipe.execute()
        return op_id

    def get(self, redis: Redis, op_id: str | None = None) -> dict[str, Any] | None:
        """A run's record (the latest when no id is given), or None when there is none or it expired."""
        if op_id is None:
            latest = redis.get(self.latest)
            op_id = ledger.text(latest) if latest else None
        if op_id is None:
            return None
        raw = redis.hgetall(self.key(op_id))
        if not raw:
            return None
        op: dict[str, Any] = {ledger.text(k): ledger.text(v) for k, v in raw.items()}
        for name in self.counters:
            op[name] = int(op.get(name) or 0)
        op["started"] = datetime.fromtimestamp(float(op["started"]), UTC)
        return op

    def set(self, redis: Redis, op_id: str, **fields: object) -> None:
        redis.hset(self.key(op_id), mapping={k: str(v) for k, v in fields.items()})

    def incr(self, redis: Redis, op_id: str, **counts: int) -> None:
        """Add to counters in one round trip (several steps or workers may add at once: HINCRBY, never read-write)."""
        with redis.pipeline(transaction=False) as pipe:
            for name, n in counts.items():
                if n:
                    pipe.hincrby(self.key(op_id), name, n)
            pipe.execute()
