"""Alert rules, their evaluation and notifications, and the alert pages. The pipeline's readings are set on the
Measures object (the one boundary between rules and the pipeline); webhooks go to a real local HTTP receiver."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from classifier import ledger
from classifier.queue import queue
from controlplane import selectors
from controlplane.alerts import evaluate
from controlplane.alerts.evaluate import MAX_ATTEMPTS, deliver_pending, evaluate_once
from controlplane.alerts.models import Channel, Notification, Rule
from controlplane.alerts.rules import SPECS, Measures, rules_ensure
from tests.alert_support import Receiver, receiver  # noqa: F401 (a fixture)
from tests.helpers import wait_for

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
HEALTHY = {
    "listener": {"state": "running"},
    "queue_depth": 0,
    "pubsub_undelivered": None,
    "oldest_job_s": None,
    "workers_live": 2,
    "throughput": {"rows": 100, "failed": 0, "p95": 1.0},
    "dead_letters": [],
    "objective": {
        "burn": {
            "burn_fast": {"long": 0.0, "short": 0.0, "factor": 14.4, "long_s": 3600, "short_s": 300},
            "burn_slow": {"long": 0.0, "short": 0.0, "factor": 6.0, "long_s": 21600, "short_s": 1800},
        }
    },
}


def measures(now: datetime = T0, **changes: Any) -> Measures:
    """Readings as given: the cached properties are set on the instance, so no selector runs."""
    m = Measures(now)
    for name, value in {**HEALTHY, **changes}.items():
        setattr(m, name, value)
    return m


def events(kind: str | None = None) -> list[str]:
    found = Notification.objects.order_by("created_at", "id")
    return [n.event for n in (found.filter(rule_kind=kind) if kind else found)]


@pytest.fixture
def chat(db: Any, receiver: Receiver) -> Receiver:  # noqa: F811
    Channel.objects.create(kind=Channel.Kind.CHAT, target=receiver.url + "/chat")
    Channel.objects.create(kind=Channel.Kind.WEBHOOK, target=receiver.url + "/generic")
    rules_ensure()
    Rule.objects.update(for_s=0, reminder_minutes=10)
    return receiver


def test_every_rule_exists_with_its_defaults_and_edits_are_kept(db: Any) -> None:
    rules = {r.kind: r for r in rules_ensure()}
    assert set(rules) == set(SPECS)
    assert rules["failure_rate"].threshold == 10 and rules["failure_rate"].enabled
    Rule.objects.filter(kind="failure_rate").update(threshold=3)
    assert {r.kind: r for r in rules_ensure()}["failure_rate"].threshold == 3


@pytest.mark.parametrize(
    ("kind", "fault"),
    [
        ("listener_down", {"listener": {"state": "dead"}}),
        ("listener_down", {"listener": {"state": "paused"}}),
        ("queue_stale", {"oldest_job_s": 3600.0}),
        ("no_workers", {"workers_live": 0}),
        ("failure_rate", {"throughput": {"rows": 5, "failed": 5, "p95": 1.0}}),
        ("latency_p95", {"throughput": {"rows": 5, "failed": 0, "p95": 900.0}}),
        ("dead_letters", {"dead_letters": [{"published_at": T0 - timedelta(minutes=1)}]}),
        ("backlog_growing", {"queue_depth": 40}),
        ("backlog_growing", {"pubsub_undelivered": 900}),
    ],
)
def test_each_rule_fires_on_its_fault_and_only_it(chat: Receiver, kind: str, fault: dict[str, Any]) -> None:
    evaluate_once(now=T0, measures=measures())
    assert events() == []
    evaluate_once(now=T0 + timedelta(seconds=30), measures=measures(T0 + timedelta(seconds=30), **fault))
    assert {n.rule_kind for n in Notification.objects.all()} == {kind}
    assert events(kind) == ["firing", "firing"]  # one per channel


def test_burn_rate_fires_when_both_windows_burn(chat: Receiver) -> None:
    burn = {
        "burn_fast": {"long": 20.0, "short": 30.0, "factor": 14.4, "long_s": 3600, "short_s": 300},
        "burn_slow": {"long": 20.0, "short": 1.0, "factor": 6.0, "long_s": 21600, "short_s": 1800},
    }
    evaluate_once(now=T0, measures=measures(objective={"burn": burn}))
    assert {n.rule_kind for n in Notification.objects.all()} == {"burn_fast"}  # burn_slow's short window is calm


def test_firing_reminder_resolved_reach_both_webhooks(chat: Receiver) -> None:
    fault = {"listener": {"state": "dead"}}
    for minutes, readings in [(0, fault), (1, fault), (11, fault), (12, {})]:
        now = T0 + timedelta(minutes=minutes)
        evaluate_once(now=now, measures=measures(now, **readings))
    assert events("listener_down") == ["firing"] * 2 + ["reminder"] * 2 + ["resolved"] * 2
    texts = [b["text"] for b in chat.received("/chat")]
    assert [t.split("]")[0] for t in texts] == ["[FIRING", "[STILL FIRING", "[RESOLVED"]
    assert set(chat.received("/chat")[0]) == {"path", "text"}  # what Slack and Google Chat accept
    generic = chat.received("/generic")
    assert [(b["rule"], b["event"]) for b in generic] == [
        ("listener_down", "firing"),
        ("listener_down", "reminder"),
        ("listener_down", "resolved"),
    ]
    assert generic[0]["detail"] == "the listener is dead" and generic[-1]["firing_since"].startswith("2026-11-30T12:00")
    assert Notification.objects.filter(status="sent").count() == 6


def test_a_duration_holds_back_the_firing(chat: Receiver) -> None:
    Rule.objects.filter(kind="no_workers").update(for_s=60)
    for seconds in (0, 30, 60):
        now = T0 + timedelta(seconds=seconds)
        evaluate_once(now=now, measures=measures(now, workers_live=0))
        assert events("no_workers") == ([] if seconds < 60 else ["firing", "firing"])


def test_email_goes_through_djangos_mail(db: Any) -> None:
    Channel.objects.create(kind=Channel.Kind.EMAIL, target="ops@example.com, oncall@example.com")
    rules_ensure()
    Rule.objects.update(for_s=0)
    evaluate_once(now=T0, measures=measures(workers_live=0))
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com", "oncall@example.com"]
    assert mail.outbox[0].subject.startswith("[FIRING] No live worker")


def test_a_restarted_evaluator_sends_nothing_twice(chat: Receiver) -> None:
    """The state is in the database: a fresh evaluation (a new process) sees the rule already firing."""
    fault = {"listener": {"state": "dead"}}
    evaluate_once(now=T0, measures=measures(**fault))
    for seconds in (5, 10, 40):  # "restarts": nothing but the database carries over
        now = T0 + timedelta(seconds=seconds)
        evaluate_once(now=now, measures=measures(now, **fault))
    assert len(chat.received()) == 2 and events() == ["firing", "firing"]


def test_a_decision_made_before_a_crash_is_delivered_after_it_once(chat: Receiver) -> None:
    rule = Rule.objects.get(kind="no_workers")
    check = SPECS["no_workers"].check(measures(workers_live=0), rule)
    evaluate.rule_evaluate(rule, check, now=T0)  # decided and committed; the process "dies" before delivering
    assert chat.received() == [] and set(Notification.objects.values_list("status", flat=True)) == {"pending"}
    assert deliver_pending() == 2
    assert deliver_pending() == 0
    assert len(chat.received()) == 2


def test_a_failing_webhook_is_retried_then_given_up(chat: Receiver) -> None:
    chat.status = 500
    evaluate_once(now=T0, measures=measures(workers_live=0))
    for _ in range(MAX_ATTEMPTS):
        deliver_pending()
    statuses = set(Notification.objects.values_list("status", flat=True))
    assert statuses == {"failed"} and Notification.objects.first().error.endswith("HTTP 500 from the webhook")
    assert len(chat.received()) == 2 * MAX_ATTEMPTS


def test_an_unreadable_measure_neither_fires_nor_resolves(chat: Receiver) -> None:
    evaluate_once(now=T0, measures=measures(workers_live=0))

    class Broken(Measures):
        @property
        def workers_live(self) -> int:  # type: ignore[override]
            raise ConnectionError("redis away")

    broken = Broken(T0 + timedelta(minutes=1))
    for name, value in HEALTHY.items():
        if name != "workers_live":
            setattr(broken, name, value)
    evaluate_once(now=T0 + timedelta(minutes=1), measures=broken)
    assert Rule.objects.get(kind="no_workers").firing and events("no_workers") == ["firing", "firing"]


def test_no_channel_is_recorded_as_such(db: Any) -> None:
    rules_ensure()
    Rule.objects.update(for_s=0)
    evaluate_once(now=T0, measures=measures(workers_live=0))
    assert list(Notification.objects.values_list("event", "status")) == [("firing", "no_channel")]


def test_a_disabled_rule_is_not_evaluated(chat: Receiver) -> None:
    Rule.objects.filter(kind="no_workers").update(enabled=False)
    evaluate_once(now=T0, measures=measures(workers_live=0))
    assert events() == []


# --- selectors on the stack --------------------------------------------------------------------------------------------


def test_oldest_queued_job_and_live_workers_on_the_stack(cfg: Any, stack: Any, settings: Any) -> None:
    # A queue of its own: the session's pipeline workers (started by other tests) serve the shared one.
    cfg = dataclasses.replace(cfg, queue_name=f"alerts-{uuid.uuid4().hex[:8]}")
    settings.SIGHTLINE = cfg
    q = queue(cfg)
    job = q.enqueue("classifier.jobs.classify_object", bucket="b", name=f"t-{uuid.uuid4().hex}", generation=1)
    try:
        age = selectors.queue_oldest_age_s(now=datetime.now(UTC) + timedelta(seconds=100))
        assert age is not None and 99 <= age < 200
    finally:
        job.delete()
    assert selectors.workers_live(idle_stale_s=30, busy_stale_s=180) == 0  # no worker serves this queue
    assert ledger.connection(cfg).ping()


# --- pages -------------------------------------------------------------------------------------------------------------


def test_viewers_see_the_rules_without_controls_and_get_403_on_writes(viewer: Client) -> None:
    page = viewer.get(reverse("alerts:settings"))
    assert page.status_code == 200 and b"Failure rate over 15 minutes" in page.content
    assert b"Save rules" not in page.content and b"Send test" not in page.content
    for name, kwargs in [("rules_save", {}), ("channel_add", {}), ("channel_delete", {"pk": 1}), ("send_test", {})]:
        assert viewer.post(reverse(f"alerts:{name}", kwargs=kwargs)).status_code == 403, name
    assert viewer.get(reverse("alerts:history")).status_code == 200


def test_staff_edit_rules_add_a_channel_send_a_test_and_see_it_in_the_history(
    staff: Client,
    receiver: Receiver,  # noqa: F811
) -> None:
    form = {}
    for rule in rules_ensure():
        form |= {
            f"{rule.kind}-enabled": "on",
            f"{rule.kind}-threshold": "" if rule.threshold is None else str(rule.threshold),
            f"{rule.kind}-for_s": "0",
            f"{rule.kind}-reminder_minutes": "15",
        }
    form["failure_rate-threshold"] = "2.5"
    del form["dead_letters-enabled"]
    assert staff.post(reverse("alerts:rules_save"), form).status_code == 302
    assert Rule.objects.get(kind="failure_rate").threshold == 2.5
    assert not Rule.objects.get(kind="dead_letters").enabled
    bad = staff.post(reverse("alerts:channel_add"), {"kind": "chat", "target": "not a url"}, follow=True)
    assert b"Channel not added" in bad.content and not Channel.objects.exists()
    staff.post(reverse("alerts:channel_add"), {"kind": "chat", "target": receiver.url + "/hook"})
    done = staff.post(reverse("alerts:send_test"), follow=True)
    assert b"Test sent to" in done.content
    assert receiver.received("/hook")[0]["text"].startswith("[TEST] Sightline alerts")
    history = staff.get(reverse("alerts:history"))
    assert b"[TEST] Sightline alerts" in history.content and b"sent" in history.content
    channel = Channel.objects.get()
    assert staff.post(reverse("alerts:channel_delete", kwargs={"pk": channel.pk})).status_code == 302
    assert not Channel.objects.exists()


# --- the objective -----------------------------------------------------------------------------------------------------


def test_the_objective_counts_late_rows_and_failures_as_bad(cfg: Any, stack: Any) -> None:
    from controlplane.alerts import objective
    from tests.helpers import insert_failure, insert_row

    before = objective.objective_status(fresh=True)
    folder = f"t-{uuid.uuid4().hex[:8]}/"
    now = datetime.now(UTC)  # each row processed now, as a worker stamps it (not ten minutes in the future)
    insert_row(cfg, folder + "fast-1.png", [("tabby", 0.9)], upload=now - timedelta(seconds=2), latency_s=2)
    insert_row(cfg, folder + "fast-2.png", [("tabby", 0.9)], upload=now - timedelta(seconds=3), latency_s=3)
    insert_row(cfg, folder + "late.png", [("tabby", 0.9)], upload=now - timedelta(seconds=600), latency_s=600)
    insert_failure(cfg, folder + "bad.txt")
    after = objective.objective_status(fresh=True)
    assert after["uploads"] - before["uploads"] == 4
    assert after["good"] - before["good"] == 2
    fast = after["burn"]["burn_fast"]
    assert fast["short"] is not None and fast["short"] > 0  # the 5-minute window saw the late row and the failure


def test_the_dashboard_shows_the_error_budget_and_firing_alerts(viewer: Client, stack: Any) -> None:
    rules_ensure()
    Rule.objects.filter(kind="no_workers").update(firing=True)
    page = viewer.get(reverse("dashboard"))
    assert page.status_code == 200
    text = page.content.decode()
    assert "Error budget" in text and "of uploads a row within 60 s over 30 days" in text
    assert "1 alert firing" in text


# --- the process -------------------------------------------------------------------------------------------------------


def test_runalerts_evaluates_refuses_a_second_and_stops_cleanly_on_sigterm(cfg: Any, stack: Any, tmp_path: Any) -> None:
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from devstack import localstack

    manage = str(Path(__file__).resolve().parent.parent / "manage.py")
    env = localstack.app_env(cfg) | {"DATABASE_PATH": str(tmp_path / "alerts.sqlite3")}
    subprocess.run([sys.executable, manage, "migrate", "--noinput", "-v", "0"], env=env, check=True, timeout=120)
    service = localstack.alerts_service(cfg, env, every_s=1)
    service.log_path = tmp_path / "alerts.log"
    service.start()
    assert service.proc is not None
    try:
        assert wait_for(lambda: "evaluating alert rules every 1 s" in service.log_tail(), timeout=60), (
            service.log_tail()
        )
        time.sleep(3)  # a few evaluations
        second = subprocess.run(
            [sys.executable, manage, "runalerts", "--every", "1"], env=env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode != 0 and "another runalerts is already evaluating" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        os.killpg(service.proc.pid, signal.SIGTERM)
        assert service.proc.wait(15) == 0, service.log_tail()
    finally:
        service.stop()
    count = "from controlplane.alerts.models import Rule; q = Rule.objects; print(q.exclude(evaluated_at=None).count(), q.count())"
    out = subprocess.run([sys.executable, manage, "shell", "-c", count], env=env, capture_output=True, text=True)
    evaluated, total = map(int, out.stdout.split()[-2:])
    assert evaluated == total == len(SPECS), service.log_tail(30)  # every rule could read what it needs
    assert "Traceback" not in service.log_tail(200)
