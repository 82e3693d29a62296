"""Geometry of the insight pages' small charts, drawn as inline SVG by the templates: numbers only, no markup
(as controlplane/charts.py does for the dashboard)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

SPARK_W, SPARK_H = 120, 24
HIST_W, HIST_H, HIST_PAD = 400, 100, 16
TREND_W, TREND_H, TREND_PAD = 600, 100, 16


def _bars(values: Sequence[float], width: float, height: float, top: float = 0.0) -> list[dict[str, Any]]:
    slot = width / max(len(values), 1)
    most = max(values, default=0) or 1
    out = []
    for i, v in enumerate(values):
        h = height * v / most
        out.append(
            {
                "x": round(i * slot + slot * 0.1, 1),
                "y": round(top + height - h, 1),
                "w": round(slot * 0.8, 1),
                "h": round(h, 1),
            }
        )
    return out


def sparkline(days: Sequence[date], counts: Mapping[date, int]) -> dict[str, Any]:
    """One bar per day of the window, as high as that day's count relative to the busiest day."""
    values = [counts.get(d, 0) for d in days]
    bars = _bars(values, SPARK_W, SPARK_H)
    for bar, day, v in zip(bars, days, values, strict=True):
        bar["title"] = f"{day:%Y-%m-%d}: {v}"
    return {
        "width": SPARK_W,
        "height": SPARK_H,
        "bars": bars,
        "peak": max(values, default=0),
        "first": days[0] if days else None,
        "last": days[-1] if days else None,
    }


def histogram_chart(bins: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Bars of rows per confidence bin, 0 to 1 left to right."""
    bars = _bars([b["count"] for b in bins], HIST_W, HIST_H - HIST_PAD)
    for bar, b in zip(bars, bins, strict=True):
        bar["title"] = f"{b['lo']:.2f}-{b['hi']:.2f}: {b['count']} rows"
    return {
        "width": HIST_W,
        "height": HIST_H,
        "base": HIST_H - HIST_PAD,
        "bars": bars,
        "peak": max((b["count"] for b in bins), default=0),
        "total": sum(b["count"] for b in bins),
    }


def share_trend(points: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per day, the share (0 to 1) of rows below the threshold: bars on a fixed 0-100 % scale (a day without rows
    has no bar)."""
    base = TREND_H - TREND_PAD
    slot = TREND_W / max(len(points), 1)
    bars = []
    for i, pt in enumerate(points):
        value = pt["share"]
        h = base * value if value is not None else 0.0
        title = f"{pt['day']:%Y-%m-%d}: " + (
            f"{value:.0%} of {pt['rows']} rows below" if value is not None else "no rows"
        )
        bars.append(
            {
                "x": round(i * slot + slot * 0.1, 1),
                "y": round(base - h, 1),
                "w": round(slot * 0.8, 1),
                "h": round(h, 1),
                "title": title,
            }
        )
    return {
        "width": TREND_W,
        "height": TREND_H,
        "base": base,
        "bars": bars,
        "first": points[0]["day"] if points else None,
        "last": points[-1]["day"] if points else None,
    }
