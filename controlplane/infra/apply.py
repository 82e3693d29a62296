"""Carry out a plan's changes, one step at a time, idempotently ("already exists" and "not found" are success).

Only what the plan lists; each step's outcome goes to `on_step` as soon as it is known. The first failure stops
the run (later steps depend on earlier ones) and the rest are reported as skipped: applying again finishes the job.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from classifier.config import Config
from controlplane.infra import progress
from controlplane.infra import spec as s
from controlplane.infra.changes import CREATE, DELETE, UPDATE, Change
from controlplane.infra.kinds import KINDS, Registry
from controlplane.infra.plan import build_plan

log = logging.getLogger(__name__)

OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"
RUNNING = "running"  # a step still under way says what it is doing or waiting for (never in the returned steps)


@dataclass(frozen=True)
class Step:
    change: Change
    status: str
    message: str
    seconds: float = 0.0

    @property
    def line(self) -> str:
        return f"{self.change.symbol} {self.change.kind} {self.change.name}: {self.status}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {**self.change.as_dict(), "status": self.status, "message": self.message, "seconds": self.seconds}


OnStep = Callable[[Step], None]


def run_step(spec: s.StackSpec, change: Change, *, delete_data: bool = False, kinds: Registry = KINDS) -> str:
    kind = kinds[change.kind]
    r = kind.resource_for(spec, change)
    if change.action == CREATE:
        return kind.create(spec, r, change)
    if change.action == UPDATE:
        return kind.update(spec, r, change)
    if change.action == DELETE:
        return kind.delete(spec, r, change, delete_data=delete_data)
    raise ValueError(f"{change.action} is not carried out by apply")


def _progress_to(on_step: OnStep | None, change: Change, started: float) -> progress.Report:
    def running(line: str) -> None:
        log.info("%s %s: %s", change.action, change.key, line)
        if on_step:
            on_step(Step(change, RUNNING, line, time.monotonic() - started))

    return running


def run_changes(
    spec: s.StackSpec,
    changes: list[Change],
    *,
    delete_data: bool = False,
    on_step: OnStep | None = None,
    kinds: Registry = KINDS,
) -> list[Step]:
    steps: list[Step] = []
    failed = False
    for change in changes:
        if failed:
            step = Step(change, SKIPPED, "not attempted: an earlier step failed")
        else:
            started = time.monotonic()
            try:
                with progress.watching(_progress_to(on_step, change, started)):
                    message = run_step(spec, change, delete_data=delete_data, kinds=kinds)
                step = Step(change, OK, message, time.monotonic() - started)
            except Exception as exc:
                log.exception("%s %s failed", change.action, change.key)
                step = Step(change, FAILED, f"{exc.__class__.__name__}: {exc}", time.monotonic() - started)
                failed = True
        steps.append(step)
        if on_step:
            on_step(step)
    return steps


def create_missing(cfg: Config, kinds: Collection[str]) -> list[Step]:
    """Plan the stack's resources of these kinds and carry out only their creates: the local stack calls this when
    an emulator (re)starts, with the same plan and steps as `apply`. It never updates or deletes (that stays an
    operator's reviewed apply), and it keeps no audit log: nothing here changes what was there."""
    spec = s.stack_spec(cfg=cfg)
    subset = dataclasses.replace(spec, resources=tuple(r for r in spec.resources if r.kind in kinds))
    return run_changes(subset, [c for c in build_plan(subset).changes if c.action == CREATE])
