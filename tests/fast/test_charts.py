"""The throughput chart's geometry: numbers the template draws as SVG."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane import charts


def test_chart_geometry() -> None:
    minute = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    series = [
        {"minute": minute + timedelta(minutes=i), "count": c, "p50": p, "p95": p}
        for i, (c, p) in enumerate([(0, None), (4, 2.0), (8, 6.0)])
    ]
    chart = charts.throughput_chart(series)
    assert len(chart["bars"]) == 3 and chart["bars"][0]["h"] == 0
    assert chart["bars"][2]["h"] == pytest.approx(0.8 * (chart["bottom"] - chart["top"]), abs=0.2)
    assert chart["max_count"] == 10 and len(chart["dots"]) == 2
    assert chart["bars"][2]["title"] == "12:02 UTC: 8 rows, p95 6.00 s"


def test_an_empty_series_draws_an_empty_chart() -> None:
    chart = charts.throughput_chart([])
    assert chart["bars"] == [] and chart["line"] == "" and chart["first"] is None and chart["max_count"] == 1
