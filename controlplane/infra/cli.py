"""Terraform-like text for the plan/apply/destroy commands: `+` create, `~` change, `-` destroy, `=` unchanged."""

from __future__ import annotations

import sys
from collections.abc import Callable

from django.core.management.base import BaseCommand

from controlplane.infra.apply import Step
from controlplane.infra.changes import Change, Plan

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


def show_plan(command: BaseCommand, make_plan: Callable[[], Plan]) -> Plan:
    """Read the live state into a plan and print it; when it cannot be read, one line and exit 1."""
    try:
        plan = make_plan()
    except Exception as exc:
        command.stderr.write(f"Error: {exc}")
        sys.exit(EXIT_ERROR)
    write_all(command.stdout.write, plan_lines(plan))
    return plan
