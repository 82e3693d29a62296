"""The contract every resource kind keeps, in the spirit of octodns' providers: read, diff, create, update, delete,
and what destroy takes with it. Plan and apply only ever talk to a kind through this."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, TypeVar

from controlplane.infra.changes import CREATE, DELETE, NOOP, PROVIDED, REPLACE, Change
from controlplane.infra.spec import Resource, StackSpec


def created(done: bool) -> str:
    """The step message of a create that may have found the resource already there."""
    return "created" if done else "already existed: adopted"


def deleted(change: Change) -> str:
    """The step message of a delete, naming the data that went with the resource."""
    return f"deleted (with {change.data_label})" if change.data_count else "deleted"


def location_diff(r: Resource, live: str | None, wanted: str) -> list[Change]:
    """A bucket or dataset in another location than GCP_LOCATION: neither can move, so apply never does it.

    Locations compare case-blind: Cloud Storage answers "EUROPE-WEST1" where BigQuery answers "europe-west1"."""
    if live is None or live.lower() == wanted.lower():
        return [Change(NOOP, r.kind, r.name, f"exists in {wanted}")]
    reason = (
        f"in location {live}, GCP_LOCATION is {wanted}: a {r.kind.split('_')[-1]} cannot move, so apply will not do "
        f"this; set GCP_LOCATION={live} to keep it, or destroy (with its data) and apply to re-create it in {wanted}"
    )
    return [Change(REPLACE, r.kind, r.name, reason, (f"location: {live}, wanted {wanted}",))]


def absent(r: Resource) -> list[Change]:
    return [Change(NOOP, r.kind, r.name, "does not exist")]


Live = TypeVar("Live")


class ResourceKind(ABC, Generic[Live]):
    """One kind of cloud resource. `name` is the kind as the spec and the plan's lines spell it; `Live` is what
    `read` returns, None meaning "does not exist" unless the kind says otherwise."""

    name: str
    # Why the local stack provides this kind itself (no emulator has its API); plan and destroy then neither read
    # nor act on it locally. None: the kind is planned the same way locally and on GCP.
    local_provided: str | None = None

    def planner(self, spec: StackSpec, *, destroy: bool) -> Callable[[StackSpec, Resource], list[Change]]:
        """What plans `r` for apply or destroy: the kind's own read and diff, or, locally, "provided"."""
        if spec.local and self.local_provided is not None:
            why = self.local_provided
            return lambda _spec, r: [Change(PROVIDED, r.kind, r.name, why)]
        return self.plan_destroy if destroy else self.plan

    @abstractmethod
    def read(self, spec: StackSpec, r: Resource) -> Live:
        """The live state the diff needs."""

    def diff(self, spec: StackSpec, r: Resource, live: Live) -> list[Change]:
        """What apply would do to bring `live` to `r`. By default: create it when it is missing."""
        if live is None:
            return [Change(CREATE, r.kind, r.name, "does not exist")]
        return [Change(NOOP, r.kind, r.name, "exists")]

    def plan(self, spec: StackSpec, r: Resource) -> list[Change]:
        return self.diff(spec, r, self.read(spec, r))

    def plan_destroy(self, spec: StackSpec, r: Resource) -> list[Change]:
        """What destroy would delete, with the data that goes with it. By default: the resource if it exists."""
        if self.read(spec, r) is None:
            return absent(r)
        return [Change(DELETE, r.kind, r.name, "exists")]

    @abstractmethod
    def create(self, spec: StackSpec, r: Resource, change: Change) -> str:
        """Carry out a create; "already exists" is success. Returns the step's message."""

    def update(self, spec: StackSpec, r: Resource, change: Change) -> str:
        raise ValueError(f"cannot update {r.kind}")

    @abstractmethod
    def delete(self, spec: StackSpec, r: Resource, change: Change, *, delete_data: bool) -> str:
        """Carry out a delete; "not found" is success. Returns the step's message."""

    def resource_for(self, spec: StackSpec, change: Change) -> Resource:
        """The desired resource a change acts on."""
        return spec.resource(change.key)
