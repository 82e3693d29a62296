"""Each kind's diff (live state in, changes out) and the plan and apply walks over the registry, with no cloud:
kinds are given their live state, or replaced by fakes."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from classifier.cloud import bigquery, gcs
from controlplane.infra import apply, plan
from controlplane.infra import spec as s
from controlplane.infra.changes import CREATE, DELETE, NOOP, UPDATE, Change, PlanError
from controlplane.infra.kinds import KINDS, ResourceKind
from controlplane.infra.kinds.iam import Grant

F = bigquery.SchemaField


@pytest.fixture
def spec() -> s.StackSpec:
    return s.stack_spec(cfg=settings.SIGHTLINE)


def first(spec: s.StackSpec, kind: str) -> s.Resource:
    return next(r for r in spec.resources if r.kind == kind)


def test_every_kind_in_the_spec_is_registered(spec):
    assert {r.kind for r in spec.resources} == set(KINDS)
    assert all(name == k.name for name, k in KINDS.items())


def test_table_diff(spec):
    r = first(spec, s.TABLE)
    table = KINDS[s.TABLE]
    shaped = bigquery.CLASSIFICATIONS_SHAPE

    def live(schema, shape=shaped):
        return bigquery.TableLive(schema=list(schema), shape=shape)

    assert [c.action for c in table.diff(spec, r, None)] == [CREATE]
    assert [c.reason for c in table.diff(spec, r, live(bigquery.CLASSIFICATIONS_SCHEMA))] == [
        "exists with the desired schema and shape"
    ]
    (added,) = table.diff(spec, r, live([f for f in bigquery.CLASSIFICATIONS_SCHEMA if f.name != "model"]))
    assert (added.action, added.details) == (UPDATE, ("missing field model (STRING, NULLABLE): will be added",))
    (replaced,) = table.diff(spec, r, live([*bigquery.CLASSIFICATIONS_SCHEMA, F("extra", "STRING")]))
    assert replaced.action == "replace" and "losing its rows" in replaced.reason
    (reshaped,) = table.diff(spec, r, live(bigquery.CLASSIFICATIONS_SCHEMA, bigquery.UNSHAPED))
    assert reshaped.action == UPDATE and "keeping every row" in reshaped.reason
    assert reshaped.details == (
        "shape: not partitioned, not clustered, wanted partitioned by day on processed_at, "
        "clustered on bucket, image_name",
    )


def test_subscription_diff(spec):
    r = next(r for r in spec.resources if r.kind == s.SUBSCRIPTION and r.attrs["_dead_letter_topic"])
    sub = KINDS[s.SUBSCRIPTION]
    live = {k: r.attrs[k] for k in ("topic", "ack_deadline_seconds", "message_retention_seconds")}
    live["expiration_ttl_seconds"] = None
    live |= {
        "dead_letter_topic": r.attrs["dead_letter_topic"],
        "max_delivery_attempts": r.attrs["max_delivery_attempts"],
    }
    assert [c.action for c in sub.diff(spec, r, live)] == [NOOP]
    (drift,) = sub.diff(spec, r, {**live, "ack_deadline_seconds": 10})
    assert (drift.action, drift.details) == (
        UPDATE,
        (f"ack_deadline_seconds: 10 -> {r.attrs['ack_deadline_seconds']}",),
    )
    (moved,) = sub.diff(spec, r, {**live, "topic": "projects/p/topics/other"})
    assert moved.action == "replace" and moved.details == (
        f"topic: projects/p/topics/other, wanted {r.attrs['topic']}",
    )


def notification(spec: s.StackSpec, id_: str, **extra: Any) -> gcs.NotificationConfig:
    r = first(spec, s.NOTIFICATION)
    fields = {"event_types": ("OBJECT_FINALIZE",), "payload_format": "JSON_API_V1", "prefix": None, **extra}
    return gcs.NotificationConfig(notification_id=id_, topic=r.attrs["topic"], **fields)


def test_notification_diff_keeps_one_match_and_deletes_the_rest(spec):
    r = first(spec, s.NOTIFICATION)
    kind = KINDS[s.NOTIFICATION]
    assert [c.reason for c in kind.diff(spec, r, None)] == ["the bucket is created first, then its notification config"]
    live = [notification(spec, "4", prefix="up/"), notification(spec, "5"), notification(spec, "6")]
    assert [(c.action, c.target, c.name) for c in kind.diff(spec, r, live)] == [
        (DELETE, "4", f"{r.name} #4"),
        (DELETE, "6", f"{r.name} #6"),
        (NOOP, "5", r.name),
    ]
    (wrong, create) = kind.diff(spec, r, [notification(spec, "7", payload_format="NONE")])
    assert (wrong.action, wrong.reason, create.action) == (DELETE, "differs from the desired config", CREATE)


def test_iam_diff(spec):
    r = first(spec, s.TOPIC_IAM)
    kind = KINDS[s.TOPIC_IAM]
    member = "serviceAccount:agent@example.com"
    (later,) = kind.diff(spec, r, Grant(member, on_exists=False, held=False))
    assert (later.action, later.target, later.reason) == (CREATE, member, "granted once the resource it is on exists")
    assert [c.action for c in kind.diff(spec, r, Grant(member, on_exists=True, held=True))] == [NOOP]
    (lacks,) = kind.diff(spec, r, Grant(member, on_exists=True, held=False))
    assert lacks.reason == f"{member} lacks {r.attrs['role']}: dead-lettering would not work"


class FakeKind(ResourceKind[Any]):
    """Live state from a dict; creates and deletes recorded, or failing for names in `broken`."""

    def __init__(self, name: str, live: dict[str, Any], broken: frozenset[str] = frozenset()) -> None:
        self.name = name
        self.live = live
        self.broken = broken
        self.done: list[tuple[str, str]] = []

    def read(self, spec: s.StackSpec, r: s.Resource) -> Any:
        if isinstance(self.live.get(r.name), Exception):
            raise self.live[r.name]
        return self.live.get(r.name)

    def create(self, spec: s.StackSpec, r: s.Resource, change: Change) -> str:
        if r.name in self.broken:
            raise RuntimeError("refused")
        self.done.append(("create", r.name))
        return "created"

    def delete(self, spec: s.StackSpec, r: s.Resource, change: Change, *, delete_data: bool) -> str:
        self.done.append(("delete", r.name))
        return "deleted"


def fake_spec(spec: s.StackSpec, *names: str) -> s.StackSpec:
    return s.StackSpec(cfg=spec.cfg, resources=tuple(s.Resource("fake", n) for n in names))


def test_the_plan_walks_the_spec_in_order_and_destroy_in_reverse(spec):
    kinds = {"fake": FakeKind("fake", {"b": {"there": True}})}
    fakes = fake_spec(spec, "a", "b", "c")
    assert [(c.action, c.name) for c in plan.build_plan(fakes, kinds).changes] == [
        (CREATE, "a"),
        (NOOP, "b"),
        (CREATE, "c"),
    ]
    destroy = plan.build_destroy_plan(fakes, kinds)
    assert destroy.mode == "destroy" and [(c.action, c.name) for c in destroy.changes] == [
        (NOOP, "c"),
        (DELETE, "b"),
        (NOOP, "a"),
    ]


def test_deletes_come_first_in_an_apply_plan(spec):
    class Deleting(FakeKind):
        def diff(self, spec: s.StackSpec, r: s.Resource, live: Any) -> list[Change]:
            return [Change(DELETE, r.kind, r.name, "stale")] if r.name == "z" else super().diff(spec, r, live)

    changes = plan.build_plan(fake_spec(spec, "a", "z"), {"fake": Deleting("fake", {})}).changes
    assert [(c.action, c.name) for c in changes] == [(DELETE, "z"), (CREATE, "a")]


def test_a_failed_read_is_a_plan_error_naming_the_resource(spec):
    kinds = {"fake": FakeKind("fake", {"b": TimeoutError("slow")})}
    with pytest.raises(PlanError, match="could not read fake b: TimeoutError: slow"):
        plan.build_plan(fake_spec(spec, "a", "b"), kinds)


def test_apply_stops_at_the_first_failure_and_skips_the_rest(spec):
    fake = FakeKind("fake", {}, broken=frozenset({"b"}))
    fakes = fake_spec(spec, "a", "b", "c")
    seen: list[str] = []
    steps = apply.run_changes(
        fakes,
        list(plan.build_plan(fakes, {"fake": fake}).pending),
        on_step=lambda st: seen.append(st.status),
        kinds={"fake": fake},
    )
    assert [(st.status, st.message) for st in steps] == [
        (apply.OK, "created"),
        (apply.FAILED, "RuntimeError: refused"),
        (apply.SKIPPED, "not attempted: an earlier step failed"),
    ]
    assert seen == [apply.OK, apply.FAILED, apply.SKIPPED] and fake.done == [("create", "a")]


def test_a_kind_without_updates_refuses_one(spec):
    fake = FakeKind("fake", {})
    with pytest.raises(ValueError, match="cannot update fake"):
        apply.run_step(fake_spec(spec, "a"), Change(UPDATE, "fake", "a", "drift"), kinds={"fake": fake})
