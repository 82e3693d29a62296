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

from classifier.cloud import bigquery, gcs, pubsub
from classifier.config import Config
from controlplane.infra import spec as s
from controlplane.infra.plan import CREATE, DELETE, UPDATE, Change, build_plan, iam_member, iam_target

log = logging.getLogger(__name__)

OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"


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


def _created(done: bool) -> str:
    return "created" if done else "already existed: adopted"


def _create(spec: s.StackSpec, r: s.Resource, change: Change) -> str:
    cfg = spec.cfg
    if r.kind == s.DATASET:
        exists = bigquery.dataset_get(cfg, r.name) is not None
        bigquery.dataset_create(cfg, r.name)
        return _created(not exists)
    if r.kind == s.TABLE:
        exists = bigquery.table_schema(cfg, r.name) is not None
        bigquery.table_create(cfg, r.name, r.attrs["schema"])
        return _created(not exists)
    if r.kind == s.TOPIC:
        return _created(pubsub.topic_ensure(cfg, r.name))
    if r.kind == s.SUBSCRIPTION:
        done = pubsub.subscription_ensure(
            cfg, r.name, r.attrs["_topic"], dead_letter_topic=r.attrs["_dead_letter_topic"]
        )
        return _created(done)
    if r.kind in (s.TOPIC_IAM, s.SUBSCRIPTION_IAM):
        member = change.target or iam_member(spec, r)
        done = pubsub.iam_grant(cfg, role=r.attrs["role"], member=member, **iam_target(r))
        return f"granted {r.attrs['role']} to {member}" if done else "already granted"
    if r.kind == s.BUCKET:
        exists = gcs.bucket_get(cfg, r.name) is not None
        gcs.bucket_create(cfg, r.name)
        return _created(not exists)
    if r.kind == s.NOTIFICATION:
        topic = r.attrs["topic"].rsplit("/", 1)[-1]
        notification_id = gcs.notification_create(cfg, r.attrs["bucket"], topic_project=cfg.project, topic=topic)
        return f"created config #{notification_id}"
    raise ValueError(f"cannot create {r.kind}")


def _update(spec: s.StackSpec, r: s.Resource, change: Change) -> str:
    if r.kind == s.TABLE:
        bigquery.table_schema_update(spec.cfg, r.name, r.attrs["schema"])
        return "schema updated: " + "; ".join(change.details)
    if r.kind == s.SUBSCRIPTION:
        pubsub.subscription_update(spec.cfg, r.name, dead_letter_topic=r.attrs["_dead_letter_topic"])
        return "updated: " + "; ".join(change.details)
    raise ValueError(f"cannot update {r.kind}")


def _delete(spec: s.StackSpec, r: s.Resource, change: Change, *, delete_data: bool) -> str:
    cfg = spec.cfg
    if r.kind == s.NOTIFICATION:
        gcs.notification_delete(cfg, r.attrs["bucket"], change.target)
        return f"deleted config #{change.target}"
    if r.kind == s.BUCKET:
        removed = gcs.bucket_delete(cfg, r.name, delete_objects=delete_data)
        return f"deleted with {removed} objects" if removed else "deleted"
    if r.kind in (s.TOPIC_IAM, s.SUBSCRIPTION_IAM):
        done = pubsub.iam_revoke(cfg, role=r.attrs["role"], member=change.target, **iam_target(r))
        return "revoked" if done else "already revoked"
    deleters: dict[str, Callable[[], None]] = {
        s.SUBSCRIPTION: lambda: pubsub.subscription_delete(cfg, r.name),
        s.TOPIC: lambda: pubsub.topic_delete(cfg, r.name),
        s.TABLE: lambda: bigquery.table_delete(cfg, r.name),
        s.DATASET: lambda: bigquery.dataset_delete(cfg, r.name),
    }
    deleters[r.kind]()
    return f"deleted (with {change.data_label})" if change.data_count else "deleted"


def _resource_for(spec: s.StackSpec, change: Change) -> s.Resource:
    if change.kind == s.NOTIFICATION:  # "<name> #<id>" for one of several configs
        return next(r for r in spec.resources if r.kind == s.NOTIFICATION)
    return spec.resource(change.key)


def run_step(spec: s.StackSpec, change: Change, *, delete_data: bool = False) -> str:
    r = _resource_for(spec, change)
    if change.action == CREATE:
        return _create(spec, r, change)
    if change.action == UPDATE:
        return _update(spec, r, change)
    if change.action == DELETE:
        return _delete(spec, r, change, delete_data=delete_data)
    raise ValueError(f"{change.action} is not carried out by apply")


def run_changes(
    spec: s.StackSpec, changes: list[Change], *, delete_data: bool = False, on_step: OnStep | None = None
) -> list[Step]:
    steps: list[Step] = []
    failed = False
    for change in changes:
        if failed:
            step = Step(change, SKIPPED, "not attempted: an earlier step failed")
        else:
            started = time.monotonic()
            try:
                step = Step(change, OK, run_step(spec, change, delete_data=delete_data), time.monotonic() - started)
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
