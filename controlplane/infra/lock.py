"""One apply or destroy at a time per pipeline: two operators acting at once would each work from a stale plan."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from classifier import ledger
from classifier.config import Config

# Renewed while an apply or destroy makes progress (Held.renew); a crashed holder's lock expires on its own.
LOCK_TTL_S = 15 * 60
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) else return 0 end"


class LockLost(Exception):
    """The lock expired (or was taken) while its holder still ran: stop rather than act beside another operation."""


@dataclass(frozen=True)
class Held:
    cfg: Config
    token: str

    def renew(self) -> None:
        """Another LOCK_TTL_S from now. A long destroy renews at every batch of deletes, so the lock outlives any run
        that makes progress, and still expires LOCK_TTL_S after a holder that died."""
        if not ledger.connection(self.cfg).eval(_RENEW, 1, lock_key(self.cfg), self.token, LOCK_TTL_S):
            raise LockLost(f"the infrastructure lock was lost ({lock_key(self.cfg)}): stopped")


class Busy(Exception):
    """Another apply or destroy holds the lock; the message says who and since when."""


def lock_key(cfg: Config) -> str:
    return f"sightline:infra:lock:{cfg.project}:{cfg.bucket}"


@contextlib.contextmanager
def exclusive(cfg: Config, *, holder: str) -> Iterator[Held]:
    redis = ledger.connection(cfg)
    token = f"{holder} since {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC [{uuid.uuid4().hex[:8]}]"
    if not redis.set(lock_key(cfg), token, nx=True, ex=LOCK_TTL_S):
        current = redis.get(lock_key(cfg))
        raise Busy(
            f"another operation is running ({ledger.text(current) if current else 'just ended'}): try again when it ends"
        )
    try:
        yield Held(cfg, token)
    finally:
        redis.eval(_RELEASE, 1, lock_key(cfg), token)
