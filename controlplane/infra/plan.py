"""Plan: read the live state of every resource and list what apply (or destroy) would do, and why.

Pure reads: nothing here changes a resource or writes the audit log (see services.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from classifier.cloud import bigquery, gcs, pubsub
from controlplane.infra import spec as s

CREATE = "create"
UPDATE = "update"
DELETE = "delete"
REPLACE = "replace"  # destructive: never carried out by apply
NOOP = "no-op"
PROVIDED = "provided"

SYMBOLS = {CREATE: "+", UPDATE: "~", DELETE: "-", REPLACE: "-/+", NOOP: "=", PROVIDED: "="}
LOCAL_PROVIDED = {
    "notification-config": "provided by the local stack (fake-gcs-server event flags): no emulator has the notification-config API",
    "IAM": "provided by the local stack (the emulators take anonymous calls): no emulator has the IAM API",
}


class PlanError(RuntimeError):
    """Live state could not be read; the message names the resource."""


@dataclass(frozen=True)
class Change:
    action: str
    kind: str
    name: str
    reason: str
    details: tuple[str, ...] = ()
    target: str = ""  # what exactly to act on when it is not the resource itself (a notification config's id)
    data_count: int = 0  # destroy: objects or rows that go with the resource
    data_noun: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.action]

    @property
    def pending(self) -> bool:
        return self.action in (CREATE, UPDATE, DELETE, REPLACE)

    @property
    def data_label(self) -> str:
        return f"{self.data_count} {self.data_noun}" if self.data_count else ""

    def fingerprint(self) -> dict[str, Any]:
        """What the operator agreed to. Data counts move while uploads go on; whether there is data at all does not."""
        data = {k: v for k, v in asdict(self).items() if k not in ("data_count", "data_noun")}
        data["has_data"] = self.data_count > 0
        return data

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "details": list(self.details), "symbol": self.symbol}


@dataclass(frozen=True)
class Plan:
    mode: str  # "apply" or "destroy"
    changes: tuple[Change, ...] = field(default_factory=tuple)

    @property
    def checksum(self) -> str:
        body = json.dumps({"mode": self.mode, "changes": [c.fingerprint() for c in self.changes]}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()

    def count(self, *actions: str) -> int:
        return sum(1 for c in self.changes if c.action in actions)

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.pending]

    @property
    def has_changes(self) -> bool:
        return bool(self.pending)

    @property
    def destructive(self) -> list[Change]:
        return [c for c in self.changes if c.action == REPLACE]

    @property
    def data_at_risk(self) -> list[Change]:
        return [c for c in self.changes if c.action == DELETE and c.data_count]

    @property
    def summary(self) -> str:
        line = (
            f"Plan: {self.count(CREATE)} to create, {self.count(UPDATE, REPLACE)} to change, "
            f"{self.count(DELETE)} to destroy."
        )
        if self.destructive:
            line += f" {len(self.destructive)} change(s) need a destructive replacement: apply will not do them."
        return line

    def as_list(self) -> list[dict[str, Any]]:
        return [c.as_dict() for c in self.changes]


# --- Table schemas, field by field ---

_TYPE_ALIASES = {"FLOAT64": "FLOAT", "INT64": "INTEGER", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}


@dataclass(frozen=True)
class SchemaDiff:
    additive: tuple[str, ...] = ()
    destructive: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.additive or self.destructive)


def _norm(f: bigquery.SchemaField) -> tuple[str, str]:
    return _TYPE_ALIASES.get(f.field_type.upper(), f.field_type.upper()), (f.mode or "NULLABLE").upper()


def _describe(f: bigquery.SchemaField) -> str:
    type_, mode = _norm(f)
    return f"{type_}, {mode}"


def schema_diff(
    desired: Sequence[bigquery.SchemaField], live: Sequence[bigquery.SchemaField], prefix: str = ""
) -> SchemaDiff:
    additive: list[str] = []
    destructive: list[str] = []
    live_by_name = {f.name: f for f in live}
    desired_names = {f.name for f in desired}
    for want in desired:
        path = f"{prefix}{want.name}"
        have = live_by_name.get(want.name)
        if have is None:
            if _norm(want)[1] == "REQUIRED":
                destructive.append(f"missing field {path} ({_describe(want)}): a REQUIRED field cannot be added")
            else:
                additive.append(f"missing field {path} ({_describe(want)}): will be added")
            continue
        (want_type, want_mode), (have_type, have_mode) = _norm(want), _norm(have)
        if want_type != have_type:
            destructive.append(f"field {path}: type {have_type}, wanted {want_type}")
        if want_mode != have_mode:
            if have_mode == "REQUIRED" and want_mode == "NULLABLE":
                additive.append(f"field {path}: mode REQUIRED, wanted NULLABLE: will be relaxed")
            else:
                destructive.append(f"field {path}: mode {have_mode}, wanted {want_mode}")
        if want_type == have_type == "RECORD":
            nested = schema_diff(want.fields, have.fields, prefix=f"{path}.")
            additive += nested.additive
            destructive += nested.destructive
    for have in live:
        if have.name not in desired_names:
            destructive.append(f"extra field {prefix}{have.name} ({_describe(have)}): not in the desired schema")
    return SchemaDiff(tuple(additive), tuple(destructive))


# --- One planner per kind: (spec, resource) -> changes ---


def _exists(kind_reads: Callable[[], Any], r: s.Resource) -> list[Change]:
    if kind_reads() is None:
        return [Change(CREATE, r.kind, r.name, "does not exist")]
    return [Change(NOOP, r.kind, r.name, "exists")]


def _plan_dataset(spec: s.StackSpec, r: s.Resource) -> list[Change]:
    return _exists(lambda: bigquery.dataset_get(spec.cfg, r.name), r)


def _plan_table(spec: s.StackSpec, r: s.Resource) -> list[Change]:
    live = bigquery.table_schema(spec.cfg, r.name)
    if live is None:
        return [Change(CREATE, r.kind, r.name, "does not exist")]
    diff = schema_diff(r.attrs["schema"], live)
    if diff.empty:
        return [Change(NOOP, r.kind, r.name, "exists with the desired schema")]
    if diff.destructive:
        reason = (
            "schema drift that BigQuery cannot change in place: the table must be re-created, losing its rows; "
            "not done by apply (destroy with --delete-data, then apply, or migrate it by hand)"
        )
        return [Change(REPLACE, r.kind, r.name, reason, diff.destructive + diff.additive)]
    return [Change(UPDATE, r.kind, r.name, "schema drift: fields will be added or relaxed in place", diff.additive)]


def _plan_topic(spec: s.StackSpec, r: s.Resource) -> list[Change]:
    return _exists(lambda: pubsub.topic_get(spec.cfg, r.name), r)


_SUBSCRIPTION_FIELDS = (
    "ack_deadline_seconds",
    "message_retention_seconds",
    "dead_letter_topic",
    "max_delivery_attempts",
)


def _plan_subscription(spec: s.StackSpec, r: s.Resource) -> list[Change]:
    live = pubsub.subscription_get(spec.cfg, r.name)
    if live is None:
        return [Change(CREATE, r.kind, r.name, "does not exist")]
    if live["topic"] != r.attrs["topic"]:
        detail = f"topic: {live['topic']}, wanted {r.attrs['topic']}"
        reason = (
            "attached to another topic, which cannot be changed: it must be re-created, losing undelivered messages; "
            "not done by apply"
        )
        return [Change(REPLACE, r.kind, r.name, reason, (detail,))]
    details = tuple(f"{f}: {live[f]} -> {r.attrs[f]}" for f in _SUBSCRIPTION_FIELDS if live[f] != r.attrs[f])
    if details:
        return [Change(UPDATE, r.kind, r.name, "settings drifted: updated in place", details)]
    return [Change(NOOP, r.kind, r.name, "exists with the desired settings")]


def iam_target(r: s.Resource) -> dict[str, str]:
    """The keyword arguments that name the resource of a grant in the pubsub module's iam_* functions."""
    return {"topic": r.attrs["topic"]} if r.kind == s.TOPIC_IAM else {"subscription": r.attrs["subscription"]}


