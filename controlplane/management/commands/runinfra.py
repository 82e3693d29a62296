"""Run the infrastructure queue's jobs (a destroy started from the dashboard), one at a time, until stopped.

rq's SimpleWorker is the loop (it handles SIGTERM/SIGINT: a warm shutdown finishes the running job); the unit of
work is controlplane.infra.jobs.destroy_run, which the tests call through a burst worker.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from controlplane.infra import jobs


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--burst", action="store_true", help="run what is queued, then exit")

    def handle(self, *args: Any, **options: Any) -> None:
        jobs.worker(settings.SIGHTLINE).work(burst=options["burst"], with_scheduler=False)
