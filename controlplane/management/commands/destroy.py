"""Delete every cloud resource of the pipeline, in reverse dependency order.

Shows the deletions, then asks for the bucket name to be typed (unless --yes). A non-empty bucket or a table with
rows needs --delete-data; DESTROY_PROTECTION=1 refuses outright. Exit codes: 0 = done or nothing to delete,
1 = error, refusal or aborted.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from controlplane.infra import cli
from controlplane.infra.services import Actor, Refused, default_spec, destroy_check, stack_destroy, stack_destroy_plan


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--yes", action="store_true", help="do not ask for the bucket name")
        parser.add_argument("--delete-data", action="store_true", help="also delete the objects and rows they hold")

    def handle(self, *args: Any, **options: Any) -> None:
        spec, actor = default_spec(), Actor.cli()
        bucket = spec.cfg.bucket
        plan = cli.show_plan(self, lambda: stack_destroy_plan(spec=spec))
        if not plan.has_changes:
            self.stdout.write("Nothing to destroy.")
            sys.exit(cli.EXIT_OK)
        try:  # refuse before asking when protection or data forbid it anyway
            destroy_check(spec=spec, plan=plan, confirmation=bucket, delete_data=options["delete_data"])
        except Refused as exc:
            self.stderr.write(f"Refused: {exc}")
            sys.exit(cli.EXIT_ERROR)
        confirmation = bucket
        if not options["yes"]:
            self.stdout.write(f"\nThis deletes everything listed above. Type the bucket name ({bucket}) to confirm.")
            confirmation = input("  Bucket name: ")
        try:
            result = stack_destroy(
                spec=spec,
                checksum=plan.checksum,
                confirmation=confirmation,
                delete_data=options["delete_data"],
                actor=actor,
                on_step=lambda s: self.stdout.write(cli.step_line(s)),
            )
        except Refused as exc:
            self.stderr.write(f"Refused: {exc}")
            sys.exit(cli.EXIT_ERROR)
        if result.ok:
            self.stdout.write(f"Destroy complete: {len(result.steps)} resource(s) deleted.")
            sys.exit(cli.EXIT_OK)
        self.stderr.write(f"Destroy failed: {result.audit.error if result.audit else ''}")
        sys.exit(cli.EXIT_ERROR)
