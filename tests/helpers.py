"""Helpers the tests share: waiting on the pipeline, reading its rows and failures, writing fixtures into it.

Fixtures live in conftest.py; plain functions live here, so no test module imports another.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from PIL import Image
from rq.job import Job
from rq.serializers import JSONSerializer

from classifier import ledger, stats
from classifier.cloud import bigquery, gcs, pubsub
from classifier.config import Config
from devstack import localstack

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


HOST_VARS = ("STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST")


@contextlib.contextmanager
def emulator_env(cfg: Config) -> Iterator[None]:
    """The official clients read the emulator hosts when they are built: build this stack's while they point here."""
    saved = {n: os.environ.get(n) for n in HOST_VARS}
    os.environ.update(
        {
            "STORAGE_EMULATOR_HOST": cfg.storage_emulator_host or "",
            "PUBSUB_EMULATOR_HOST": cfg.pubsub_emulator_host or "",
            "BIGQUERY_EMULATOR_HOST": cfg.bigquery_emulator_host or "",
        }
    )
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class PrivateStack:
    cfg: Config
    stack: localstack.Stack
    app_env: dict[str, str]  # what this stack's listener, workers and manage.py run with
    data_dir: str


def private_stack(name: str, *, ack_deadline_s: int | None = None) -> PrivateStack:
    """A local stack of its own beside the session's (fresh ports, data dir, bucket `sightline-<name>`, Redis), for
    tests that kill its processes or must not share its rows. One worker with one torch thread: the session's own
    worker keeps a core. `ack_deadline_s`: the subscription's, when a test needs redelivery sooner than a minute.
    Skips the test when the stack cannot start; the caller stops it."""
    data_dir = tempfile.mkdtemp(prefix=f"sightline-{name}-")
    env = dict(os.environ) | localstack.free_endpoints()
    env |= {"SIGHTLINE_DATA_DIR": data_dir, "BUCKET_NAME": f"sightline-{name}", "WORKERS": "1"}
    cfg = Config.from_env(env)
    with emulator_env(cfg):
        gcs.client(cfg), bigquery.client(cfg), pubsub.publisher(cfg), pubsub.subscriber(cfg)
    saved_deadline = pubsub.ACK_DEADLINE_S
    pubsub.ACK_DEADLINE_S = ack_deadline_s or saved_deadline
    try:
        running = localstack.start(cfg)
    except localstack.StackError as exc:
        pytest.skip(f"local stack unavailable: {exc}")
    finally:
        pubsub.ACK_DEADLINE_S = saved_deadline
    ledger.trust(ledger.connection(cfg))
    app_env = localstack.app_env(cfg) | {k: env[k] for k in ("REDIS_URL", "SIGHTLINE_DATA_DIR", "BUCKET_NAME")}
    app_env |= {"WORKERS": "1", "TORCH_THREADS": "1"}
    return PrivateStack(cfg=cfg, stack=running, app_env=app_env, data_dir=data_dir)
