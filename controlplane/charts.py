"""Geometry of the small throughput/latency chart, drawn as inline SVG by the template: numbers only, no markup."""

from __future__ import annotations

from typing import Any

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 1000, 120, 34, 18, 8


def _nice_max(value: float) -> float:
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000):
        if value <= step:
            return float(step)
    return float(value)


def throughput_chart(series: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars of rows per minute, a line of p95 upload-to-row latency on its own scale."""
    n = max(len(series), 1)
    plot_w, plot_h = WIDTH - PAD_LEFT - 34, HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / n
    max_count = _nice_max(max((p["count"] for p in series), default=0) or 1)
    p95s = [p["p95"] for p in series if p["p95"] is not None]
    max_latency = _nice_max(max(p95s, default=0) or 1)
    bars, points = [], []
    for i, point in enumerate(series):
        x = PAD_LEFT + i * slot
        h = plot_h * point["count"] / max_count
        bars.append(
            {
                "x": round(x + slot * 0.15, 1),
                "y": round(PAD_TOP + plot_h - h, 1),
                "w": round(slot * 0.7, 1),
                "h": round(h, 1),
                "title": f"{point['minute']:%H:%M} UTC: {point['count']} rows"
                + (f", p95 {point['p95']:.2f} s" if point["p95"] is not None else ""),
            }
        )
        if point["p95"] is not None:
            y = PAD_TOP + plot_h - plot_h * point["p95"] / max_latency
            points.append(f"{x + slot / 2:.1f},{y:.1f}")
    first, last = (series[0]["minute"], series[-1]["minute"]) if series else (None, None)
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": PAD_LEFT,
        "right": WIDTH - 34,
        "top": PAD_TOP,
        "bottom": HEIGHT - PAD_BOTTOM,
        "bars": bars,
        "line": " ".join(points),
        "dots": [p.split(",") for p in points],
        "max_count": int(max_count),
        "max_latency": max_latency,
        "first": first,
        "last": last,
    }
