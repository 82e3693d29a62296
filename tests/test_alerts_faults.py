"""Acceptance: real faults on a private local stack, with `manage.py runalerts` as a real process (every 2 s, its own
database) and a local webhook receiver. Stop the listener, kill every worker, upload a burst of undecodable files:
each sends exactly one "firing" within 60 s and one "resolved" after recovery (the process back; for the burst, good
uploads outnumbering it); restarting the alert process in between sends nothing twice.

Like tests/test_faults.py, this runs beside the session stack on one of its own: it kills the pipeline's processes,
and its failure rate must not be diluted by other tests' rows.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from classifier import listener
from classifier.cloud import gcs
from classifier.config import Config
from controlplane import selectors
from devstack import localstack
from tests.alert_support import Receiver
from tests.helpers import png, private_stack, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
EVERY_S = 2
WATCHED = ("listener_down", "no_workers", "failure_rate")
SETUP = """
from controlplane.alerts.models import Channel, Rule
from controlplane.alerts.rules import rules_ensure
rules_ensure()
Rule.objects.update(reminder_minutes=0)
Rule.objects.filter(kind__in=["listener_down", "no_workers"]).update(for_s=0)
Rule.objects.filter(kind="failure_rate").update(threshold=50)
Channel.objects.create(kind="webhook", target="{url}/generic")
Channel.objects.create(kind="chat", target="{url}/chat")
"""


@dataclass
class Alerting:
    cfg: Config
    env: dict[str, str]
    stack: localstack.Stack
    listener: localstack.Service
    worker: localstack.Service
    alerts: localstack.Service
    receiver: Receiver

    def sent(self, kind: str, event: str) -> list[dict[str, Any]]:
        return [b for b in self.receiver.received("/generic") if b["rule"] == kind and b["event"] == event]

    def wait_sent(self, kind: str, event: str, *, within_s: float) -> float:
        started = time.monotonic()
        assert wait_for(lambda: self.sent(kind, event), timeout=within_s, every=0.5), (
            f"no {event} for {kind} within {within_s:.0f} s; alert log:\n{self.alerts.log_tail(30)}"
        )
        return time.monotonic() - started

    def restart_alerts_and_check_nothing_repeats(self) -> None:
        """A new rule may fire meanwhile (the burn rates after the burst); what was announced is not announced again."""
        sent = self.receiver.received("/generic")
        before = {(b["rule"], b["event"]) for b in sent}
        self.alerts.stop()
        self.alerts.start()
        time.sleep(4 * EVERY_S + 4)  # several evaluations by the new process (Django start-up included)
        again = [b for b in self.receiver.received("/generic")[len(sent) :] if (b["rule"], b["event"]) in before]
        assert again == [], f"the restarted alert process sent again: {again}"


def _worker_live(cfg: Config) -> bool:
    with override_settings(SIGHTLINE=cfg):
        return selectors.workers_live(idle_stale_s=30, busy_stale_s=180) > 0


def _listener_running(cfg: Config) -> bool:
    with override_settings(SIGHTLINE=cfg):
        return selectors.listener_status()["state"] == "running"


def _manage(env: dict[str, str], *args: str) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.fixture(scope="module")
def alerting(stack: Any) -> Iterator[Alerting]:  # the session stack starts first, this one beside it
    private = private_stack("alerts")
    cfg, running = private.cfg, private.stack
    app_env = private.app_env | {"DATABASE_PATH": str(Path(private.data_dir) / "alerts.sqlite3")}
    receiver = Receiver()
    _manage(app_env, "migrate", "--noinput", "-v", "0")
    _manage(app_env, "shell", "-c", SETUP.format(url=receiver.url))
    f = Alerting(
        cfg=cfg,
        env=app_env,
        stack=running,
        listener=localstack.listener_service(cfg, app_env),
        worker=localstack.worker_service(cfg, app_env),
        alerts=localstack.alerts_service(cfg, app_env, every_s=EVERY_S),
        receiver=receiver,
    )
    f.listener.start()
    f.worker.start()
    assert wait_for(lambda: _worker_live(cfg) and _listener_running(cfg), timeout=120, every=1), f.worker.log_tail()
    f.alerts.start()
    yield f
    for service in (f.alerts, f.listener, f.worker):
        service.stop()
    receiver.close()
    running.stop()


def _undecodable() -> bytes:
    """A PNG cut short: Pillow identifies it, then cannot decode it."""
    return png((300, 200))[:120]


def test_each_fault_fires_once_within_a_minute_and_resolves_once(alerting: Alerting) -> None:
    f = alerting
    time.sleep(3 * EVERY_S)
    assert [b for b in f.receiver.received("/generic") if b["rule"] in WATCHED] == [], "a healthy pipeline alerted"

    # 1. The listener process dies (SIGKILL: no goodbye heartbeat; it goes stale after 10 s).
    f.listener.kill(signal.SIGKILL)
    took = f.wait_sent("listener_down", "firing", within_s=60)
    print(f"listener killed: firing after {took:.0f} s")
    f.restart_alerts_and_check_nothing_repeats()
    f.listener.start()
    f.wait_sent("listener_down", "resolved", within_s=60)

    # 2. Every worker killed.
    f.worker.kill(signal.SIGKILL)
    took = f.wait_sent("no_workers", "firing", within_s=60)
    print(f"workers killed: firing after {took:.0f} s")
    f.restart_alerts_and_check_nothing_repeats()
    f.worker.start()
    f.wait_sent("no_workers", "resolved", within_s=120)

    # 3. A burst of undecodable uploads: each becomes a failure record, and the failure rate crosses 10%.
    names = [f"burst/{i:02d}.png" for i in range(8)]
    for name in names:
        gcs.upload(f.cfg, name=name, data=_undecodable(), content_type="image/png")
    took = f.wait_sent("failure_rate", "firing", within_s=60)
    print(f"undecodable burst: firing after {took:.0f} s")
    f.restart_alerts_and_check_nothing_repeats()
    # Recovery: good uploads flow again and outnumber the bad ones in the 15-minute window (the rate is what the
    # workers recorded as they wrote, so dismissing the records does not rewrite it).
    for i in range(len(names) + 4):
        gcs.upload(f.cfg, name=f"good/{i:02d}.png", data=png((64, 48), (i * 20, 120, 40)), content_type="image/png")
    f.wait_sent("failure_rate", "resolved", within_s=90)

    time.sleep(2 * EVERY_S)
    generic = f.receiver.received("/generic")
    counts = Counter((b["rule"], b["event"]) for b in generic)
    for kind in WATCHED:
        assert counts[(kind, "firing")] == 1 and counts[(kind, "resolved")] == 1, (kind, counts)
    assert max(counts.values()) == 1, f"something was sent twice: {counts}"
    chat = f.receiver.received("/chat")
    assert len(chat) == len(generic) and all(set(b) == {"path", "text"} for b in chat)
    assert listener.HEARTBEAT_KEY  # the listener module is the one whose heartbeat the rule reads
