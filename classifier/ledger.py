"""The outcome ledger in Redis: which object generations already ended as a row or a failure, per model.

Every key here is a delivery key (`model_key`): the object key for the live model, `<object key>@<model>` for another.

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
import hashlib
import re
import time
from typing import NamedTuple

from redis import Redis
from redis.client import Pipeline

from classifier.config import Config

INSERTING_PREFIX = "sightline:inserting:"
CLAIM_PREFIX = "sightline:claim:"
EPOCH_KEY = "sightline:ledger:epoch"
LEDGER_PREFIX = "sightline:ledger:"
DAY_S = 24 * 3600
# Pub/Sub keeps a notification 7 days (pubsub.RETENTION_S), so a redelivery comes at most 7 days after the upload and
# its outcome, recorded after the upload, is at most 7 days old. One more day of margin covers clock skew and a
# notification handled just before midnight. Older notifications are checked against BigQuery (the listener).
WINDOW_DAYS = 8
WINDOW_S = WINDOW_DAYS * DAY_S
TTL_S = (WINDOW_DAYS + 1) * DAY_S  # what may outlive a write by the window: markers, resolved failures
# 2**15 sets per day: at 100 uploads/s a set holds ~264 members, under Redis' set-max-intset-entries (512), so each
# stays an intset (8 bytes a member); ~190 uploads/s is where they would turn into hash tables.
BUCKET_BITS = 15
FAILURE_BUCKETS = 256  # failures are rare: their reason codes go into few hashes

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
    """`bucket/name#generation`: unambiguous because a bucket name never holds "/" (GCS naming rules, checked here)
    and a generation is digits only, so `parse_key` splits at the first "/" and the last "#"."""
    if not bucket or "/" in bucket or not name:
        raise ValueError(f"not an object of a Cloud Storage bucket: bucket {bucket!r}, name {name[:60]!r}")
    return f"{bucket}/{name}#{int(generation)}"


# A model id: what `classifier.weights.resolve_model_name` answers ("resnet50", "efficientnet_lite0"). No "#", "/" or
# "@", so a model key splits unambiguously.
MODEL_ID = re.compile(r"^[a-z0-9_]{1,40}$")


def model_key(key: str, model: str | None) -> str:
    """The delivery key of object key `key` for `model`: the key of the ledger, the claims, the markers and the
    BigQuery row id. The live model's (None) is the object key itself, exactly as before models had keys of their
    own, so the live pipeline's entries are unchanged; another model's is `bucket/name#generation@model`."""
    if model is None:
        return key
    if not MODEL_ID.fullmatch(model):
        raise ValueError(f"not a model id: {model[:60]!r}")
    return f"{key}@{model}"


def split_model(key: str) -> tuple[str, str | None]:
    """(object key, model) of a delivery key; model None for the live model's. "@" after the last "#" can only be a
    model's: a generation is digits."""
    head, _, tail = key.rpartition("#")
    generation, at, model = tail.partition("@")
    return f"{head}#{generation}", (model if at else None)


def parse_key(key: str) -> tuple[str, str, int]:
    bucket, rest = split_model(key)[0].split("/", 1)
    name, generation = rest.rsplit("#", 1)
    return bucket, name, int(generation)


@functools.cache
def connection(cfg: Config) -> Redis:
    return Redis.from_url(cfg.redis_url)


# --- The outcome record ------------------------------------------------------------------------------------------
# An outcome is a member of a set: `sightline:ledger:<day>:<bucket>` holds the 8-byte digests (as integers, so Redis
# keeps the set an intset) of the keys whose outcome was recorded that UTC day, bucketed by 15 more bits of the same
# digest (79 bits in all: a false "done" among ~80 million keys has odds of about 1 in 10**8). A failure's reason code
# goes into `sightline:ledger:<day>:f<byte>`. A day's sets expire together, WINDOW_DAYS after the day ends.


class _Record(NamedTuple):
    bucket: str
    failures: str
    member: str  # a signed 64-bit integer in decimal: Redis stores it in an intset as 8 bytes


