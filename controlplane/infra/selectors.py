"""Reads of the control plane's own records."""

from __future__ import annotations

from controlplane.models import AuditLog


def audit_list_recent(*, limit: int = 100) -> list[AuditLog]:
    return list(AuditLog.objects.select_related("user")[:limit])
