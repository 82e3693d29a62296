"""One evaluation of every alert rule, and the delivery of what it decided to send.

A state change and its notifications are committed together; delivery happens after, from the table. So a process that
dies after deciding but before sending sends on restart, and one restarted after sending does not decide again.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from controlplane.alerts import state as machine
from controlplane.alerts.models import Channel, Notification, Rule
from controlplane.alerts.rules import SPECS, Check, Measures, rules_ensure
from controlplane.alerts.transports import Message, sender

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
RETRY_WITHIN = timedelta(hours=1)  # an undelivered message older than this is stale news: marked failed


def _state(rule: Rule) -> machine.State:
    return machine.State(rule.firing, rule.pending_since, rule.firing_since, rule.last_notified_at)


def _link() -> str:
    base = settings.SIGHTLINE_BASE_URL
    return f"{base}{reverse('dashboard')}" if base else ""


def message_for(rule: Rule, event: str, check: Check, *, since: datetime) -> Message:
    spec = SPECS[rule.kind]
    word = {"firing": "FIRING", "reminder": "STILL FIRING", "resolved": "RESOLVED", "test": "TEST"}[event]
    project = settings.SIGHTLINE.project
    title = f"[{word}] {spec.title} ({project})"
    text = f"{title}: {check.detail}" + (f" {_link()}" if _link() else "")
    payload = {
        "rule": rule.kind,
        "event": event,
        "value": check.value,
        "detail": check.detail,
        "project": project,
        "firing_since": since.isoformat(),
        "at": timezone.now().isoformat(),
        "dashboard": _link(),
    }
    return Message(title, text, payload)


def _queue(rule: Rule | None, event: str, message: Message) -> list[Notification]:
    """One notification per enabled channel, or one record that nobody was told."""
    channels = list(Channel.objects.filter(enabled=True))
    common = {
        "rule": rule,
        "rule_kind": rule.kind if rule else "",
        "event": event,
        "title": message.title,
        "text": message.text,
        "payload": message.payload,
    }
    if not channels:
        return [Notification.objects.create(**common, status=Notification.Status.NO_CHANNEL)]
    return [Notification.objects.create(**common, channel=c, channel_label=str(c)) for c in channels]


def rule_evaluate(rule: Rule, check: Check, *, now: datetime) -> list[Notification]:
    """Advance one rule with a fresh check; returns the notifications it queued."""
    since = rule.firing_since  # a resolved message still says since when it fired
    reminder_s = rule.reminder_minutes * 60
    new, event = machine.step(_state(rule), active=check.active, now=now, for_s=rule.for_s, reminder_s=reminder_s)
    rule.firing, rule.pending_since, rule.firing_since = new.firing, new.pending_since, new.firing_since
    rule.last_notified_at = now if event == machine.RESOLVED else new.last_notified_at
    rule.evaluated_at, rule.value, rule.detail = now, check.value, check.detail[:500]
    with transaction.atomic():
        rule.save()
        queued = _queue(rule, event, message_for(rule, event, check, since=since or now)) if event else []
    if event:
        log.warning("alert %s %s: %s", rule.kind, event, check.detail)
    return queued


def _resolve_disabled() -> None:
    """A rule switched off while firing stops quietly: nobody asked to hear about it any more."""
    Rule.objects.filter(enabled=False, firing=True).update(firing=False, pending_since=None, firing_since=None)


def evaluate_once(*, now: datetime | None = None, measures: Measures | None = None) -> list[Notification]:
    """Evaluate every enabled rule once, then deliver. A rule whose reading fails keeps its state (unknown is not
    resolved), so an outage of BigQuery neither resolves nor fires the rules that read it."""
    now = now or datetime.now(UTC)
    measures = measures or Measures(now)
    queued: list[Notification] = []
    for rule in rules_ensure():
        if not rule.enabled:
            continue
        try:
            check = SPECS[rule.kind].check(measures, rule)
        except Exception as exc:
            log.warning("alert rule %s could not be evaluated: %s: %s", rule.kind, exc.__class__.__name__, exc)
            continue
        queued += rule_evaluate(rule, check, now=now)
    _resolve_disabled()
    deliver_pending()
    return queued


def deliver(notification: Notification) -> bool:
    if notification.channel is None:
        return False
    message = Message(notification.title, notification.text, notification.payload)
    notification.attempts += 1
    try:
        sender(notification.channel.kind)(notification.channel.target, message)
    except Exception as exc:
        notification.error = f"{exc.__class__.__name__}: {exc}"[:2000]
        if notification.attempts >= MAX_ATTEMPTS:
            notification.status = Notification.Status.FAILED
        log.warning("alert notification %s to %s failed: %s", notification.pk, notification.channel, exc)
    else:
        notification.status, notification.sent_at, notification.error = Notification.Status.SENT, timezone.now(), ""
    notification.save(update_fields=["attempts", "error", "status", "sent_at"])
    return notification.status == Notification.Status.SENT


def deliver_pending() -> int:
    """Send what is waiting, oldest first; returns how many went out."""
    stale = timezone.now() - RETRY_WITHIN
    Notification.objects.filter(status=Notification.Status.PENDING, created_at__lt=stale).update(
        status=Notification.Status.FAILED, error="not delivered within an hour"
    )
    pending = Notification.objects.filter(status=Notification.Status.PENDING).select_related("channel")
    return sum(deliver(n) for n in pending.order_by("created_at", "id"))


def notify_test(*, user: str) -> list[Notification]:
    """The "send test" button: one message to every enabled channel, now."""
    check = Check(True, None, f"a test message sent by {user} from the alert settings")
    title = f"[TEST] Sightline alerts ({settings.SIGHTLINE.project})"
    message = Message(title, f"{title}: {check.detail}", {"rule": "test", "event": "test", "detail": check.detail})
    with transaction.atomic():
        queued = _queue(None, Notification.Event.TEST, message)
    for n in queued:
        deliver(n)
    return queued
