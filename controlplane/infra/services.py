"""Writes: apply and destroy the cloud resources, each recorded in the audit log; plans are reads, not recorded.

Apply and destroy carry out exactly the plan the operator saw: they re-plan and refuse when the checksum differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from classifier.config import Config
from controlplane.audit import Actor, audit_record
from controlplane.infra import apply as runner
from controlplane.infra.changes import Plan
from controlplane.infra.lock import Busy, Held, exclusive
from controlplane.infra.plan import build_destroy_plan, build_plan
from controlplane.infra.spec import StackSpec, stack_spec
from controlplane.models import AuditLog


class Refused(Exception):
    """The operation was not started; the message says why and what to do."""


class StalePlan(Refused):
    def __init__(self, fresh: Plan) -> None:
        super().__init__(
            f"the plan changed since it was shown (checksum {fresh.checksum[:12]} now): nothing was done; "
            "review the new plan and confirm again"
        )
        self.fresh = fresh


@dataclass
class Result:
    plan: Plan
    steps: list[runner.Step] = field(default_factory=list)
    remaining: Plan | None = None  # after a failure: what still differs from the desired state
    audit: AuditLog | None = None

    @property
    def ok(self) -> bool:
        return all(step.status == runner.OK for step in self.steps)


def default_spec(cfg: Config | None = None) -> StackSpec:
    return stack_spec(cfg=cfg or settings.SIGHTLINE)


def _record(
    actor: Actor, action: str, plan: Plan, outcome: str, *, steps: list[runner.Step] | None = None, error: str = ""
) -> AuditLog:
    changes: list[dict[str, Any]] = [s.as_dict() for s in steps] if steps is not None else plan.as_list()
    if steps is not None:  # the plan's lines that were not steps (no-ops) complete the picture
        stepped = {(s.change.key, s.change.target) for s in steps}
        changes += [c.as_dict() for c in plan.changes if (c.key, c.target) not in stepped]
    return audit_record(
        actor=actor,
        action=action,
        outcome=outcome,
        summary=plan.summary,
        error=error,
        checksum=plan.checksum,
        changes=changes,
    )


def stack_plan(*, spec: StackSpec) -> Plan:
    """A read: shown on every visit to the Infrastructure page, so not audited (a hundred reloads would push a real
    destroy off the audit page). What an apply or destroy carried out is recorded with its plan."""
    return build_plan(spec)


def stack_destroy_plan(*, spec: StackSpec) -> Plan:
    return build_destroy_plan(spec)


def _refuse(actor: Actor, action: str, plan: Plan, exc: Refused) -> Refused:
    _record(actor, action, plan, AuditLog.Outcome.REFUSED, error=str(exc))
    return exc


def _finish(actor: Actor, action: str, spec: StackSpec, plan: Plan, steps: list[runner.Step]) -> Result:
    result = Result(plan=plan, steps=steps)
    if not result.ok:
        failed = next(s for s in steps if s.status == runner.FAILED)
        try:
            result.remaining = build_plan(spec) if action == AuditLog.Action.APPLY else build_destroy_plan(spec)
        except Exception:  # the report of what was done matters more than the re-read
            result.remaining = None
        error = f"{failed.line}. Run {action} again to finish."
        result.audit = _record(actor, action, plan, AuditLog.Outcome.FAILED, steps=steps, error=error)
    else:
        result.audit = _record(actor, action, plan, AuditLog.Outcome.SUCCEEDED, steps=steps)
    return result


def _renewing(held: Held, on_step: runner.OnStep | None) -> runner.OnStep:
    """Every step done and every progress report (a batch of deletes, a wait for IAM) renews the lock: a run that
    makes progress keeps it however long it takes. LockLost fails the running step and skips the rest."""

    def renew_then_tell(step: runner.Step) -> None:
        held.renew()
        if on_step:
            on_step(step)

    return renew_then_tell


def stack_apply(*, spec: StackSpec, checksum: str, actor: Actor, on_step: runner.OnStep | None = None) -> Result:
    """Apply the plan whose checksum the operator saw; refuses a stale plan or one that needs destructive changes."""
    try:
        with exclusive(spec.cfg, holder=f"apply by {actor.name}") as held:
            return _apply(spec=spec, checksum=checksum, actor=actor, on_step=_renewing(held, on_step))
    except Busy as exc:
        raise _refuse(actor, AuditLog.Action.APPLY, Plan(mode="apply"), Refused(str(exc))) from None


def _apply(*, spec: StackSpec, checksum: str, actor: Actor, on_step: runner.OnStep | None) -> Result:
    plan = build_plan(spec)
    if plan.checksum != checksum:
        raise _refuse(actor, AuditLog.Action.APPLY, plan, StalePlan(plan))
    if plan.destructive:
        names = ", ".join(c.name for c in plan.destructive)
        raise _refuse(
            actor,
            AuditLog.Action.APPLY,
            plan,
            Refused(f"the plan needs destructive changes ({names}): apply does not do them; see each reason"),
        )
    steps = runner.run_changes(spec, plan.pending, on_step=on_step)
    return _finish(actor, AuditLog.Action.APPLY, spec, plan, steps)


def destroy_check(*, spec: StackSpec, plan: Plan, confirmation: str, delete_data: bool) -> None:
    """Why a teardown may not go ahead, as a Refused; None when it may."""
    cfg = spec.cfg
    if cfg.destroy_protection:
        raise Refused("DESTROY_PROTECTION is on: teardown is refused outright (unset it to allow destroy)")
    if confirmation.strip() != cfg.bucket:
        raise Refused(f"confirmation does not match: type the bucket name {cfg.bucket!r} exactly")
    if plan.data_at_risk and not delete_data:
        held = ", ".join(f"{c.name}: {c.data_label}" for c in plan.data_at_risk)
        raise Refused(f"data would be deleted ({held}): choose 'also delete the data' to go ahead")


def destroy_precheck(*, spec: StackSpec, checksum: str, confirmation: str, delete_data: bool, actor: Actor) -> Plan:
    """Before a destroy is queued: refuse (and record) what would be refused under the lock anyway."""
    plan = build_destroy_plan(spec)
    try:
        destroy_check(spec=spec, plan=plan, confirmation=confirmation, delete_data=delete_data)
        if plan.checksum != checksum:
            raise StalePlan(plan)
    except Refused as exc:
        raise _refuse(actor, AuditLog.Action.DESTROY, plan, exc) from None
    return plan


def stack_destroy(
    *,
    spec: StackSpec,
    checksum: str,
    confirmation: str,
    delete_data: bool,
    actor: Actor,
    on_step: runner.OnStep | None = None,
) -> Result:
    """Tear down every resource in reverse dependency order, after the typed confirmation."""
    try:
        with exclusive(spec.cfg, holder=f"destroy by {actor.name}") as held:
            return _destroy(
                spec=spec,
                checksum=checksum,
                confirmation=confirmation,
                delete_data=delete_data,
                actor=actor,
                on_step=_renewing(held, on_step),
            )
    except Busy as exc:
        raise _refuse(actor, AuditLog.Action.DESTROY, Plan(mode="destroy"), Refused(str(exc))) from None


def _destroy(
    *,
    spec: StackSpec,
    checksum: str,
    confirmation: str,
    delete_data: bool,
    actor: Actor,
    on_step: runner.OnStep | None,
) -> Result:
    plan = destroy_precheck(
        spec=spec, checksum=checksum, confirmation=confirmation, delete_data=delete_data, actor=actor
    )
    steps = runner.run_changes(spec, plan.pending, delete_data=delete_data, on_step=on_step)
    return _finish(actor, AuditLog.Action.DESTROY, spec, plan, steps)
