"""ops/prometheus/sightline-rules.yml: valid rules, one per built-in alert rule, on metrics that /metrics exports."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from classifier.config import Config
from controlplane import metrics
from controlplane.alerts.rules import SPECS

RULES = Path(__file__).resolve().parent.parent / "ops" / "prometheus" / "sightline-rules.yml"
TOKEN = "test-metrics-token-rules-0123456789"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")
NOT_IN_PROMETHEUS = {"dead_letters": "no /metrics name: Cloud Monitoring has the dead-letter backlog"}


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def _family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_every_rule_is_well_formed() -> None:
    for rule in _rules():
        assert rule["alert"].startswith("Sightline") and rule["expr"].strip()
        assert rule["labels"]["severity"] in ("page", "ticket") and rule["annotations"]["summary"]
        assert "for" not in rule or re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


def test_every_built_in_rule_has_a_prometheus_twin() -> None:
    named = {rule["labels"]["rule"] for rule in _rules()}
    assert named == set(SPECS) - set(NOT_IN_PROMETHEUS)


@pytest.fixture
def exported(client: Client, cfg: Config, stack: Any) -> set[str]:
    metrics.cache_clear()
    with override_settings(SIGHTLINE=dataclasses.replace(cfg, metrics_token=TOKEN)):
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    metrics.cache_clear()
    assert response.status_code == 200, response.content
    return {f.name for f in text_string_to_metric_families(response.content.decode())}


def test_every_metric_the_rules_name_is_exported(exported: set[str]) -> None:
    named = {m for rule in _rules() for m in re.findall(r"\bsightline_[a-z0-9_]+", rule["expr"])}
    assert len(named) >= 10
    missing = sorted(m for m in named if _family(m) not in exported)
    assert not missing, f"named in {RULES.name} but not exported by /metrics: {missing}"
