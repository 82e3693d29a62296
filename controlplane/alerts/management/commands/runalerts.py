"""Evaluate the alert rules every ALERTS_EVERY_S seconds and send what they decide (stops cleanly on SIGTERM/SIGINT).

One runs at a time: it holds a Redis lock (redis-py's Lock, renewed every round) and a second one exits saying so,
so two evaluators never both send a message. Its state is in the database, so a restart neither repeats nor
forgets a message."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from classifier import ledger
from classifier.logsafe import redacted_url
from controlplane.alerts.evaluate import evaluate_once
from controlplane.alerts.services import objective_fill_step

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
        lock = _only_one(every)
        log.info("evaluating alert rules every %.0f s", every)
        while not stop.is_set():
            started = time.monotonic()
            try:
                _renew(lock)
                evaluate_once()
            except Exception:  # the database away for a moment: try again next round, never die
                log.exception("alert evaluation failed")
            finally:
                close_old_connections()
            try:  # a Redis that lost the objective's counters gets them back, a day of them per round
                objective_fill_step()
            except Exception:
                log.exception("the objective's counters could not be refilled from the tables")
            if options["once"]:
                break
            stop.wait(max(0.0, every - (time.monotonic() - started)))
        _release(lock)


def _only_one(every: float) -> Lock:
    """The evaluator's lock, held for a few rounds at a time; a crashed holder's lock expires on its own."""
    cfg = settings.SIGHTLINE
    key = f"sightline:alerts:evaluator:{cfg.project}:{cfg.bucket}"
    lock = ledger.connection(cfg).lock(key, timeout=max(30.0, 3 * every), blocking=False)
    try:
        if not lock.acquire():
            raise CommandError(f"another runalerts is already evaluating (it holds the Redis lock {key}): not starting")
    except RedisError as exc:
        raise CommandError(f"runalerts cannot reach Redis ({redacted_url(cfg.redis_url)}): {exc}") from exc
    return lock


def _renew(lock: Lock) -> None:
    """Another lease from now; a lock lost (Redis restarted, a pause past the TTL) is taken again if it is free."""
    try:
        lock.reacquire()
    except LockError:
        if not lock.acquire():
            raise CommandError("another runalerts took over the evaluation lock: stopping") from None


def _release(lock: Lock) -> None:
    with contextlib.suppress(LockError, RedisError):  # expired or Redis away: it frees itself
        lock.release()
