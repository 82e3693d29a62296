"""Writes of the alert settings: rule edits and channels. The page and the API both call these."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from classifier import ledger, stats
from controlplane import selectors
from controlplane.alerts import objective
from controlplane.alerts.models import Channel, Rule
from controlplane.alerts.transports.email import recipients

log = logging.getLogger(__name__)

EDITABLE = ("enabled", "threshold", "for_s", "reminder_minutes")


def rule_update(*, rule: Rule, changes: dict[str, Any], user: str) -> Rule:
    """Only the settings change; the evaluation state is the evaluator's."""
    for field in EDITABLE:
        if field in changes:
            setattr(rule, field, changes[field])
    rule.full_clean()
    rule.save(update_fields=list(EDITABLE))
    log.info("alert rule %s set to %s by %s", rule.kind, {f: getattr(rule, f) for f in EDITABLE}, user)
    return rule


def channel_check(*, kind: str, target: str) -> str:
    """The target, cleaned; ValidationError says what is wrong with it."""
    target = target.strip()
    if kind not in Channel.Kind.values:
        raise ValidationError(f"unknown channel kind {kind!r}")
    if kind == Channel.Kind.EMAIL:
        addresses = recipients(target)
        if not addresses:
            raise ValidationError("give at least one e-mail address")
        for address in addresses:
            validate_email(address)
        return ", ".join(addresses)
    URLValidator(schemes=["http", "https"])(target)
    return target


def channel_create(*, kind: str, target: str, user: str) -> Channel:
    channel = Channel.objects.create(kind=kind, target=channel_check(kind=kind, target=target))
    log.info("alert channel %s added by %s", channel, user)
    return channel


def channel_delete(*, channel: Channel, user: str) -> None:
    log.info("alert channel %s removed by %s", channel, user)
    channel.delete()


# Hours refilled per step: one query over one day's partitions (at 3.3M rows a day, ~120 MB: under the cap).
FILL_STEP = timedelta(days=1)


def objective_fill_step(*, now: datetime | None = None) -> datetime | None:
    """Refill one day of the objective's per-hour counters from the tables, newest missing day first, when the
    counters do not reach back over the objective's window (a Redis that lost its data, a fresh install); the
    evaluator (runalerts) calls this every round until they do. Returns the start of the day filled, or None when
    nothing was missing (or nothing was ever recorded: the counters begin with the first row written).

    The hour in which the live counters began is refilled whole from the table: the workers' increments in it
    count only the rows recorded after that moment, and later ones add on top of what the table held."""
    now = now or datetime.now(UTC)
    redis = ledger.connection(settings.SIGHTLINE)
    live = stats.counted_since(redis)
    if live is None:
        return None
    # No further back than the hours are kept: a refilled hour would expire with the hours recorded beside it.
    hours = min(objective.window_s() // 3600, stats.HOUR_KEEP_DAYS * 24)
    oldest = stats.hour_of(now) - timedelta(hours=hours - 1)
    filled = stats.hours_filled_since(redis)
    whole_from = min(live, filled) if filled is not None else live
    if whole_from <= oldest:
        return None
    end = stats.hour_of(whole_from) + (timedelta(hours=1) if filled is None else timedelta(0))
    start = max(oldest, end - FILL_STEP)
    found = selectors.objective_hours_from_tables(start=start, end=end)
    stats.hours_fill(
        redis,
        {
            start + timedelta(hours=i): found.get(start + timedelta(hours=i), {})
            for i in range(int((end - start).total_seconds() // 3600))
        },
        since=start,
    )
    log.info("objective counters refilled from the tables for %s to %s", start, end)
    return start
