"""Pull the notifications subscription and enqueue one job per uploaded object."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from redis.exceptions import RedisError

from classifier.cloud import pubsub
from classifier.listener import Listener

log = logging.getLogger("classifier.listener")

# How often the listener reports and looks at the state the dashboard asks for.
TICK_S = 1.0
RESTART_BACKOFF_S = (1, 2, 5, 10, 30)
MIN_POLL_S = 0.1
HELD_BACK_POLL_S = 0.2


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
        listener = Listener(cfg)
        log.info("listening on %s (queue %s at %s)", cfg.subscription_path, cfg.queue_name, cfg.redis_url)
        failures = 0
        while not stop.is_set():
            try:
                paused = listener.desired() == "paused"
                listener.heartbeat("paused" if paused else "running")
            except RedisError as exc:  # Redis restarting: pull nothing (it could not be enqueued), wait, retry
                log.error("redis unavailable: %r; retrying in %ss", exc, TICK_S)
                stop.wait(TICK_S)
                continue
            if paused:
                # Paused from the dashboard: pull nothing (Pub/Sub keeps the messages) and keep reporting.
                stop.wait(TICK_S)
                continue
            try:
                room = min(options["max_messages"], listener.room())
            except RedisError as exc:
                log.error("redis unavailable: %r; retrying in %ss", exc, TICK_S)
                stop.wait(TICK_S)
                continue
            if not room:
                # Backpressure: the queue is at its bound. Pull nothing (no lease taken: the backlog waits in
                # Pub/Sub) and look again soon, so the workers never run dry.
                stop.wait(HELD_BACK_POLL_S)
                continue
            started = time.monotonic()
            try:
                messages = pubsub.pull(cfg, max_messages=room, wait_s=TICK_S)
            except Exception as exc:  # a fault of Pub/Sub or the network: report, back off, retry
                delay = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
                failures += 1
                reason = "subscription not found (run apply)" if pubsub.is_not_found(exc) else f"{exc!r}"
                log.error("pull failed: %s; retrying in %ss", reason, delay)
                listener.heartbeat("reconnecting")
                stop.wait(delay)
                continue
            failures = 0
            # Messages pulled are leased to us: handle them all, even when a stop was asked meanwhile (drain).
            listener.handle_messages(messages)
            if len(messages) < room:
                # Pull at most every MIN_POLL_S unless the last pull came back full: a server that answers "nothing"
                # at once must not make this a busy loop, and during a burst each pull then takes what arrived
                # meanwhile, in one round trip and one ack, instead of a message or two per round trip.
                stop.wait(max(0.0, started + MIN_POLL_S - time.monotonic()))
        listener.heartbeat("stopped")
        log.info("stopped after %d messages (%d jobs enqueued)", listener.received, listener.enqueued)
