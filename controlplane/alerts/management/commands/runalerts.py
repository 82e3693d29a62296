"""Evaluate the alert rules every ALERTS_EVERY_S seconds and send what they decide (stops cleanly on SIGTERM/SIGINT).

Run one, like the listener. Its state is in the database, so a restart neither repeats nor forgets a message."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from controlplane.alerts.evaluate import evaluate_once

log = logging.getLogger("controlplane.alerts")


class Command(BaseCommand):
    help = "Evaluate the alert rules on a loop and notify the channels set on the alert settings page."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="evaluate once and exit")
        parser.add_argument("--every", type=float, default=None, help="seconds between evaluations (ALERTS_EVERY_S)")

    def handle(self, *args: Any, **options: Any) -> None:
        every = options["every"] or settings.ALERTS_EVERY_S
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("received %s: stopping", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        log.info("evaluating alert rules every %.0f s", every)
        while not stop.is_set():
            started = time.monotonic()
            try:
                evaluate_once()
            except Exception:  # the database away for a moment: try again next round, never die
                log.exception("alert evaluation failed")
            finally:
                close_old_connections()
            if options["once"]:
                break
            stop.wait(max(0.0, every - (time.monotonic() - started)))
