"""The alert state machine and the objective's arithmetic: pure functions, no database, no stack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.alerts import objective
from controlplane.alerts.state import FIRING, REMINDER, RESOLVED, State, step

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _walk(actives: list[bool], *, for_s: float = 60, reminder_s: float = 600, every_s: float = 30) -> list[str | None]:
    state, events = State(), []
    for i, active in enumerate(actives):
        state, event = step(
            state, active=active, now=T0 + timedelta(seconds=i * every_s), for_s=for_s, reminder_s=reminder_s
        )
        events.append(event)
    return events


def test_fires_once_after_holding_for_its_duration() -> None:
    assert _walk([True, True, True, True]) == [None, None, FIRING, None]


def test_a_blip_shorter_than_the_duration_says_nothing() -> None:
    assert _walk([True, False, True, False]) == [None, None, None, None]


def test_zero_duration_fires_at_the_first_evaluation() -> None:
    assert _walk([True, True], for_s=0) == [FIRING, None]


def test_resolves_once_when_the_condition_clears() -> None:
    assert _walk([True, True, False, False], for_s=0) == [FIRING, None, RESOLVED, None]


def test_reminds_at_the_interval_while_firing() -> None:
    events = _walk([True] * 9, for_s=0, reminder_s=90)
    assert events == [FIRING, None, None, REMINDER, None, None, REMINDER, None, None]


def test_no_reminders_when_the_interval_is_zero() -> None:
    assert _walk([True] * 6, for_s=0, reminder_s=0) == [FIRING] + [None] * 5


def test_a_restart_resumes_from_the_stored_state_without_repeating() -> None:
    """The evaluator keeps State in the database: the same state fed again after a restart decides nothing new."""
    state, event = step(State(), active=True, now=T0, for_s=0, reminder_s=600)
    assert event == FIRING
    restored = State(state.firing, state.pending_since, state.firing_since, state.last_notified_at)
    assert step(restored, active=True, now=T0 + timedelta(seconds=5), for_s=0, reminder_s=600)[1] is None


@pytest.mark.parametrize(
    ("counts", "burn"),
    [
        ({"rows": 1000, "good": 1000, "failed": 0}, 0.0),
        ({"rows": 1000, "good": 990, "failed": 0}, 1.0),  # 1% bad at a 99% objective spends exactly the budget
        ({"rows": 90, "good": 90, "failed": 10}, 10.0),
        ({"rows": 0, "good": 0, "failed": 0}, None),
    ],
)
def test_burn_rate(counts: dict[str, int], burn: float | None) -> None:
    got = objective.burn_rate(counts, objective=0.99)
    assert got == pytest.approx(burn) if burn is not None else got is None


def test_budget_left() -> None:
    assert objective.budget_left({"rows": 1000, "good": 995, "failed": 0}, objective=0.99) == pytest.approx(0.5)
    assert objective.budget_left({"rows": 100, "good": 90, "failed": 0}, objective=0.99) == pytest.approx(-9.0)


def test_the_workbook_windows() -> None:
    """SRE workbook, table 5-8: 14.4x over 1 h (short 5 min) and 6x over 6 h (short 30 min)."""
    assert [(b.long_s, b.short_s, b.factor) for b in objective.BURN_ALERTS] == [(3600, 300, 14.4), (21600, 1800, 6.0)]


def test_rows_within_the_objective_from_the_latency_buckets() -> None:
    from controlplane.metrics import within

    buckets = [("30.0", 7), ("60.0", 9), ("90.0", 10), ("+Inf", 12)]
    assert within(buckets, 60) == 9  # a bound: exact
    assert within(buckets, 75) == 9  # between bounds: only the rows surely within
    assert within(buckets, 10) == 0
