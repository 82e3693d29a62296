"""The control plane's own records. Classification results live in BigQuery, not here."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditLog(models.Model):
    """One plan, apply or destroy of the cloud resources: who, when, what it changed and how it ended."""

    class Action(models.TextChoices):
        PLAN = "plan", "plan"
        APPLY = "apply", "apply"
        DESTROY = "destroy", "destroy"

    class Outcome(models.TextChoices):
        PLANNED = "planned", "planned"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        REFUSED = "refused", "refused"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, help_text="A user name, or cli:<os user> for the command line.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=16, choices=Action.choices)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    summary = models.CharField(max_length=300)
    checksum = models.CharField(max_length=64, blank=True)
    changes = models.JSONField(default=list, help_text="The plan's changes and, for apply/destroy, each step's result.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "infrastructure audit log entry"
        verbose_name_plural = "infrastructure audit log"

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action}: {self.outcome}"