def _day(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // DAY_S)


def _record(key: str) -> _Record:
    digest = hashlib.blake2b(key.encode(), digest_size=10).digest()
    bucket = int.from_bytes(digest[:2], "big") >> (16 - BUCKET_BITS)
    return _Record(
        f"{bucket:04x}", f"f{digest[0] % FAILURE_BUCKETS:02x}", str(int.from_bytes(digest[2:], "big", signed=True))
    )


def _days() -> range:
    """The days whose sets may still hold an outcome recorded within the window, newest first."""
    today = _day()
    return range(today, today - WINDOW_DAYS - 1, -1)


def _set_key(day: int, record: _Record) -> str:
    return f"{LEDGER_PREFIX}{day}:{record.bucket}"


def _failures_key(day: int, record: _Record) -> str:
    return f"{LEDGER_PREFIX}{day}:{record.failures}"


def _expire_at(day: int) -> int:
    return (day + 1 + WINDOW_DAYS) * DAY_S


def outcome_get(redis: Redis, key: str) -> str | None:
    return outcome_get_many(redis, [key])[key]


def outcome_get_many(redis: Redis, keys: list[str]) -> dict[str, str | None]:
    """Each key's outcome ("row", "failure:<code>") if it was recorded within the window, else None."""
    if not keys:
        return {}
    days, records = _days(), [_record(k) for k in keys]
    with redis.pipeline(transaction=False) as pipe:
        for record in records:
            for day in days:
                pipe.sismember(_set_key(day, record), record.member)
        found = pipe.execute()
    hits: dict[str, tuple[int, _Record]] = {}
    for i, (key, record) in enumerate(zip(keys, records, strict=True)):
        newest = next(
            (day for day, hit in zip(days, found[i * len(days) : (i + 1) * len(days)], strict=True) if hit), None
        )
        if newest is not None:
            hits[key] = (newest, record)
    return {k: None for k in keys} | _outcomes(redis, hits)


def _outcomes(redis: Redis, hits: dict[str, tuple[int, _Record]]) -> dict[str, str | None]:
    """ "row" unless the day's failure hash holds a reason code for the key."""
    if not hits:
        return {}
    with redis.pipeline(transaction=False) as pipe:
        for day, record in hits.values():
            pipe.hget(_failures_key(day, record), record.member)
        codes = pipe.execute()
    return {k: "row" if code is None else text(code) for k, code in zip(hits, codes, strict=True)}


def _count_key(day: int) -> str:
    return f"{LEDGER_PREFIX}{day}:n"


def _record_outcomes(pipe: Pipeline, outcomes: dict[str, str]) -> None:
    """Today's sets get the keys' members, one SADD per set (reconcile writes a page of 500 at once)."""
    day = _day()
    members: dict[str, list[str]] = {}
    codes: dict[str, dict[str, str]] = {}
    for key, outcome in outcomes.items():
        record = _record(key)
        members.setdefault(_set_key(day, record), []).append(record.member)
        if outcome != "row":
            codes.setdefault(_failures_key(day, record), {})[record.member] = outcome
    for set_key, new in members.items():
        pipe.sadd(set_key, *new)
        pipe.expireat(set_key, _expire_at(day))
    for failures_key, mapping in codes.items():
        pipe.hset(failures_key, mapping=dict(mapping))  # type: ignore[arg-type]  # redis-py's Mapping is invariant
        pipe.expireat(failures_key, _expire_at(day))
    pipe.incrby(_count_key(day), len(outcomes))  # for the dashboard: counting the sets' members means scanning them
    pipe.expireat(_count_key(day), _expire_at(day))


def outcome_set(redis: Redis, key: str, outcome: str) -> None:
    with redis.pipeline() as pipe:
        _record_outcomes(pipe, {key: outcome})
        pipe.delete(INSERTING_PREFIX + key)
        pipe.execute()


def outcome_set_many(redis: Redis, outcomes: dict[str, str]) -> None:
    if not outcomes:
        return
    with redis.pipeline(transaction=False) as pipe:
        _record_outcomes(pipe, outcomes)
        pipe.execute()


def outcome_count(redis: Redis) -> int:
    """Outcomes recorded within the window (a key recorded twice counts twice)."""
    return sum(int(n) for n in redis.mget([_count_key(day) for day in _days()]) if n is not None)


def outcome_clear(redis: Redis, key: str) -> None:
    """Forget the key's outcome (a requeue or dismissal), whichever day recorded it."""
    record = _record(key)
    with redis.pipeline() as pipe:
        for day in _days():
            pipe.srem(_set_key(day, record), record.member)
            pipe.hdel(_failures_key(day, record), record.member)
        pipe.delete(INSERTING_PREFIX + key)
        pipe.execute()


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


# --- Batch forms: one round trip for a batch's keys (classifier/batch.py), same keys and semantics as above ---------


def claim_many(redis: Redis, keys: list[str], token: str, ttl_s: int) -> list[str]:
    """`claim` for each key; the keys whose claim this took."""
    with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.set(CLAIM_PREFIX + key, token, nx=True, ex=ttl_s)
        return [key for key, taken in zip(keys, pipe.execute(), strict=True) if taken]


def claim_release_many(redis: Redis, keys: list[str], token: str) -> None:
    if keys:
        with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.eval(_RELEASE, 1, CLAIM_PREFIX + key, token)
            pipe.execute()


def inserting_many(redis: Redis, keys: list[str]) -> dict[str, bool]:
    with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.exists(INSERTING_PREFIX + key)
        return {key: bool(n) for key, n in zip(keys, pipe.execute(), strict=True)}


def inserting_mark_many(redis: Redis, keys: list[str]) -> None:
    with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.set(INSERTING_PREFIX + key, str(time.time()), ex=TTL_S)
        pipe.execute()


def outcome_set_rows(redis: Redis, keys: list[str]) -> None:
    """`outcome_set(redis, key, "row")` for each key, in one transaction."""
    if keys:
        with redis.pipeline() as pipe:
            _record_outcomes(pipe, dict.fromkeys(keys, "row"))
            pipe.delete(*(INSERTING_PREFIX + key for key in keys))
            pipe.execute()
