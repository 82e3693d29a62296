"""The outcome ledger in Redis: which object generations already ended as a row or a failure.

BigQuery's row-id de-duplication is best effort (and the emulator has none), so a job first asks here
whether its generation is already done, and records its outcome once the BigQuery insert returned.

The write itself is guarded twice: a short claim (SET NX) so two executions never insert the same key at
once, and an "inserting" marker set before the insert and removed with the outcome. A marker without an
outcome means an earlier attempt died between the insert and the outcome: only then does a job ask
BigQuery whether the row already landed. A Redis that lost its data (flush, restart without persistence)
also lost the epoch key: until a full reconcile restores the ledger, every write asks BigQuery first.
"""

from __future__ import annotations

import functools
import time

from redis import Redis

from classifier.config import Config

PREFIX = "sightline:outcome:"
INSERTING_PREFIX = "sightline:inserting:"
CLAIM_PREFIX = "sightline:claim:"
EPOCH_KEY = "sightline:ledger:epoch"
TTL_S = 30 * 24 * 3600  # longer than Pub/Sub's 7-day retention: a redelivery always finds it

# Compare-and-delete: release a claim only if it is still ours (it may have expired and been taken).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_TAKEOVER = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]) "
    "else return false end"
)


def text(value: bytes | str) -> str:
    """A Redis reply as text: these clients answer bytes (no decode_responses), which redis-py types as bytes | str."""
    return value.decode() if isinstance(value, bytes) else value


def object_key(bucket: str, name: str, generation: int) -> str:
    return f"{bucket}/{name}#{generation}"


def parse_key(key: str) -> tuple[str, str, int]:
    bucket, rest = key.split("/", 1)
    name, generation = rest.rsplit("#", 1)
    return bucket, name, int(generation)


@functools.cache
def connection(cfg: Config) -> Redis:
    return Redis.from_url(cfg.redis_url)


def outcome_get(redis: Redis, key: str) -> str | None:
    value = redis.get(PREFIX + key)
    return text(value) if value is not None else None


def outcome_get_many(redis: Redis, keys: list[str]) -> dict[str, str | None]:
    if not keys:
        return {}
    values = redis.mget([PREFIX + k for k in keys])
    return {k: text(v) if v is not None else None for k, v in zip(keys, values, strict=True)}


def outcome_set(redis: Redis, key: str, outcome: str) -> None:
    with redis.pipeline() as pipe:
        pipe.set(PREFIX + key, outcome, ex=TTL_S)
        pipe.delete(INSERTING_PREFIX + key)
        pipe.execute()


def outcome_set_many(redis: Redis, outcomes: dict[str, str]) -> None:
    with redis.pipeline(transaction=False) as pipe:
        for key, outcome in outcomes.items():
            pipe.set(PREFIX + key, outcome, ex=TTL_S)
        pipe.execute()


def outcome_clear(redis: Redis, key: str) -> None:
    redis.delete(PREFIX + key, INSERTING_PREFIX + key)


def inserting_mark(redis: Redis, key: str) -> None:
    redis.set(INSERTING_PREFIX + key, str(time.time()), ex=TTL_S)


def inserting(redis: Redis, key: str) -> bool:
    return bool(redis.exists(INSERTING_PREFIX + key))


def claim(redis: Redis, key: str, token: str, ttl_s: int) -> bool:
    return bool(redis.set(CLAIM_PREFIX + key, token, nx=True, ex=ttl_s))


def claim_release(redis: Redis, key: str, token: str) -> None:
    redis.eval(_RELEASE, 1, CLAIM_PREFIX + key, token)


def claim_takeover(redis: Redis, key: str, old: str, new: str, ttl_s: int) -> bool:
    """Replace a dead holder's claim with ours, only if it is still that holder's (one of two contenders wins)."""
    return bool(redis.eval(_TAKEOVER, 1, CLAIM_PREFIX + key, old, new, ttl_s))


def claimed(redis: Redis, key: str) -> bool:
    return bool(redis.exists(CLAIM_PREFIX + key))


def trusted(redis: Redis) -> bool:
    """False after Redis lost its data: a missing outcome may then be a row BigQuery already has."""
    return bool(redis.exists(EPOCH_KEY))


def trust(redis: Redis) -> None:
    """Called when the ledger is known to match BigQuery: a fresh pipeline, or after a full reconcile."""
    redis.set(EPOCH_KEY, str(time.time()))
