"""The benchmark's per-stage profile: nested stages are exclusive, and off by default."""

from __future__ import annotations

import time

import pytest

from classifier import stages


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@pytest.fixture
def profiling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stages, "ENABLED", True)
    monkeypatch.setattr(stages, "_totals", {})
    monkeypatch.setattr(stages, "_stack", [])


def test_an_inner_stage_is_not_counted_in_the_outer_one(profiling: None) -> None:
    with stages.stage("outer"):
        _spin(0.02)
        with stages.stage("inner"):
            _spin(0.05)
        _spin(0.02)
    totals = stages.totals()
    assert totals["inner"] >= 0.05
    assert 0.04 <= totals["outer"] < 0.05  # the outer stage's own 40 ms, not the inner's 50


def test_nothing_is_recorded_when_profiling_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stages, "ENABLED", False)
    monkeypatch.setattr(stages, "_totals", {})
    with stages.stage("outer"):
        _spin(0.001)
    assert "outer" not in stages.totals()
