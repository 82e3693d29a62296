"""Geometry of the small throughput/latency chart, drawn as inline SVG by the template: numbers only, no markup."""

from __future__ import annotations

from typing import Any

WIDTH, HEIGHT, PAD_LEFT, PAD_RIGHT, PAD_BOTTOM, PAD_TOP = 1000, 120, 34, 34, 18, 8
_PLOT_W, _PLOT_H = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_BOTTOM - PAD_TOP


def _nice_max(value: float) -> float:
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000):
        if value <= step:
            return float(step)
    return float(value)


def _bar(i: int, point: dict[str, Any], slot: float, max_count: float) -> dict[str, Any]:
    x = PAD_LEFT + i * slot
    h = _PLOT_H * point["count"] / max_count
    return {
        "x": round(x + slot * 0.15, 1),
        "y": round(PAD_TOP + _PLOT_H - h, 1),
        "w": round(slot * 0.7, 1),
        "h": round(h, 1),
        "title": f"{point['minute']:%H:%M} UTC: {point['count']} rows"
        + (f", p95 {point['p95']:.2f} s" if point["p95"] is not None else ""),
    }


def _latency_point(i: int, p95: float, slot: float, max_latency: float) -> str:
    x = PAD_LEFT + i * slot
    y = PAD_TOP + _PLOT_H - _PLOT_H * p95 / max_latency
    return f"{x + slot / 2:.1f},{y:.1f}"


def _frame() -> dict[str, Any]:
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": PAD_LEFT,
        "right": WIDTH - PAD_RIGHT,
        "top": PAD_TOP,
        "bottom": HEIGHT - PAD_BOTTOM,
    }


def throughput_chart(series: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars of rows per minute, a line of p95 upload-to-row latency on its own scale."""
    slot = _PLOT_W / max(len(series), 1)
    max_count = _nice_max(max((p["count"] for p in series), default=0) or 1)
    max_latency = _nice_max(max((p["p95"] for p in series if p["p95"] is not None), default=0) or 1)
    bars = [_bar(i, point, slot, max_count) for i, point in enumerate(series)]
    points = [_latency_point(i, p["p95"], slot, max_latency) for i, p in enumerate(series) if p["p95"] is not None]
    first, last = (series[0]["minute"], series[-1]["minute"]) if series else (None, None)
    return {
        **_frame(),
        "bars": bars,
        "line": " ".join(points),
        "dots": [p.split(",") for p in points],
        "max_count": int(max_count),
        "max_latency": max_latency,
        "first": first,
        "last": last,
    }
