"""Reads. Every query is parameterised; table ids come from validated settings, never from requests."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from classifier.cloud import bigquery
from classifier.model import resolve_model_name


def pipeline_identity() -> dict[str, Any]:
    cfg = settings.SIGHTLINE
    return {
        "project": cfg.project,
        "bucket": cfg.bucket,
        "table": cfg.table_id,
        "model": resolve_model_name(cfg),
        "local": cfg.local,
    }


def classification_list_recent(*, limit: int = 50) -> list[dict[str, Any]]:
    cfg = settings.SIGHTLINE
    sql = (
        "SELECT image_name, upload, classifications, bucket, generation, content_type, size_bytes, model, processed_at "
        f"FROM `{cfg.table_id}` ORDER BY processed_at DESC LIMIT @limit"
    )
    rows = bigquery.query(cfg, sql, [bigquery.param("limit", "INT64", limit)])
    for row in rows:
        row["latency_s"] = (row["processed_at"] - row["upload"]).total_seconds() if row["upload"] else None
    return rows


def failure_list_recent(*, limit: int = 50) -> list[dict[str, Any]]:
    cfg = settings.SIGHTLINE
    sql = (
        "SELECT image_name, upload, bucket, generation, content_type, size_bytes, reason_code, reason, attempts, failed_at "
        f"FROM `{cfg.failures_table_id}` ORDER BY failed_at DESC LIMIT @limit"
    )
    return bigquery.query(cfg, sql, [bigquery.param("limit", "INT64", limit)])
