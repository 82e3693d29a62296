"""Streaming-pull the notifications subscription and enqueue one job per uploaded object."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from classifier.cloud import pubsub
from controlplane.listener import Listener

log = logging.getLogger("controlplane.listener")

# How often the listener reports and looks at the state the dashboard asks for.
TICK_S = 1.0
RESTART_BACKOFF_S = (1, 2, 5, 10, 30)


class Command(BaseCommand):
    help = "Pull bucket notifications from Pub/Sub and enqueue classification jobs (stops cleanly on SIGTERM/SIGINT)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--max-messages", type=int, default=64, help="messages held unacked at once (flow control)")

    def handle(self, *args: Any, **options: Any) -> None:
        cfg = settings.SIGHTLINE
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("received %s: draining and stopping", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        listener = Listener(cfg)
        log.info("listening on %s (queue %s at %s)", cfg.subscription_path, cfg.queue_name, cfg.redis_url)
        failures = 0
        while not stop.is_set():
            if listener.desired() == "paused":
                # Paused from the dashboard: hold no stream (Pub/Sub keeps the messages) and keep reporting.
                listener.heartbeat("paused")
                stop.wait(TICK_S)
                continue
            future = pubsub.stream(cfg, listener.handle_message, max_messages=options["max_messages"])
            log.info("streaming pull started")
            pausing = False
            while not stop.is_set() and not future.done():
                listener.heartbeat("running")
                stop.wait(TICK_S)
                if future.running():
                    failures = 0
                if listener.desired() == "paused":
                    log.info("paused from the dashboard: draining and holding the stream closed")
                    pausing = True
                    break
            future.cancel()  # stops pulling; callbacks already running finish first
            try:
                future.result(timeout=30)
            except Exception as exc:  # the stream ended: cancelled by us, or a fault to report and retry
                if not stop.is_set() and not pausing:
                    delay = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
                    failures += 1
                    reason = "subscription not found (run apply)" if pubsub.is_not_found(exc) else f"{exc!r}"
                    log.error("streaming pull stopped: %s; restarting in %ss", reason, delay)
                    listener.heartbeat("reconnecting")
                    stop.wait(delay)
        listener.heartbeat("stopped")
        log.info("stopped after %d messages (%d jobs enqueued)", listener.received, listener.enqueued)
