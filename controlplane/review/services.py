"""Writes of the review queue: an operator's verdict on one classified object generation, audited.

The verdict judges the top-1 label of one model's row. What was judged (the label and its confidence) is read from
that row, never taken from the form, so the stored verdict always matches what the model said.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import transaction

from controlplane.audit import Actor, audited
from controlplane.models import AuditLog
from controlplane.review import selectors
from controlplane.review.labels import canonical_label
from controlplane.review.models import Review

MAX_NAME = 1024
MAX_MODEL = 64


class ReviewRefused(Exception):
    """Nothing stored: the message says why (no such row, an unknown label, a bad verdict)."""


def _true_label(verdict: str, text: str, predicted: str) -> str:
    if verdict == Review.Verdict.CORRECT:
        return predicted
    if verdict == Review.Verdict.UNCLEAR:
        return ""
    label = canonical_label(text)
    if label is None:
        shown = " ".join(text.split())[:60]
        raise ReviewRefused(f"{shown!r} is not one of the 1000 ImageNet labels: choose one from the list")
    if label == predicted:
        raise ReviewRefused(f"{label!r} is the model's own label: that verdict is 'correct', not 'wrong'")
    return label


def _checked(*, bucket: str, name: str, generation: int, model: str, verdict: str) -> None:
    if verdict not in Review.Verdict.values:
        raise ReviewRefused(f"unknown verdict {verdict[:20]!r}: correct, wrong or unclear")
    if not bucket or not name or len(name) > MAX_NAME or generation <= 0:
        raise ReviewRefused("bucket, name and a positive generation name the object")
    if not model or len(model) > MAX_MODEL:
        raise ReviewRefused(f"the model's name must be 1 to {MAX_MODEL} characters")


def review_record(
    *,
    bucket: str,
    name: str,
    generation: int,
    model: str,
    verdict: str,
    true_label: str = "",
    actor: Actor,
    now: datetime | None = None,
) -> Review:
    """Store `actor`'s verdict on `model`'s top-1 label for one object generation, replacing any earlier verdict
    on that generation (one per object generation; the audit log keeps every one).

    `true_label` matters for "wrong" only: one of the 1000 ImageNet labels, other than the model's. "correct" stores
    the model's label as the true one, "unclear" none. Refused (ReviewRefused, audited as refused) when `model` has
    no row for the object generation in the last selectors.LOOKBACK, or the verdict or label is not one of ours."""
    summary = f"review {name[:150]}#{generation} ({model[:40]}): {verdict[:10]}"
    with audited(actor=actor, action=AuditLog.Action.REVIEW, summary=summary, refusals=(ReviewRefused,)) as note:
        _checked(bucket=bucket, name=name, generation=generation, model=model, verdict=verdict)
        row = selectors.classification_row(bucket=bucket, name=name, generation=generation, model=model, now=now)
        if row is None or not row["classifications"]:
            raise ReviewRefused(
                f"no row of {model} for {name} (generation {generation}) in the last {selectors.LOOKBACK.days} days"
            )
        top = row["classifications"][0]
        predicted, confidence = str(top["classification"]), float(top["confidence"])
        label = _true_label(verdict, true_label, predicted)
        with transaction.atomic():
            review, created = Review.objects.update_or_create(
                bucket=bucket,
                image_name=name,
                generation=generation,
                defaults={
                    "model": model,
                    "predicted_label": predicted,
                    "predicted_confidence": confidence,
                    "verdict": verdict,
                    "true_label": label,
                    "reviewer": actor.user,
                    "reviewer_name": actor.name[:150],
                    "reviewed_at": now or datetime.now(UTC),
                },
            )
        said = f"{verdict}, {label!r}" if verdict == Review.Verdict.WRONG else verdict
        note.summary = f"review {name[:150]}#{generation} ({model[:40]}, {predicted[:40]} {confidence:.0%}): {said}" + (
            "" if created else " (replaced the earlier verdict)"
        )
    return review
