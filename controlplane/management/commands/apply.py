"""Create or update the cloud resources: shows the plan, asks for 'yes' (unless --yes), then carries it out.

Each step is printed as it completes. Exit codes: 0 = done or nothing to do, 1 = error, refusal or aborted.
A failure midway stops there and prints what still differs: run apply again to finish.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from controlplane.infra import cli
from controlplane.infra.services import Actor, Refused, default_spec, stack_apply, stack_plan


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--yes", action="store_true", help="do not ask: apply the plan as shown")

    def handle(self, *args: Any, **options: Any) -> None:
        spec, actor = default_spec(), Actor.cli()
        plan = cli.show_plan(self, lambda: stack_plan(spec=spec))
        if not plan.has_changes:
            self.stdout.write("No changes: the resources match the desired state.")
            sys.exit(cli.EXIT_OK)
        if not options["yes"]:
            self.stdout.write("\nDo you want to perform these actions? Only 'yes' will be accepted.")
            if input("  Type 'yes': ").strip() != "yes":
                self.stderr.write("Apply cancelled: nothing was changed.")
                sys.exit(cli.EXIT_ERROR)
        try:
            result = stack_apply(
                spec=spec, checksum=plan.checksum, actor=actor, on_step=lambda s: self.stdout.write(cli.step_line(s))
            )
        except Refused as exc:
            self.stderr.write(f"Refused: {exc}")
            sys.exit(cli.EXIT_ERROR)
        if result.ok:
            self.stdout.write(f"Apply complete: {len(result.steps)} step(s) done.")
            sys.exit(cli.EXIT_OK)
        self.stderr.write(f"Apply failed: {result.audit.error if result.audit else ''}")
        if result.remaining is not None:
            self.stderr.write("What still differs from the desired state:")
            cli.write_all(self.stderr.write, cli.plan_lines(result.remaining))
        sys.exit(cli.EXIT_ERROR)
