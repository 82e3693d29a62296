"""Plan: read the live state of every resource and list what apply (or destroy) would do, and why.

Pure reads: nothing here changes a resource or writes the audit log (see services.py). What a kind reads and how
it compares lives in its module under kinds/; this only walks the spec in order.
"""

from __future__ import annotations

from collections.abc import Callable

from controlplane.infra import spec as s
from controlplane.infra.changes import DELETE, Change, Plan, PlanError
from controlplane.infra.kinds import KINDS, Registry


def _read(r: s.Resource, planner: Callable[[s.StackSpec, s.Resource], list[Change]], spec: s.StackSpec) -> list[Change]:
    try:
        return planner(spec, r)
    except Exception as exc:
        raise PlanError(f"could not read {r.label}: {exc.__class__.__name__}: {exc}") from exc


def build_plan(spec: s.StackSpec, kinds: Registry = KINDS) -> Plan:
    """Deletes (stale notification configs) come first, then creates and updates in dependency order."""
    changes = [c for r in spec.resources for c in _read(r, kinds[r.kind].planner(spec, destroy=False), spec)]
    ordered = [c for c in changes if c.action == DELETE] + [c for c in changes if c.action != DELETE]
    return Plan(mode="apply", changes=tuple(ordered))


def build_destroy_plan(spec: s.StackSpec, kinds: Registry = KINDS) -> Plan:
    """Every existing resource, in reverse dependency order."""
    changes = [c for r in reversed(spec.resources) for c in _read(r, kinds[r.kind].planner(spec, destroy=True), spec)]
    return Plan(mode="destroy", changes=tuple(changes))
