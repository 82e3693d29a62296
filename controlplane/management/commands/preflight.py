"""Check, before anything is applied, that every identity may do what it will do, that every API is enabled and
that the settings agree; one table, and for each missing item the command that fixes it.

Exit codes as `plan`: 0 = all there (or the local stack), 2 = something is missing, 1 = the check itself failed.
"""

from __future__ import annotations

import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from controlplane.infra import cli
from controlplane.infra.preflight import IDENTITIES, Report, preflight_run


def report_lines(report: Report) -> list[str]:
    width = max((len(c.subject) for c in report.checks), default=0)
    lines = [f"  {c.status.upper():<7} {c.subject:<{width}}  {c.detail}" for c in report.checks]
    if report.local:
        lines += ["", "The local stack provides:", *(f"  {line}" for line in report.provided)]
    if report.missing:
        lines += ["", f"{len(report.missing)} missing. To fix:", *(f"  {c.fix}" for c in report.missing if c.fix)]
    else:
        lines += ["", "Preflight: everything Sightline needs is there."]
    return lines


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--identity",
            action="append",
            choices=[i.replace(" ", "-") for i in IDENTITIES],
            help="check only this identity's needs (repeatable); default: all of them",
        )
        parser.add_argument("--member", help="the IAM member the fix commands name (default: these credentials')")

    def handle(self, *args: Any, **options: Any) -> None:
        chosen = tuple(i.replace("-", " ") for i in options["identity"] or ()) or IDENTITIES
        try:
            report = preflight_run(settings.SIGHTLINE, identities=chosen, member=options["member"])
        except Exception as exc:
            self.stderr.write(f"Error: preflight could not read the project: {exc.__class__.__name__}: {exc}")
            sys.exit(cli.EXIT_ERROR)
        cli.write_all(self.stdout.write, report_lines(report))
        sys.exit(cli.EXIT_CHANGES if report.missing else cli.EXIT_OK)
