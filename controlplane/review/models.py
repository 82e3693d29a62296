"""An operator's verdict on one classified object generation. The rows themselves live in BigQuery; a verdict
keeps the label it judged (and its confidence) so accuracy per label needs no BigQuery read."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Review(models.Model):
    class Verdict(models.TextChoices):
        CORRECT = "correct", "correct"
        WRONG = "wrong", "wrong"
        UNCLEAR = "unclear", "unclear"

    bucket = models.CharField(max_length=222)
    image_name = models.CharField(max_length=1024)  # a Cloud Storage object name is at most 1024 bytes
    generation = models.BigIntegerField()
    model = models.CharField(max_length=64, help_text="The model whose top-1 label was judged.")
    predicted_label = models.CharField(max_length=128)
    predicted_confidence = models.FloatField()
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    true_label = models.CharField(
        max_length=128,
        blank=True,
        help_text="correct: the predicted label; wrong: the label the reviewer chose; unclear: empty.",
    )
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    reviewer_name = models.CharField(max_length=150)
    reviewed_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-reviewed_at", "-id"]
        constraints = [
            # One verdict per object generation: reviewing again replaces it (the audit log keeps each action).
            models.UniqueConstraint(fields=["bucket", "image_name", "generation"], name="one_review_per_object"),
        ]
        indexes = [models.Index(fields=["model", "predicted_label"]), models.Index(fields=["verdict", "-reviewed_at"])]

    def __str__(self) -> str:
        return f"{self.image_name}#{self.generation}: {self.verdict}"
