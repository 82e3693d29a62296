"""What the insight pages accept from a request: each value checked, or refused with a reason the page shows.

Pure functions (no Django, no BigQuery): the fast tier tests them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from controlplane.fraction import fraction

# Windows of processed_at (the partition column): every query names one, so BigQuery reads only those days.
WINDOWS = {"1d": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
WINDOW_NAMES = {"1d": "last day", "7d": "last 7 days", "30d": "last 30 days"}
DEFAULT_WINDOW = "7d"
# Rows a clock a little ahead may have stamped: the window ends this far after now (as the dashboard's does).
CLOCK_SLACK = timedelta(minutes=5)
DEFAULT_THRESHOLD = 0.5
BINS = 20
LABEL_MAX = 128  # Review.predicted_label's length; ImageNet's longest name is far shorter
MODEL_MAX = 64  # Review.model's length
PAGE_MAX = 1000
# A model or label name: letters, digits, spaces and the punctuation ImageNet names and model names use.
_NAME_RE = re.compile(r"^[\w .,'()/+\-]+$")
FORMATS = ("csv", "jsonl")


class Refused(ValueError):
    """A request value the page will not use; the message says which and why."""


@dataclass(frozen=True)
class Window:
    key: str
    start: datetime
    end: datetime

    @property
    def name(self) -> str:
        return WINDOW_NAMES[self.key]

    def days(self) -> list[date]:
        """Each UTC day the window touches, oldest first: the trend's x axis (a day without rows shows as 0)."""
        first, last = self.start.date(), self.end.date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def window(raw: str | None, *, now: datetime | None = None) -> Window:
    key = (raw or DEFAULT_WINDOW).strip()
    if key not in WINDOWS:
        raise Refused(f"window must be one of {', '.join(WINDOWS)} (got {key[:20]!r})")
    now = now or datetime.now(UTC)
    return Window(key, now - WINDOWS[key], now + CLOCK_SLACK)


def name(raw: str | None, *, what: str, limit: int) -> str:
    """A model or label name: bounded, printable, no control characters; '' when absent."""
    value = (raw or "").strip()
    if not value:
        return ""
    if len(value) > limit:
        raise Refused(f"{what} is longer than {limit} characters")
    if not _NAME_RE.match(value):
        raise Refused(f"{what} {value[:40]!r} has characters no {what} has")
    return value


def model(raw: str | None, *, known: Iterable[str], default: str) -> str:
    """One of the models the page offers (those with rows in the window, and the live one); absent: `default`."""
    value = name(raw, what="model", limit=MODEL_MAX) or default
    offered = set(known) | {default}
    if value not in offered:
        raise Refused(f"model {value!r} has no rows in this window (models here: {', '.join(sorted(offered))})")
    return value


def two_models(get: Mapping[str, str], *, known: Sequence[str], default: str) -> tuple[str, str]:
    """A and B for the comparison: A defaults to the live model, B to the next model with rows; never the same."""
    a = model(get.get("a"), known=known, default=default)
    others = [m for m in known if m != a]
    b_default = others[0] if others else a
    b = model(get.get("b"), known=known, default=b_default)
    if a == b and get.get("b"):
        raise Refused("choose two different models to compare")
    return a, b


def threshold(raw: str | None) -> float:
    value = fraction(
        (raw or "").strip(),
        not_number="threshold must be a number between 0 and 1 (got {raw!r})",
        out_of_range="threshold must be between 0 and 1, exclusive (got {raw})",
        refuse=Refused,
        exclusive=True,
        shown=20,
    )
    return DEFAULT_THRESHOLD if value is None else round(value, 4)


def page(raw: str | None) -> int:
    text = (raw or "1").strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= PAGE_MAX:
        raise Refused(f"page must be a whole number from 1 to {PAGE_MAX}")
    return int(text)


def export_format(raw: str | None) -> str:
    value = (raw or "").strip()
    if value not in FORMATS:
        raise Refused(f"format must be one of {', '.join(FORMATS)}")
    return value


# --- Histograms: the bin of a confidence, as the SQL computes it, and the full row of bins ---------------------------


def bin_of(confidence: float, bins: int = BINS) -> int:
    """Bin i holds [i/bins, (i+1)/bins); 1.0 falls in the last bin. Mirrors the SQL's
    LEAST(CAST(FLOOR(c * bins) AS INT64), bins - 1), clamped at 0 for a (never expected) negative."""
    return max(0, min(int(confidence * bins // 1), bins - 1))


def histogram(counts: Mapping[int, int], bins: int = BINS) -> list[dict[str, float | int]]:
    """Every bin, the empty ones as 0 (a query returns only bins that hold rows); out-of-range bins are dropped."""
    return [{"bin": i, "lo": i / bins, "hi": (i + 1) / bins, "count": int(counts.get(i, 0))} for i in range(bins)]


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None
