"""Figures shared by every open tab and every web process: computed at most once per refresh interval.

Each entry is (computed_at, value) in the pipeline's Redis. When it is older than the interval, one process
(the one that wins an add-only lock) recomputes it; the others serve the previous value meanwhile, with its age,
instead of running the same BigQuery query in parallel. Pages show that age. With `stale_ok` the winner too serves
the previous value and recomputes in the background, so with a tab open no request waits for that figure; a request
that finds no value at all (a fresh Redis, or none for KEEP_S) still computes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.cache import caches
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

REFRESH_S = 3.0  # the dashboard's htmx refresh interval
LOCK_S = 30  # a process that died while computing holds the lock no longer than this
WAIT_S = 5.0  # nothing computed yet and another process computing: wait this long for it
KEEP_S = 600
# The open-failure count is a BigQuery query (10 MB minimum bill): shared, and refreshed less often than the page.
FAILURE_COUNT_KEY = "health:failures"
FAILURE_COUNT_S = 30.0  # a stale value is still worth showing (with its age) while the next is computed


def _cache() -> Any:
    return caches["shared"]


def shared(
    key: str, compute: Callable[..., Any], *, ttl_s: float = REFRESH_S, stale_ok: bool = False, **kwargs: Any
) -> tuple[Any, float]:
    """(value, age in seconds) of `compute(**kwargs)`, computed at most once per `ttl_s` across processes.

    `stale_ok`: once a value exists (up to KEEP_S old), no request waits for the next one: the process that wins
    the lock serves the previous value, with its age, and recomputes it in the background. For figures whose
    `compute` reads no Django database (a background thread would open a connection of its own).
    A Redis that cannot be reached shares nothing: the value is computed here, and the page still shows it."""
    try:
        return _shared(key, compute, ttl_s, stale_ok, kwargs)
    except RedisError:
        log.warning("%s: the shared cache is unreachable; computed without it", key, exc_info=True)
        return compute(**kwargs), 0.0


# Background refreshes (stale_ok): a few at once per process; each holds its figure's lock until it is stored.
_REFRESH = ThreadPoolExecutor(max_workers=2, thread_name_prefix="livecache-refresh")


def _store(key: str, compute: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    cache = _cache()
    try:
        value = compute(**kwargs)
        cache.set(key, (time.time(), value), timeout=KEEP_S)
        return value
    finally:
        cache.delete(f"{key}:lock")


def _refresh(key: str, compute: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    try:
        _store(key, compute, kwargs)
    except Exception:  # the previous value stays, with its growing age; the next request tries again
        log.exception("%s: background refresh failed", key)


def _shared(
    key: str, compute: Callable[..., Any], ttl_s: float, stale_ok: bool, kwargs: dict[str, Any]
) -> tuple[Any, float]:
    cache = _cache()
    entry = cache.get(key)
    if entry is not None and time.time() - entry[0] < ttl_s:
        return entry[1], time.time() - entry[0]
    if cache.add(f"{key}:lock", 1, timeout=LOCK_S):
        if entry is not None and stale_ok:
            _REFRESH.submit(_refresh, key, compute, kwargs)
            return entry[1], time.time() - entry[0]
        return _store(key, compute, kwargs), 0.0
    if entry is not None:
        return entry[1], time.time() - entry[0]
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.05)
        entry = cache.get(key)
        if entry is not None:
            return entry[1], time.time() - entry[0]
    log.warning("%s: no shared value after %.0f s; computing it here", key, WAIT_S)
    return compute(**kwargs), 0.0


def peek(key: str) -> tuple[Any, float] | None:
    """(value, age in seconds) of what is shared under `key`, however old (up to KEEP_S); None when there is
    nothing, or Redis cannot be reached. Computes nothing: for a page that must not wait for a slow read."""
    try:
        entry = _cache().get(key)
    except RedisError:
        return None
    return (entry[1], time.time() - entry[0]) if entry is not None else None


def forget(*keys: str) -> None:
    """Drop shared figures (after an action that changes them, and in tests)."""
    _cache().delete_many(list(keys))


def forget_all() -> int:
    """Drop every shared figure (tests, and after an action whose effect should show at once)."""
    from django.conf import settings

    from classifier import ledger

    redis = ledger.connection(settings.SIGHTLINE)
    keys = list(redis.scan_iter("sightline:cache:*", count=1000))
    return int(redis.delete(*keys)) if keys else 0
