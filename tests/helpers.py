"""Helpers the tests share: waiting on the pipeline, reading its rows and failures, writing fixtures into it.

Fixtures live in conftest.py; plain functions live here, so no test module imports another.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image
from rq.job import Job
from rq.serializers import JSONSerializer

from classifier import ledger, stats
from classifier.cloud import bigquery
from classifier.config import Config

# The attributes of an upload's notification, as Cloud Storage (and fake-gcs-server) send them.
FINALIZE = {
    "eventType": "OBJECT_FINALIZE",
    "payloadFormat": "JSON_API_V1",
    "bucketId": "b",
    "objectId": "dir/with space/çat.png",
    "objectGeneration": "1795603288518325",
    "eventTime": "2026-11-25T10:41:28.123Z",
}


def wait_for(check: Callable[[], Any], *, timeout: float = 30, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every)


def wait_for_all(fetch: Callable[[], dict[str, list[Any]]], *, timeout: float = 30) -> dict[str, list[Any]]:
    """Poll until every key has at least one entry; returns the last fetch either way."""
    last: dict[str, list[Any]] = {}

    def check() -> bool:
        nonlocal last
        last = fetch()
        return all(last.values())

    wait_for(check, timeout=timeout)
    return last


def _by_name(cfg: Config, table_id: str, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Rows of `table_id` by image name: a list, so a doubled row shows as two."""
    sql = f"SELECT * FROM `{table_id}` WHERE image_name IN UNNEST(@names)"
    found: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for row in bigquery.query(cfg, sql, [bigquery.array_param("names", "STRING", names)]):
        found[row["image_name"]].append(row)
    return found


def rows_for(cfg: Config, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    return _by_name(cfg, cfg.table_id, names)


def failures_for(cfg: Config, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    return _by_name(cfg, cfg.failures_table_id, names)


def insert_row(
    cfg: Config,
    name: str,
    labels: list[tuple[str, float]],
    *,
    generation: int | None = None,
    upload: datetime | None = None,
    latency_s: float = 2.0,
) -> dict[str, Any]:
    upload = upload or datetime.now(UTC)
    generation = generation or int(time.time() * 1e6)
    row = {
        "image_name": name,
        "upload": upload.isoformat(),
        "classifications": [{"classification": label, "confidence": c} for label, c in labels],
        "bucket": cfg.bucket,
        "generation": generation,
        "content_type": "image/png",
        "size_bytes": 10,
        "model": "efficientnet_lite0 (test)",
        "processed_at": (upload + timedelta(seconds=latency_s)).isoformat(),
    }
    bigquery.insert_row(cfg, cfg.table_id, row, row_id=uuid.uuid4().hex)
    stats.record(ledger.connection(cfg), rows=[row])  # as a worker does when it writes
    return row


def insert_failure(
    cfg: Config, name: str, *, generation: int | None = None, code: str = "not_an_image"
) -> dict[str, Any]:
    generation = generation or int(time.time() * 1e6)
    row = {
        "image_name": name,
        "upload": datetime.now(UTC).isoformat(),
        "bucket": cfg.bucket,
        "generation": generation,
        "content_type": "text/plain",
        "size_bytes": 5,
        "reason_code": code,
        "reason": f"reason for {name}",
        "attempts": 1,
        "model": "test",
        "failed_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
    }
    bigquery.insert_row(cfg, cfg.failures_table_id, row, row_id=uuid.uuid4().hex)
    stats.record(ledger.connection(cfg), failures=[row])
    ledger.outcome_set(ledger.connection(cfg), ledger.object_key(cfg.bucket, name, generation), f"failure:{code}")
    return row


def png(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def drop_jobs(cfg: Config, job_ids: list[str]) -> None:
    """Leave no queued job behind: a worker in a later test must not meet this test's objects."""
    redis = ledger.connection(cfg)
    for job_id in job_ids:
        if Job.exists(job_id, redis):
            Job.fetch(job_id, connection=redis, serializer=JSONSerializer).delete()


def run_background_job(cfg: Config, job_id: str) -> Any:
    """What the rq worker does with a background job (requeue all, a delete retry), here and now."""
    job = Job.fetch(job_id, connection=ledger.connection(cfg), serializer=JSONSerializer)
    return job.perform()
