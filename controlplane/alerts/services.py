"""Writes of the alert settings: rule edits and channels. The page and the API both call these."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

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
