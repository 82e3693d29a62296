"""One member's role on a Pub/Sub topic or subscription: the grants Google's service agents need on GCP.

Locally the emulators take anonymous calls and have no IAM API, so the local stack provides what a grant would."""

from __future__ import annotations

from dataclasses import dataclass

from classifier.cloud import gcs, projects, pubsub
from controlplane.infra import spec as s
from controlplane.infra.changes import CREATE, DELETE, NOOP, Change
from controlplane.infra.kinds.base import ResourceKind, absent

LOCAL = "provided by the local stack (the emulators take anonymous calls): no emulator has the IAM API"


@dataclass(frozen=True)
class Grant:
    member: str
    on_exists: bool  # the topic or subscription the grant is on
    held: bool


def iam_member(spec: s.StackSpec, r: s.Resource) -> str:
    """The service agent a grant names, resolved from the live project: the Pub/Sub agent's address has its number."""
    if r.attrs["agent"] == "storage":
        return f"serviceAccount:{gcs.service_agent_email(spec.cfg)}"
    return f"serviceAccount:{pubsub.service_agent_email(projects.project_number(spec.cfg))}"


class IamMemberKind(ResourceKind[Grant]):
    """`on` is "topic" or "subscription": the attribute that names what the grant is on, and the keyword the
    pubsub module's iam_* functions take for it."""

    local_provided = LOCAL

    def __init__(self, name: str, *, on: str) -> None:
        self.name = name
        self.on = on

    def _target(self, r: s.Resource) -> dict[str, str]:
        return {self.on: r.attrs[self.on]}

    def _on_exists(self, spec: s.StackSpec, r: s.Resource) -> bool:
        get = pubsub.topic_get if self.on == "topic" else pubsub.subscription_get
        return get(spec.cfg, r.attrs[self.on]) is not None

    def _holds(self, spec: s.StackSpec, r: s.Resource, member: str) -> bool:
        return member in pubsub.iam_members(spec.cfg, role=r.attrs["role"], **self._target(r))

    def read(self, spec: s.StackSpec, r: s.Resource) -> Grant:
        member = iam_member(spec, r)
        if not self._on_exists(spec, r):
            return Grant(member, on_exists=False, held=False)
        return Grant(member, on_exists=True, held=self._holds(spec, r, member))

    def diff(self, spec: s.StackSpec, r: s.Resource, live: Grant) -> list[Change]:
        role, member = r.attrs["role"], live.member
        if not live.on_exists:
            return [Change(CREATE, r.kind, r.name, "granted once the resource it is on exists", target=member)]
        if live.held:
            return [Change(NOOP, r.kind, r.name, f"{member} holds {role}", target=member)]
        why = "bucket events would be refused" if r.attrs["agent"] == "storage" else "dead-lettering would not work"
        return [Change(CREATE, r.kind, r.name, f"{member} lacks {role}: {why}", target=member)]

    def plan_destroy(self, spec: s.StackSpec, r: s.Resource) -> list[Change]:
        # The resource first: when it is gone, so is the grant, and the service agent need not be looked up.
        if not self._on_exists(spec, r):
            return absent(r)
        member = iam_member(spec, r)
        if not self._holds(spec, r, member):
            return absent(r)
        return [Change(DELETE, r.kind, r.name, f"{member} holds {r.attrs['role']}", target=member)]

    def create(self, spec: s.StackSpec, r: s.Resource, change: Change) -> str:
        member = change.target or iam_member(spec, r)
        done = pubsub.iam_grant(spec.cfg, role=r.attrs["role"], member=member, **self._target(r))
        return f"granted {r.attrs['role']} to {member}" if done else "already granted"

    def delete(self, spec: s.StackSpec, r: s.Resource, change: Change, *, delete_data: bool) -> str:
        done = pubsub.iam_revoke(spec.cfg, role=r.attrs["role"], member=change.target, **self._target(r))
        return "revoked" if done else "already revoked"
