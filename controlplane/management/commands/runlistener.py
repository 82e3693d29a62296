"""Pull the notifications subscription and enqueue one job per uploaded object."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from classifier.listener import Listener

log = logging.getLogger("classifier.listener")


class Command(BaseCommand):
    help = "Pull bucket notifications from Pub/Sub and enqueue classification jobs (stops cleanly on SIGTERM/SIGINT)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--max-messages", type=int, default=100, help="messages taken per pull")

    def handle(self, *args: Any, **options: Any) -> None:
        cfg = settings.SIGHTLINE
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("received %s: draining and stopping", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        log.info("listening on %s (queue %s at %s)", cfg.subscription_path, cfg.queue_name, cfg.redis_url)
        Listener(cfg).serve(stop, max_messages=options["max_messages"])
