"""The outcome ledger in Redis: which object generations already ended as a row or a failure.

BigQuery's row-id de-duplication is best effort (and the emulator has none), so a job first asks here
whether its generation is already done, and records its outcome once the BigQuery insert returned.
"""

from __future__ import annotations

import functools

from redis import Redis

from classifier.config import Config

PREFIX = "sightline:outcome:"
TTL_S = 30 * 24 * 3600  # longer than Pub/Sub's 7-day retention: a redelivery always finds it


def object_key(bucket: str, name: str, generation: int) -> str:
    return f"{bucket}/{name}#{generation}"


@functools.cache
def connection(cfg: Config) -> Redis:
    return Redis.from_url(cfg.redis_url)


def outcome_get(redis: Redis, key: str) -> str | None:
    value = redis.get(PREFIX + key)
    return value.decode() if value is not None else None


def outcome_set(redis: Redis, key: str, outcome: str) -> None:
    redis.set(PREFIX + key, outcome, ex=TTL_S)


def outcome_clear(redis: Redis, key: str) -> None:
    redis.delete(PREFIX + key)
