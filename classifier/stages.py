"""Where a worker's CPU goes, stage by stage: the benchmark's per-stage profile (SIGHTLINE_PROFILE=1 only).

Each stage is timed in CPU seconds of the thread that runs it (`time.thread_time`), not wall time: other processes
share the cores, and a stage that waits on the network (a download, an insert) costs only what the worker itself
spent. Stages nest exclusively: while an inner stage runs, the outer one is paused, so the stages add up to the
main thread's CPU without counting anything twice. What no stage covers (rq's work loop and first dequeue, the
liveness thread, logging) is the worker process's CPU less the stages' sum; the benchmark reports it as such.

With profiling on, the worker also counts its Redis round trips and commands (one reply read per command), and
writes the running totals to `sightline:profile:<worker name>` once per batch. Off (the default), `stage` costs
one attribute read and nothing is patched or written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PREFIX = "sightline:profile:"
ENABLED = os.environ.get("SIGHTLINE_PROFILE") == "1"

# The stages, in the order a job meets them (the benchmark prints them so).
DOWNLOAD = "download"
DECODE = "decode"
RESIZE = "resize"
NORMALISE = "normalise"
FORWARD = "forward pass"
ROWS = "row building"
INSERT = "insert"
LEDGER = "ledger and claims"
TAKE = "taking the batch (dequeue, liveness)"
RQ_JOB = "rq per job"
JOB = "job function"
ORDER = (DOWNLOAD, DECODE, RESIZE, NORMALISE, FORWARD, ROWS, INSERT, LEDGER, TAKE, RQ_JOB, JOB)

_totals: dict[str, float] = {}
_stack: list[list[Any]] = []  # [name, started] of the open stages, innermost last
_counts = {"redis round trips": 0, "redis commands": 0}


def _charge(entry: list[Any], now: float) -> None:
    _totals[entry[0]] = _totals.get(entry[0], 0.0) + now - entry[1]


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Charge the CPU spent inside to `name` (exclusive of stages opened inside it)."""
    if not ENABLED:
        yield
        return
    now = time.thread_time()
    if _stack:
        _charge(_stack[-1], now)
    _stack.append([name, now])
    try:
        yield
    finally:
        now = time.thread_time()
        _charge(_stack.pop(), now)
        if _stack:
            _stack[-1][1] = now


def totals() -> dict[str, float]:
    """CPU seconds per stage and the Redis counts so far, for this process."""
    return {**_totals, **{k: float(v) for k, v in _counts.items()}}


def flush(redis: Any, worker_name: str) -> None:
    """The running totals into Redis, replacing the previous ones (one command per batch, profiling only)."""
    if ENABLED and (_totals or any(_counts.values())):
        redis.hset(PREFIX + worker_name, mapping={k: repr(v) for k, v in totals().items()})


def count_redis() -> None:
    """Count this process's Redis round trips and commands (profiling only): each send is a round trip, each reply
    read is one command (a pipeline of n commands is one round trip and n commands)."""
    if not ENABLED:
        return
    from redis.connection import Connection

    if getattr(Connection, "_sightline_counted", False):
        return
    send, read = Connection.send_packed_command, Connection.read_response

    def counted_send(self: Connection, *args: Any, **kwargs: Any) -> Any:
        _counts["redis round trips"] += 1
        return send(self, *args, **kwargs)

    def counted_read(self: Connection, *args: Any, **kwargs: Any) -> Any:
        _counts["redis commands"] += 1
        return read(self, *args, **kwargs)

    Connection.send_packed_command = counted_send  # type: ignore[method-assign,assignment]
    Connection.read_response = counted_read  # type: ignore[method-assign,assignment]
    Connection._sightline_counted = True  # type: ignore[attr-defined]
