"""Terraform-like text for the plan/apply/destroy commands: `+` create, `~` change, `-` destroy, `=` unchanged."""

from __future__ import annotations

from collections.abc import Callable

from controlplane.infra.apply import Step
from controlplane.infra.plan import Change, Plan

# Exit codes that scripts can rely on.
EXIT_OK = 0  # plan: nothing to do; apply/destroy: done (or nothing to do)
EXIT_ERROR = 1  # an error, a refusal (stale plan, protection, wrong confirmation) or an aborted prompt
EXIT_CHANGES = 2  # plan only: changes are pending (like `terraform plan -detailed-exitcode`)


def change_lines(change: Change) -> list[str]:
    data = f" [{change.data_label}]" if change.data_label else ""
    lines = [f"  {change.symbol:>3} {change.kind} {change.name}{data}: {change.reason}"]
    lines += [f"        {detail}" for detail in change.details]
    return lines


def plan_lines(plan: Plan) -> list[str]:
    lines = [line for change in plan.changes for line in change_lines(change)]
    return [*lines, "", plan.summary, f"Plan checksum: {plan.checksum[:12]}"]


def step_line(step: Step) -> str:
    return f"  {step.change.symbol:>3} {step.change.kind} {step.change.name}: {step.status}: {step.message} ({step.seconds:.1f}s)"


def write_all(write: Callable[[str], None], lines: list[str]) -> None:
    for line in lines:
        write(line)
