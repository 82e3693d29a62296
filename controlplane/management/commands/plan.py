"""Show what `manage.py apply` would create, change or delete, and why. Changes nothing.

Exit codes: 0 = nothing to do, 2 = changes pending, 1 = error (live state could not be read).
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from controlplane.infra import cli
from controlplane.infra.services import default_spec, stack_destroy_plan, stack_plan


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--destroy", action="store_true", help="show what `manage.py destroy` would delete")

    def handle(self, *args: Any, **options: Any) -> None:
        spec = default_spec()
        make = stack_destroy_plan if options["destroy"] else stack_plan
        plan = cli.show_plan(self, lambda: make(spec=spec))
        sys.exit(cli.EXIT_CHANGES if plan.has_changes else cli.EXIT_OK)
