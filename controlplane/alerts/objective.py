"""The service-level objective: "X% of uploads become a row within Y seconds over N days", its error budget, and
burn rates over the windows of the Google SRE workbook's multiwindow, multi-burn-rate alerts (chapter 5, "Alerting on
SLOs"): page at 14.4x over 1 h and 5 min (2% of a 30-day budget in an hour), at 6x over 6 h and 30 min (5% in 6 h).

An upload counts as bad when its row came later than Y seconds or when it became a failure record instead.

The counts come from what the workers record in Redis as they write (`selectors.objective_counts`), not from a scan of
the tables. A window the counters do not cover whole (after a Redis that lost its data, or on a fresh install) is
reported over the part they cover: its burn rate and the share of bad uploads are over that part, and the status
says from when (`counted_since`, `complete`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache

from controlplane import selectors

CACHE_KEY = "alerts:objective"
# A read of ~1,000 small Redis hashes (no BigQuery): shared by every open dashboard, refreshed once a minute.
CACHE_S = 60


@dataclass(frozen=True)
class BurnAlert:
    kind: str
    long_s: int
    short_s: int
    factor: float


BURN_ALERTS = (
    BurnAlert("burn_fast", long_s=3600, short_s=300, factor=14.4),
    BurnAlert("burn_slow", long_s=6 * 3600, short_s=1800, factor=6.0),
)


def target() -> float:
    return settings.SLO_TARGET_PERCENT / 100


def window_s() -> int:
    return settings.SLO_WINDOW_DAYS * 86_400


def bad_ratio(counts: dict[str, int]) -> float | None:
    total = counts["rows"] + counts["failed"]
    if total == 0:
        return None
    return (total - counts["good"]) / total


def burn_rate(counts: dict[str, int], *, objective: float) -> float | None:
    """How fast the budget goes: 1.0 spends exactly the whole budget over the window."""
    ratio = bad_ratio(counts)
    return None if ratio is None else ratio / (1 - objective)


def budget_left(counts: dict[str, int], *, objective: float) -> float | None:
    """The share of the window's error budget not yet spent (negative once overspent); None with no uploads."""
    spent = burn_rate(counts, objective=objective)
    return None if spent is None else 1 - spent


def _windows() -> list[int]:
    return [window_s(), *(w for b in BURN_ALERTS for w in (b.long_s, b.short_s))]


def _compute(*, now: datetime | None = None) -> dict[str, Any]:
    windows = _windows()
    found = selectors.objective_counts(windows_s=windows, latency_s=settings.SLO_LATENCY_S, now=now)
    counts = dict(zip(windows, found, strict=True))
    objective = target()
    whole = counts[window_s()]
    burns = {
        b.kind: {
            "long": burn_rate(counts[b.long_s], objective=objective),
            "short": burn_rate(counts[b.short_s], objective=objective),
            "factor": b.factor,
            "long_s": b.long_s,
            "short_s": b.short_s,
            "complete": counts[b.long_s]["complete"],
        }
        for b in BURN_ALERTS
    }
    ratio = bad_ratio(whole)
    return {
        "target_percent": settings.SLO_TARGET_PERCENT,
        "latency_s": settings.SLO_LATENCY_S,
        "window_days": settings.SLO_WINDOW_DAYS,
        "uploads": whole["rows"] + whole["failed"],
        "good": whole["good"],
        "achieved_percent": None if ratio is None else 100 * (1 - ratio),
        "budget_left": budget_left(whole, objective=objective),
        "burn": burns,
        "counted_since": whole["counted_since"],
        "complete": whole["complete"],
    }


def objective_status(*, fresh: bool = False) -> dict[str, Any]:
    value = None if fresh else cache.get(CACHE_KEY)
    if value is None:
        value = _compute()
        cache.set(CACHE_KEY, value, CACHE_S)
    return value
