"""A rule's life as a pure function: pending while the condition holds for less than `for_s`, then firing, reminded
every `reminder_s`, resolved when the condition clears. No I/O, so the fast tests walk every path."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

FIRING, REMINDER, RESOLVED = "firing", "reminder", "resolved"


@dataclass(frozen=True)
class State:
    firing: bool = False
    pending_since: datetime | None = None
    firing_since: datetime | None = None
    last_notified_at: datetime | None = None


def step(state: State, *, active: bool, now: datetime, for_s: float, reminder_s: float) -> tuple[State, str | None]:
    """The next state and the event to announce, if any."""
    if not active:
        cleared = State()
        return cleared, RESOLVED if state.firing else None
    pending_since = state.pending_since or now
    if not state.firing:
        if (now - pending_since).total_seconds() < for_s:
            return replace(state, pending_since=pending_since), None
        return State(True, pending_since, now, now), FIRING
    last = state.last_notified_at or state.firing_since or now
    if reminder_s > 0 and (now - last).total_seconds() >= reminder_s:
        return replace(state, pending_since=pending_since, last_notified_at=now), REMINDER
    return replace(state, pending_since=pending_since), None
