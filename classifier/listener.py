"""Turns bucket notifications into classification jobs. Pipeline code, no Django: `manage.py runlistener` is a thin
loop around `Listener.handle_messages`."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis import Redis
from redis.exceptions import RedisError

from classifier import ledger, outcomes
from classifier.cloud import pubsub
from classifier.config import Config
from classifier.queue import bound, depth, enqueue_classification, queue

log = logging.getLogger(__name__)

# How often the listener reports and looks at the state the dashboard asks for: "Stop listener" takes effect within it.
TICK_S = 1.0
RESTART_BACKOFF_S = (1, 2, 5, 10, 30)
MIN_POLL_S = 0.1
HELD_BACK_POLL_S = 0.2

HEARTBEAT_KEY = "sightline:listener:heartbeat"
HEARTBEAT_TTL_S = 30
# What the operator asked for from the dashboard; the running listener obeys it. No TTL: it survives restarts.
DESIRED_KEY = "sightline:listener:desired"
DESIRED_STATES = ("running", "paused")


def desired_get(redis: Redis) -> str:
    value = redis.get(DESIRED_KEY)
    state = ledger.text(value) if value is not None else None
    return state if state in DESIRED_STATES else "running"


def desired_set(redis: Redis, state: str) -> None:
    if state not in DESIRED_STATES:
        raise ValueError(f"desired listener state must be one of {DESIRED_STATES}, not {state!r}")
    redis.set(DESIRED_KEY, state)


# What handle_message reports for a message that is done with: acked. "unacked" waits for redelivery; "nacked" was
# handed back at once.
ACKED = frozenset({"enqueued", "duplicate", "ignored", "dead_letter"})


class BadMessage(Exception):
    """A notification that cannot be understood; it goes to the dead-letter topic with this reason."""


@dataclass(frozen=True)
class ObjectEvent:
    """A finalized object generation, as a Cloud Storage notification reports it."""

    bucket: str
    name: str
    generation: int
    event_time: str | None


def event_age_s(event: ObjectEvent, now: float) -> float | None:
    """Seconds since the upload the notification reports; None when it says no time we can read."""
    try:
        at = datetime.fromisoformat(event.event_time) if event.event_time else None
    except ValueError:
        return None
    if at is None:
        return None
    return now - (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def parse(attributes: dict[str, str]) -> ObjectEvent | None:
    """None for events other than OBJECT_FINALIZE (deletes, metadata updates): nothing to classify."""
    event = attributes.get("eventType")
    if event is None:
        raise BadMessage("no eventType attribute: not a Cloud Storage notification")
    if event != "OBJECT_FINALIZE":
        return None
    if attributes.get("payloadFormat", "JSON_API_V1") not in ("JSON_API_V1", "NONE"):
        raise BadMessage(f"unsupported payloadFormat {attributes['payloadFormat']!r}")
    try:
        bucket, name, generation = attributes["bucketId"], attributes["objectId"], int(attributes["objectGeneration"])
    except KeyError as exc:
        raise BadMessage(f"missing attribute {exc.args[0]}") from None
    except ValueError:
        raise BadMessage(f"objectGeneration {attributes['objectGeneration']!r} is not an integer") from None
    if not bucket or not name:
        raise BadMessage("empty bucketId or objectId")
    return ObjectEvent(bucket, name, generation, attributes.get("eventTime"))


@dataclass
class Listener:
    cfg: Config
    received: int = 0
    enqueued: int = 0
    started_at: float = 0.0
    # Backpressure, as last seen by `room`: the queue's bound and whether pulling is held back by it.
    queue_bound: int = 0
    held_back: bool = False
    _done_elsewhere: set[str] = field(default_factory=set)
    _undecided: set[str] = field(default_factory=set)  # BigQuery did not answer for these: left for redelivery

    def __post_init__(self) -> None:
        self.started_at = time.time()
        self._lock = threading.Lock()
        self._reconnecting = False  # the pull thread says so; the heartbeat reports it

    def handle_messages(self, messages: list[pubsub.Pulled]) -> list[str]:
        """Handle a pull's messages, then ack the handled ones in one request: a round trip (and the emulator's CPU)
        per pull instead of per message. Each is acked only after its own job was enqueued; if the ack itself
        fails, Pub/Sub redelivers them and the deterministic job ids make the repeats no-ops."""
        results: list[str] = []
        try:
            self._done_elsewhere = self._done_in_bigquery(messages)
            for message in messages:
                results.append(self.handle_message(message))
        finally:  # what was handled before an unexpected error is acked all the same (hence strict=False)
            handled = [m for m, outcome in zip(messages, results, strict=False) if outcome in ACKED]
            if handled:
                try:
                    pubsub.acknowledge(self.cfg, handled)
                except Exception:
                    log.exception("could not ack %d handled messages; they will be redelivered", len(handled))
        return results

    def _done_in_bigquery(self, messages: list[pubsub.Pulled]) -> set[str]:
        """Keys of notifications older than the ledger's window (or with no readable time) that BigQuery says are
        done: the ledger may have forgotten their outcome, so one set-based query per pull asks the source of truth.
        What it finds goes back into the ledger, so a further repeat is answered there."""
        now, stale, ages = time.time(), [], []
        for message in messages:
            try:
                event = parse(dict(message.attributes))
            except BadMessage:
                continue
            age = event_age_s(event, now) if event is not None else 0.0
            if event is not None and (age is None or age > ledger.WINDOW_S):
                stale.append(ledger.object_key(event.bucket, event.name, event.generation))
                ages.append(age)
        # Their rows and failures were written after their uploads: only the partitions since the oldest are read.
        known = [a for a in ages if a is not None]
        since = datetime.fromtimestamp(now - max(known), UTC) if known and len(known) == len(ages) else None
        self._undecided = set()
        redis = ledger.connection(self.cfg)
        try:
            unknown = [k for k, outcome in ledger.outcome_get_many(redis, stale).items() if outcome is None]
            found = outcomes.find(self.cfg, unknown, since=since) if unknown else {}
            ledger.outcome_set_many(redis, {k: v[0] for k, v in found.items()})
        except Exception:
            # Enqueued unchecked they might double a row: left unacked, they come back after the ack deadline.
            log.exception("could not check %d old notifications against BigQuery; left for redelivery", len(stale))
            self._undecided = set(stale)
            return set()
        return set(found)

    def room(self) -> int:
        """How many more jobs the queue takes before its bound; the listener pulls no more than that, and nothing
        while it is full, so a backlog stays in Pub/Sub (unleased, kept 7 days) instead of in Redis."""
        q = queue(self.cfg)
        self.queue_bound = bound(self.cfg, q)
        free = self.queue_bound - depth(q)
        self.held_back = free <= 0
        return max(0, free)

    def handle_message(self, message: pubsub.Pulled) -> str:
        """Enqueue; the outcomes in ACKED are then acked by `handle_messages`. A failure to enqueue leaves the message
        unacked, so Pub/Sub redelivers it: nothing is dropped."""
        with self._lock:
            self.received += 1
        attributes = dict(message.attributes)
        try:
            event = parse(attributes)
        except BadMessage as exc:
            return self._dead_letter(message, str(exc))
        if event is None:
            log.info("ignored %s event for %s", attributes.get("eventType"), attributes.get("objectId"))
            return "ignored"
        key = ledger.object_key(event.bucket, event.name, event.generation)
        if key in self._undecided:
            return "unacked"
        if key in self._done_elsewhere:
            log.info("duplicate notification for %s (BigQuery already holds its outcome)", key)
            return "duplicate"
        try:
            job_id, created = enqueue_classification(
                self.cfg,
                bucket=event.bucket,
                name=event.name,
                generation=event.generation,
                event_time=event.event_time,
            )
        except Exception:
            # Not nacked: redelivered at once it would fail the same way and burn Pub/Sub's 5 delivery attempts (then
            # the dead-letter topic) within a second of a Redis restart. Unacked, it comes back after the ack deadline.
            log.exception("could not enqueue gs://%s/%s; left for redelivery", event.bucket, event.name)
            return "unacked"
        if created:
            with self._lock:
                self.enqueued += 1
            log.info("enqueued %s as %s", key, job_id)
            return "enqueued"
        log.info("duplicate notification for %s (job %s already exists or is done)", key, job_id)
        return "duplicate"

    def _dead_letter(self, message: pubsub.Pulled, reason: str) -> str:
        try:
            pubsub.publish(
                self.cfg, self.cfg.dead_letter_topic, message.data, **dict(message.attributes), sightline_error=reason
            )
        except Exception:
            log.exception("could not dead-letter message %s; nacked", message.message_id)
            message.nack()
            return "nacked"
        log.warning("dead-lettered message %s: %s", message.message_id, reason)
        return "dead_letter"

    def heartbeat(self, state: str) -> None:
        payload = {
            "state": state,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "at": time.time(),
            "started_at": self.started_at,
            "received": self.received,
            "enqueued": self.enqueued,
            "queue_bound": self.queue_bound,
            "held_back": self.held_back,
        }
        # A clean exit leaves its last word without a TTL, so the dashboard can tell "stopped" from "died".
        ttl = None if state == "stopped" else HEARTBEAT_TTL_S
        ledger.connection(self.cfg).set(HEARTBEAT_KEY, json.dumps(payload), ex=ttl)

    def desired(self) -> str:
        return desired_get(ledger.connection(self.cfg))

    def serve(self, stop: threading.Event, *, max_messages: int = 100, pull_wait_s: float = pubsub.PULL_HOLD_S) -> None:
        """Until `stop`: pull on a thread of its own (long pulls the server holds), while this loop reports the
        heartbeat and obeys pause/resume every TICK_S, however long a pull is held."""
        hold = threading.Event()  # set while paused, or while Redis is down (nothing could be enqueued)
        puller = threading.Thread(
            target=self._pull_loop, args=(stop, hold, max_messages, pull_wait_s), name="pull", daemon=True
        )
        self._reconnecting = False
        puller.start()
        while not stop.is_set():
            try:
                paused = self.desired() == "paused"
                hold.set() if paused else hold.clear()
                self.heartbeat("paused" if paused else "reconnecting" if self._reconnecting else "running")
            except RedisError as exc:  # Redis restarting: pull nothing (it could not be enqueued), wait, retry
                hold.set()
                log.error("redis unavailable: %r; retrying in %ss", exc, TICK_S)
            stop.wait(TICK_S)
        # A pull that returns soon is drained (its messages handled). One still held is not waited for: the process
        # exits, gRPC cancels the call, and the server leases nothing to a cancelled pull (unlike one that timed out).
        puller.join(timeout=3 * TICK_S)
        self.heartbeat("stopped")
        log.info("stopped after %d messages (%d jobs enqueued)", self.received, self.enqueued)

    def _pull_loop(self, stop: threading.Event, hold: threading.Event, max_messages: int, wait_s: float) -> None:
        failures = 0
        while not stop.is_set():
            if hold.is_set():
                stop.wait(TICK_S)
                continue
            try:
                room = min(max_messages, self.room())
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
                messages = pubsub.pull(self.cfg, max_messages=room, wait_s=wait_s)
            except Exception as exc:  # a fault of Pub/Sub or the network: report, back off, retry
                delay = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)]
                failures += 1
                self._reconnecting = True
                reason = "subscription not found (run apply)" if pubsub.is_not_found(exc) else f"{exc!r}"
                log.error("pull failed: %s; retrying in %ss", reason, delay)
                stop.wait(delay)
                continue
            failures, self._reconnecting = 0, False
            if messages and hold.is_set() and not stop.is_set():
                # Paused while this pull was held: hand them back at once rather than take them after "Stop".
                pubsub.hand_back(self.cfg, messages)
                continue
            # Leased to us: handle them all, even when a stop was asked meanwhile (drain).
            self.handle_messages(messages)
            if len(messages) < room:
                # At most every MIN_POLL_S unless the last pull came back full: a server that answers "nothing" at
                # once must not make this a busy loop, and during a burst each pull takes what arrived meanwhile.
                stop.wait(max(0.0, started + MIN_POLL_S - time.monotonic()))
