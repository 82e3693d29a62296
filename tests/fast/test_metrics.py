"""/metrics' exposition of one snapshot: every family, workers by state, the listener's state as one-hot."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controlplane import metrics

SNAPSHOT: dict[str, Any] = {
    "totals": {"rows": 3, "failures": 1, "sum_s": 8.8, "buckets": [("0.5", 1), ("2.0", 2), ("10.0", 3), ("+Inf", 3)]},
    "throughput": {"rows": 3, "per_minute": 0.6, "failed": 1},
    "failures": 2,
    "oldest_job_s": 1.5,
    "workers_live": 3,
    "queue": {
        "depth": 4,
        "taken": 5,
        "waiting": 5,
        "bound": 64,
        "workers": [{}, {}, {}, {}],
        "workers_alive": 3,
        "workers_busy": 1,
        "workers_dead": 1,
        "failed": 0,
        "refused": 2,
    },
    "listener": {"state": "paused", "received": 9},
    "memory": {
        "used_bytes": 3_000_000,
        "alert_bytes": 1536 * 2**20,
        "keys": 120,
        "kinds": {"jobs waiting": 5, "finished jobs kept": 40, "ledger outcomes": 900},
    },
    "backlog": {"undelivered": None, "detail": "the emulator", "held_back": True},
}


def test_a_snapshot_becomes_prometheus_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "snapshot", lambda: SNAPSHOT)  # the reads from Redis (and the shared failure count)
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    value = {name: family.samples[0].value for name, family in families.items()}
    assert value["sightline_classifications"] == 3 and value["sightline_failures"] == 2
    assert value["sightline_queue_depth"] == 4 and value["sightline_throughput_rows_per_minute"] == 0.6
    assert value["sightline_listener_messages_received"] == 9
    workers = {s.labels["state"]: s.value for s in families["sightline_workers"].samples}
    assert workers == {"busy": 1, "idle": 2, "dead": 1}
    assert value["sightline_jobs_taken"] == 5 and value["sightline_refused_jobs"] == 2
    states = {s.labels["state"]: s.value for s in families["sightline_listener_state"].samples}
    assert states == {"running": 0, "paused": 1, "reconnecting": 0, "stopped": 0, "dead": 0}
    hist = {s.labels["le"]: s.value for s in families["sightline_upload_to_row_seconds"].samples if "le" in s.labels}
    assert hist == {"0.5": 1, "2.0": 2, "10.0": 3, "+Inf": 3}


def test_redis_memory_the_bound_and_the_backlog_are_exposed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "snapshot", lambda: SNAPSHOT)
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    value = {name: family.samples[0].value for name, family in families.items()}
    assert value["sightline_redis_used_memory_bytes"] == 3_000_000
    assert value["sightline_redis_memory_alert_bytes"] == 1536 * 2**20
    assert (value["sightline_queue_waiting"], value["sightline_queue_bound"]) == (5, 64)
    assert value["sightline_listener_held_back"] == 1
    records = {s.labels["kind"]: s.value for s in families["sightline_redis_records"].samples}
    assert records == {"jobs_waiting": 5, "finished_jobs_kept": 40, "ledger_outcomes": 900}
    assert "sightline_pubsub_undelivered_messages" not in families  # no figure on the emulator: no sample at all
