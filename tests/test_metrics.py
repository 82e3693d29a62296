"""/metrics: off without METRICS_TOKEN (404), 401 without the bearer token, Prometheus text with it."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from classifier.config import Config
from controlplane import metrics
from tests.helpers import insert_failure, insert_row

TOKEN = "test-metrics-token-0123456789abcdef"


@pytest.fixture
def with_token(cfg: Config, stack: Any) -> Any:
    metrics.cache_clear()
    with override_settings(SIGHTLINE=dataclasses.replace(cfg, metrics_token=TOKEN)):
        yield
    metrics.cache_clear()


def test_off_without_a_token_setting(client: Client, cfg: Config) -> None:
    with override_settings(SIGHTLINE=dataclasses.replace(cfg, metrics_token=None)):
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything-at-all-0123456789").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-wrong-token-wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_a_missing_or_wrong_token_is_401(client: Client, with_token: Any, header: str | None) -> None:
    response = client.get("/metrics", **({"HTTP_AUTHORIZATION": header} if header else {}))
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")


def test_exposes_throughput_latency_queue_and_failures(client: Client, cfg: Config, with_token: Any) -> None:
    folder = f"t-{uuid.uuid4().hex[:8]}/"
    for latency in (0.3, 1.5, 7.0):
        insert_row(cfg, f"{folder}{latency}.png", [("tabby", 0.5)], latency_s=latency)
    insert_failure(cfg, folder + "bad.txt")
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    for name in (
        "sightline_classifications",
        "sightline_upload_to_row_seconds",
        "sightline_throughput_rows_per_minute",
        "sightline_failures",
        "sightline_queue_depth",
        "sightline_workers",
        "sightline_listener_state",
        "sightline_redis_used_memory_bytes",
        "sightline_redis_memory_alert_bytes",
        "sightline_redis_records",
        "sightline_queue_bound",
        "sightline_queue_waiting",
    ):
        assert name in families, name
    assert families["sightline_redis_used_memory_bytes"].samples[0].value > 0
    assert families["sightline_redis_memory_alert_bytes"].samples[0].value == cfg.redis_memory_alert_mb * 2**20
    kinds = {s.labels["kind"] for s in families["sightline_redis_records"].samples}
    assert {"jobs_waiting", "finished_jobs_kept", "ledger_outcomes"} <= kinds
    total = families["sightline_classifications"].samples[0].value
    hist = {
        s.labels.get("le"): s.value for s in families["sightline_upload_to_row_seconds"].samples if "le" in s.labels
    }
    assert total >= 3 and hist["+Inf"] == total
    assert hist["0.5"] >= 1 and hist["2.0"] >= hist["0.5"] + 1 and hist["10.0"] >= hist["2.0"] + 1
    assert families["sightline_failures"].samples[0].value >= 1
    assert families["sightline_throughput_rows_per_minute"].samples[0].value > 0
