"""The control plane's own records. Classification results live in BigQuery, not here."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditLog(models.Model):
    """One operator action: who, when, what and how it ended. Reads (a plan shown, a page) are not recorded."""

    class Action(models.TextChoices):
        PLAN = "plan", "plan"  # rows from before plans became reads; no longer written
        APPLY = "apply", "apply"
        DESTROY = "destroy", "destroy"
        LISTENER_STOP = "listener_stop", "listener stop"
        LISTENER_START = "listener_start", "listener start"
        UPLOAD = "upload", "upload"
        REQUEUE = "requeue", "requeue"
        REQUEUE_ALL = "requeue_all", "requeue all"
        DISMISS = "dismiss", "dismiss"
        RECONCILE = "reconcile", "reconcile"
        LOGIN_FAILED = "login_failed", "failed login"
        REVIEW = "review", "review"
        REPROCESS = "reprocess", "reprocess"
        REPROCESS_CANCEL = "reprocess_cancel", "reprocess cancel"
        EXPORT = "export", "export"

    class Outcome(models.TextChoices):
        PLANNED = "planned", "planned"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        REFUSED = "refused", "refused"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(
        max_length=150,
        help_text="A user name, cli:<os user> for the command line, or the name a failed login tried.",
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=16, choices=Action.choices)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    summary = models.CharField(max_length=300)
    source = models.CharField(max_length=64, blank=True, help_text="The client address of a web request.")
    checksum = models.CharField(max_length=64, blank=True)
    changes = models.JSONField(default=list, help_text="The plan's changes and, for apply/destroy, each step's result.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["action", "-created_at"]), models.Index(fields=["actor", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action}: {self.outcome}"
