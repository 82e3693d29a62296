"""Enqueue every object of the bucket that has neither a classification row nor a failure record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from controlplane.reconcile import reconcile_run


def _since(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--since {value!r} is not an ISO 8601 date or time (e.g. 2026-01-31T12:00:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "List the bucket page by page, find objects with neither a row nor a failure record (one BigQuery query per "
        "page) and enqueue them. With --since it is also the backfill of images uploaded before the pipeline existed."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--since", type=_since, help="only objects created at or after this ISO time (UTC default)")
        parser.add_argument("--prefix", help="only object names starting with this")
        parser.add_argument("--dry-run", action="store_true", help="report what is missing, enqueue nothing")
        parser.add_argument("--page-size", type=int, default=500, help="objects per listing page and per query")

    def handle(self, *args: Any, **options: Any) -> None:
        report = reconcile_run(
            cfg=settings.SIGHTLINE,
            since=options["since"],
            prefix=options["prefix"],
            dry_run=options["dry_run"],
            page_size=options["page_size"],
        )
        for key in report.missing_keys:
            self.stdout.write(f"missing: gs://{key}")
        if report.missing > len(report.missing_keys):
            self.stdout.write(f"... and {report.missing - len(report.missing_keys)} more")
        self.stdout.write(report.summary())
