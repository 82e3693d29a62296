"""What a step says while it runs (a wait for IAM to propagate), for whoever is watching the apply.

A context variable rather than a parameter of every kind's create/update/delete: only a few steps ever wait, and
the kinds keep the one contract plan and apply talk to."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar

Report = Callable[[str], None]

_current: ContextVar[Report | None] = ContextVar("infra_progress", default=None)


def report(line: str) -> None:
    """Tell the watcher of the running step; nothing when no one watches."""
    watcher = _current.get()
    if watcher is not None:
        watcher(line)


@contextlib.contextmanager
def watching(watcher: Report) -> Iterator[None]:
    token = _current.set(watcher)
    try:
        yield
    finally:
        _current.reset(token)
