"""Which classifications queue up for review: pure rules, no Django, no BigQuery (the fast tier tests them).

A row is a candidate when the model was unsure: its top-1 confidence is below REVIEW_CONFIDENCE_BELOW, or its top-1
and top-2 are closer than REVIEW_MARGIN_BELOW (two labels it could not tell apart). Both are probabilities in [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from classifier.config import envfloat
from controlplane.fraction import fraction

DEFAULT_CONFIDENCE_BELOW = 0.5
DEFAULT_MARGIN_BELOW = 0.1


@dataclass(frozen=True)
class Thresholds:
    confidence_below: float = DEFAULT_CONFIDENCE_BELOW
    margin_below: float = DEFAULT_MARGIN_BELOW

    def narrowed(self, *, confidence_below: str = "", margin_below: str = "") -> Thresholds:
        """These thresholds, narrowed for one visit by the page's fields: each at most the setting. A value that is
        no number, or outside [0, setting], raises ValueError naming the field."""
        return Thresholds(
            confidence_below=_narrow("confidence_below", confidence_below, self.confidence_below),
            margin_below=_narrow("margin_below", margin_below, self.margin_below),
        )


def _narrow(field: str, raw: str, ceiling: float) -> float:
    value = fraction(
        raw.strip(),
        not_number=f"{field}={{raw!r}} is not a number",
        out_of_range=f"{field}={{value:g}} must be between 0 and {ceiling:g} (the setting)",
        hi=ceiling,
        shown=20,
    )
    return ceiling if value is None else value


def thresholds_from_env(env: Mapping[str, str]) -> Thresholds:
    """REVIEW_CONFIDENCE_BELOW and REVIEW_MARGIN_BELOW; ConfigError names the variable of a bad value.
    Both 0 is allowed: nothing queues up (review is off)."""
    return Thresholds(
        confidence_below=envfloat(env, "REVIEW_CONFIDENCE_BELOW", DEFAULT_CONFIDENCE_BELOW, lo=0.0, hi=1.0),
        margin_below=envfloat(env, "REVIEW_MARGIN_BELOW", DEFAULT_MARGIN_BELOW, lo=0.0, hi=1.0),
    )


def top_two(classifications: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    """Top-1 and top-2 confidence of a row's labels (sorted most confident first); 0 for a missing one."""
    first = float(classifications[0]["confidence"]) if classifications else 0.0
    second = float(classifications[1]["confidence"]) if len(classifications) > 1 else 0.0
    return first, second


def candidate_reasons(classifications: Sequence[Mapping[str, Any]], thresholds: Thresholds) -> list[str]:
    """Why a row queues up for review (empty: it does not). The SQL in selectors.review_candidates says the same."""
    top1, top2 = top_two(classifications)
    reasons = []
    if top1 < thresholds.confidence_below:
        reasons.append(f"top-1 {top1:.1%}, under {thresholds.confidence_below:.0%}")
    if top1 - top2 < thresholds.margin_below:
        reasons.append(f"top-1 only {top1 - top2:.1%} ahead of top-2, under {thresholds.margin_below:.0%}")
    return reasons


def live_model_of(models: Sequence[Mapping[str, Any]], live: str) -> str:
    """The queue's default model: of the models that wrote rows in the window (most rows first), the live one, as
    rows name it: the bare name, or the name with its weights file ("efficientnet_lite0 (efficientnet-....pth)");
    the bare name when it wrote none there."""
    for m in models:
        name = str(m["model"])
        if name == live or name.startswith(live + " ("):
            return name
    return live
