"""What each alert rule watches, its defaults, and how it reads the pipeline's state.

Every reading goes through `controlplane.selectors` (or the objective), once per evaluation, whatever the number of
rules that use it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from controlplane import selectors
from controlplane.alerts import objective
from controlplane.alerts.models import Rule
from controlplane.deadletters import dead_letter_list

# An idle rq worker beats at every dequeue timeout (classifier.worker.WORKER_TTL_S - 15 s); three missed beats = gone.
IDLE_WORKER_STALE_S = 30
FAILURE_RATE_MINUTES = 15
FAILURE_RATE_MIN_UPLOADS = 5  # below this a single bad upload would read as a high rate


@dataclass(frozen=True)
class Check:
    active: bool
    value: float | None
    detail: str


class Measures:
    """The pipeline's state, read lazily and at most once per evaluation."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime.now(UTC)

    @functools.cached_property
    def listener(self) -> dict[str, Any]:
        return selectors.listener_status()

    @functools.cached_property
    def queue_depth(self) -> int:
        return int(selectors.queue_status()["depth"])

    @functools.cached_property
    def pubsub_undelivered(self) -> int | None:
        return selectors.pubsub_backlog()["undelivered"]

    @functools.cached_property
    def oldest_job_s(self) -> float | None:
        return selectors.queue_oldest_age_s(now=self.now)

    @functools.cached_property
    def workers_live(self) -> int:
        busy_stale = settings.SIGHTLINE.job_timeout_s + 60
        return selectors.workers_live(idle_stale_s=IDLE_WORKER_STALE_S, busy_stale_s=busy_stale, now=self.now)

    @functools.cached_property
    def throughput(self) -> dict[str, Any]:
        return selectors.throughput(minutes=FAILURE_RATE_MINUTES, now=self.now)

    @functools.cached_property
    def dead_letters(self) -> list[dict[str, Any]]:
        return dead_letter_list(settings.SIGHTLINE, limit=100)

    @functools.cached_property
    def objective(self) -> dict[str, Any]:
        return objective.objective_status()


def _listener(m: Measures, rule: Rule) -> Check:
    state = m.listener["state"]
    return Check(state != "running" and state != "reconnecting", None, f"the listener is {state}")


def _queue_stale(m: Measures, rule: Rule) -> Check:
    age = m.oldest_job_s
    limit = (rule.threshold or 5) * 60
    detail = "the queue is empty" if age is None else f"the oldest queued job has waited {age:.0f} s"
    return Check(age is not None and age > limit, age, detail)


def _backlog(m: Measures, rule: Rule) -> Check:
    """Not draining: messages waiting, above the threshold, and no fewer than at the last evaluation. Pub/Sub's own
    backlog where Cloud Monitoring has it (GCP); the RQ queue's depth where it does not (the emulator)."""
    undelivered = m.pubsub_undelivered
    depth = undelivered if undelivered is not None else m.queue_depth
    where = "in Pub/Sub" if undelivered is not None else "in the queue"
    before = rule.memo.get("depth")
    rule.memo["depth"] = depth
    growing = before is not None and depth > max(rule.threshold or 0, 0) and depth >= before
    return Check(growing, float(depth), f"{depth} messages waiting {where} (was {before})")


def _no_workers(m: Measures, rule: Rule) -> Check:
    live = m.workers_live
    return Check(live == 0, float(live), f"{live} live worker{'s' if live != 1 else ''}")


def _failure_rate(m: Measures, rule: Rule) -> Check:
    tp = m.throughput
    total = tp["rows"] + tp["failed"]
    rate = 100 * tp["failed"] / total if total else 0.0
    active = total >= FAILURE_RATE_MIN_UPLOADS and rate > (rule.threshold or 10)
    return Check(active, rate, f"{tp['failed']} of {total} uploads failed in the last {FAILURE_RATE_MINUTES} minutes")


def _latency(m: Measures, rule: Rule) -> Check:
    p95 = m.throughput["p95"]
    limit = rule.threshold or settings.SLO_LATENCY_S
    detail = "no rows" if p95 is None else f"upload-to-row p95 is {p95:.1f} s (limit {limit:g} s)"
    return Check(p95 is not None and p95 > limit, p95, detail)


def _dead_letters(m: Measures, rule: Rule) -> Check:
    since = m.now - timedelta(minutes=rule.threshold or 15)
    recent = [d for d in m.dead_letters if d["published_at"] and d["published_at"] >= since]
    return Check(
        bool(recent), float(len(recent)), f"{len(recent)} dead letters in the last {rule.threshold or 15:g} min"
    )


def _burn(kind: str) -> Callable[[Measures, Rule], Check]:
    def check(m: Measures, rule: Rule) -> Check:
        burn = m.objective["burn"][kind]
        factor = rule.threshold or burn["factor"]
        long, short = burn["long"], burn["short"]
        active = long is not None and short is not None and long > factor and short > factor
        detail = (
            f"error budget burning at {long or 0:.1f}x over {burn['long_s'] // 60} min and {short or 0:.1f}x over "
            f"{burn['short_s'] // 60} min (alert above {factor:g}x)"
        )
        if not burn.get("complete", True):  # the live counters began inside the long window (a Redis that lost them)
            detail += "; counted only since the live counters began"
        return Check(active, long, detail)

    return check


@dataclass(frozen=True)
class RuleSpec:
    kind: str
    title: str
    threshold_label: str
    threshold: float | None
    for_s: int
    reminder_minutes: int
    check: Callable[[Measures, Rule], Check]


SPECS = {
    s.kind: s
    for s in (
        RuleSpec("listener_down", "Listener dead or paused", "", None, 30, 60, _listener),
        RuleSpec("queue_stale", "Oldest queued job too old", "minutes", 5, 0, 60, _queue_stale),
        RuleSpec("backlog_growing", "Backlog growing", "messages waiting at least", 0, 300, 60, _backlog),
        RuleSpec("no_workers", "No live worker", "", None, 30, 60, _no_workers),
        RuleSpec("failure_rate", "Failure rate over 15 minutes", "percent", 10, 0, 60, _failure_rate),
        RuleSpec(
            "latency_p95",
            "Upload-to-row p95 above the objective",
            "seconds (empty = SLO_LATENCY_S)",
            None,
            300,
            60,
            _latency,
        ),
        RuleSpec("dead_letters", "Dead letters arriving", "within the last minutes", 15, 0, 60, _dead_letters),
        RuleSpec(
            "burn_fast",
            "Error budget burning fast (1 h and 5 min)",
            "burn rate (empty = 14.4)",
            None,
            0,
            30,
            _burn("burn_fast"),
        ),
        RuleSpec(
            "burn_slow",
            "Error budget burning (6 h and 30 min)",
            "burn rate (empty = 6)",
            None,
            0,
            120,
            _burn("burn_slow"),
        ),
    )
}


def rules_ensure() -> list[Rule]:
    """Every known rule exists, with its defaults the first time; an operator's edits are kept."""
    for spec in SPECS.values():
        Rule.objects.get_or_create(
            kind=spec.kind,
            defaults={"threshold": spec.threshold, "for_s": spec.for_s, "reminder_minutes": spec.reminder_minutes},
        )
    return list(Rule.objects.filter(kind__in=SPECS))
