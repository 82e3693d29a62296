"""Alert rules with their evaluation state, where notifications go, and every notification sent (the history).

A rule's state lives here, not in the evaluator's memory, and a notification is written in the same transaction as the
state change that caused it (an outbox): a restarted evaluator neither forgets a firing rule nor announces it twice.
"""

from __future__ import annotations

from django.db import models


class Rule(models.Model):
    kind = models.CharField(max_length=32, unique=True)
    enabled = models.BooleanField(default=True)
    threshold = models.FloatField(null=True, blank=True)
    for_s = models.PositiveIntegerField(default=60, help_text="How long the condition must hold before it fires.")
    reminder_minutes = models.PositiveIntegerField(default=60, help_text="0 = no reminders.")
    # Evaluation state.
    firing = models.BooleanField(default=False)
    pending_since = models.DateTimeField(null=True, blank=True)
    firing_since = models.DateTimeField(null=True, blank=True)
    last_notified_at = models.DateTimeField(null=True, blank=True)
    evaluated_at = models.DateTimeField(null=True, blank=True)
    value = models.FloatField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    memo = models.JSONField(default=dict, blank=True, help_text="What a rule remembers between evaluations.")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.kind


class Channel(models.Model):
    class Kind(models.TextChoices):
        CHAT = "chat", "Chat webhook (Slack, Google Chat: JSON with a text field)"
        WEBHOOK = "webhook", "Generic webhook (JSON with every field)"
        EMAIL = "email", "E-mail"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    target = models.CharField(max_length=1000, help_text="The webhook URL, or e-mail addresses separated by commas.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.target}"


class Notification(models.Model):
    class Event(models.TextChoices):
        FIRING = "firing", "firing"
        REMINDER = "reminder", "reminder"
        RESOLVED = "resolved", "resolved"
        TEST = "test", "test"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"
        NO_CHANNEL = "no_channel", "no channel configured"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    rule = models.ForeignKey(Rule, null=True, blank=True, on_delete=models.SET_NULL)
    rule_kind = models.CharField(max_length=32, blank=True)
    event = models.CharField(max_length=16, choices=Event.choices)
    channel = models.ForeignKey(Channel, null=True, blank=True, on_delete=models.SET_NULL)
    channel_label = models.CharField(max_length=1100, blank=True)
    title = models.CharField(max_length=200)
    text = models.TextField()
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.event} {self.rule_kind}: {self.status}"