def iam_member(spec: s.StackSpec, r: s.Resource) -> str:
    if r.attrs["agent"] == "storage":
        return f"serviceAccount:{gcs.service_agent_email(spec.cfg)}"
    return f"serviceAccount:{pubsub.service_agent_email(gcs.project_number(spec.cfg))}"


def _iam_target_exists(spec: s.StackSpec, r: s.Resource) -> bool:
    if r.kind == s.TOPIC_IAM:
        return pubsub.topic_get(spec.cfg, r.attrs["topic"]) is not None
    return pubsub.subscription_get(spec.cfg, r.attrs["subscription"]) is not None


def _plan_iam(spec: s.StackSpec, r: s.Resource) -> list[Change]:
    if spec.local:
        return [Change(PROVIDED, r.kind, r.name, LOCAL_PROVIDED["IAM"])]
    member = iam_member(spec, r)
    if not _iam_target_exists(spec, r):
        return [Change(CREATE, r.kind, r.name, "granted once the resource it is on exists", target=member)]
    if member in pubsub.iam_members(spec.cfg, role=r.attrs["role"], **iam_target(r)):
        return [Change(NOOP, r.kind, r.name, f"{member} holds {r.attrs['role']}", target=member)]
    why = "bucket events would be refused" if r.attrs["agent"] == "storage" else "dead-lettering would not work"
    return [Change(CREATE, r.kind, r.name, f"{member} lacks {r.attrs['role']}: {why}", target=member)]


