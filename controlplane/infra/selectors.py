"""Reads of the control plane's own records."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.paginator import Page, Paginator

from controlplane.models import AuditLog


@dataclass(frozen=True)
class AuditFilter:
    action: str = ""
    outcome: str = ""
    actor: str = ""  # a part of the actor's name, any case

    @property
    def active(self) -> bool:
        return bool(self.action or self.outcome or self.actor)


def audit_page(*, filters: AuditFilter, page: int | str, per_page: int = 50) -> Page[AuditLog]:
    """One page of the audit log, newest first; a page past the end, or not a number, is the last or the first."""
    entries = AuditLog.objects.select_related("user")
    if filters.action in AuditLog.Action.values:
        entries = entries.filter(action=filters.action)
    if filters.outcome in AuditLog.Outcome.values:
        entries = entries.filter(outcome=filters.outcome)
    if filters.actor:
        entries = entries.filter(actor__icontains=filters.actor)
    return Paginator(entries, per_page).get_page(page)