def _plan_bucket(spec: s.StackSpec, r: s.Resource) -> list[Change]:
    return _exists(lambda: gcs.bucket_get(spec.cfg, r.name), r)


def _matches(n: gcs.NotificationConfig, r: s.Resource) -> bool:
    return (
        set(n.event_types) == set(r.attrs["event_types"])
        and n.payload_format == r.attrs["payload_format"]
        and not n.prefix
    )


def _plan_notification(spec: s.StackSpec, r: s.Resource) -> list[Change]:
    if spec.local:
        return [Change(PROVIDED, r.kind, r.name, LOCAL_PROVIDED["notification-config"])]
    if gcs.bucket_get(spec.cfg, r.attrs["bucket"]) is None:
        return [Change(CREATE, r.kind, r.name, "the bucket is created first, then its notification config")]
    ours = [n for n in gcs.notifications_list(spec.cfg, r.attrs["bucket"]) if n.topic == r.attrs["topic"]]
    keep = next((n for n in ours if _matches(n, r)), None)
    changes = [
        Change(
            DELETE,
            r.kind,
            f"{r.name} #{n.notification_id}",
            "duplicate: each upload would be announced twice" if keep else "differs from the desired config",
            (f"event_types={list(n.event_types)} payload_format={n.payload_format} prefix={n.prefix or ''}",),
            target=n.notification_id,
        )
        for n in ours
        if n is not keep
    ]
    if keep is None:
        changes.append(Change(CREATE, r.kind, r.name, "no notification config sends OBJECT_FINALIZE to the topic"))
    else:
        changes.append(
            Change(NOOP, r.kind, r.name, f"config #{keep.notification_id} matches", target=keep.notification_id)
        )
    return changes


PLANNERS: dict[str, Callable[[s.StackSpec, s.Resource], list[Change]]] = {
    s.DATASET: _plan_dataset,
    s.TABLE: _plan_table,
    s.TOPIC: _plan_topic,
    s.SUBSCRIPTION: _plan_subscription,
    s.TOPIC_IAM: _plan_iam,
    s.SUBSCRIPTION_IAM: _plan_iam,
    s.BUCKET: _plan_bucket,
    s.NOTIFICATION: _plan_notification,
}


def _read(fn: Callable[[], list[Change]], r: s.Resource) -> list[Change]:
    try:
        return fn()
    except Exception as exc:
        raise PlanError(f"could not read {r.label}: {exc.__class__.__name__}: {exc}") from exc


def build_plan(spec: s.StackSpec) -> Plan:
    """Deletes (stale notification configs) come first, then creates and updates in dependency order."""
    changes = [c for r in spec.resources for c in _read(lambda r=r: PLANNERS[r.kind](spec, r), r)]
    ordered = [c for c in changes if c.action == DELETE] + [c for c in changes if c.action != DELETE]
    return Plan(mode="apply", changes=tuple(ordered))


# --- Destroy: every existing resource, in reverse dependency order ---


def _absent(r: s.Resource) -> list[Change]:
    return [Change(NOOP, r.kind, r.name, "does not exist")]


def _destroy_dataset(spec: s.StackSpec, r: s.Resource) -> list[Change]:
    if bigquery.dataset_get(spec.cfg, r.name) is None:
        return _absent(r)
    managed = {x.name for x in spec.resources if x.kind == s.TABLE}
    others = [t for t in bigquery.dataset_table_ids(spec.cfg, r.name) if t not in managed]
    if others:
        return [Change(NOOP, r.kind, r.name, f"kept: holds tables this stack does not manage: {', '.join(others)}")]
    return [Change(DELETE, r.kind, r.name, "exists; empty once its tables are gone")]


def _destroy_table(spec: s.StackSpec, r: s.Resource) -> list[Change]:
    if bigquery.table_schema(spec.cfg, r.name) is None:
        return _absent(r)
    rows = bigquery.table_row_count(spec.cfg, r.name)
    return [Change(DELETE, r.kind, r.name, "exists", data_count=rows, data_noun="rows")]


def _destroy_simple(get: Callable[[s.StackSpec, str], Any]) -> Callable[[s.StackSpec, s.Resource], list[Change]]:
    def planner(spec: s.StackSpec, r: s.Resource) -> list[Change]:
        return _absent(r) if get(spec, r.name) is None else [Change(DELETE, r.kind, r.name, "exists")]

    return planner


def _destroy_iam(spec: s.StackSpec, r: s.Resource) -> list[Change]:
    if spec.local:
        return [Change(PROVIDED, r.kind, r.name, LOCAL_PROVIDED["IAM"])]
    if not _iam_target_exists(spec, r):
        return _absent(r)
    member = iam_member(spec, r)
    if member not in pubsub.iam_members(spec.cfg, role=r.attrs["role"], **iam_target(r)):
        return _absent(r)
    return [Change(DELETE, r.kind, r.name, f"{member} holds {r.attrs['role']}", target=member)]


def _destroy_bucket(spec: s.StackSpec, r: s.Resource) -> list[Change]:
    if gcs.bucket_get(spec.cfg, r.name) is None:
        return _absent(r)
    objects = gcs.object_count(spec.cfg, r.name)
    return [Change(DELETE, r.kind, r.name, "exists", data_count=objects, data_noun="objects")]


def _destroy_notification(spec: s.StackSpec, r: s.Resource) -> list[Change]:
    if spec.local:
        return [Change(PROVIDED, r.kind, r.name, LOCAL_PROVIDED["notification-config"])]
    if gcs.bucket_get(spec.cfg, r.attrs["bucket"]) is None:
        return _absent(r)
    ours = [n for n in gcs.notifications_list(spec.cfg, r.attrs["bucket"]) if n.topic == r.attrs["topic"]]
    return [
        Change(DELETE, r.kind, f"{r.name} #{n.notification_id}", "exists", target=n.notification_id) for n in ours
    ] or _absent(r)


DESTROY_PLANNERS: dict[str, Callable[[s.StackSpec, s.Resource], list[Change]]] = {
    s.DATASET: _destroy_dataset,
    s.TABLE: _destroy_table,
    s.TOPIC: _destroy_simple(lambda spec, name: pubsub.topic_get(spec.cfg, name)),
    s.SUBSCRIPTION: _destroy_simple(lambda spec, name: pubsub.subscription_get(spec.cfg, name)),
    s.TOPIC_IAM: _destroy_iam,
    s.SUBSCRIPTION_IAM: _destroy_iam,
    s.BUCKET: _destroy_bucket,
    s.NOTIFICATION: _destroy_notification,
}


def build_destroy_plan(spec: s.StackSpec) -> Plan:
    changes = [c for r in reversed(spec.resources) for c in _read(lambda r=r: DESTROY_PLANNERS[r.kind](spec, r), r)]
    return Plan(mode="destroy", changes=tuple(changes))
