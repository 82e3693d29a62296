"""One row per object generation per model: the delivery keys, the routing of a model's jobs, the refusal of another
model's job, and the schema's new column as an additive change. Pure logic: no Redis, no emulator."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from redis import Redis
from rq.job import Job

from classifier import jobs, ledger, reprocess
from classifier.cloud import bigquery
from classifier.queue import queue_mismatch, queue_name, routed_model
from controlplane.infra import spec as s
from controlplane.infra.changes import UPDATE
from controlplane.infra.kinds import KINDS

KEY = "sightline-images/photos/a@b#c.png#1732950000000000"


def test_the_live_models_keys_are_those_of_before():
    """Ledger entries, job ids and row ids written before per-model keys stay valid for the live model."""
    assert ledger.model_key(KEY, None) == KEY
    before = f"classify-{hashlib.sha256(KEY.encode()).hexdigest()[:32]}"
    assert jobs.job_id("sightline-images", "photos/a@b#c.png", 1732950000000000) == before


def test_another_models_key_is_its_own_and_reads_back():
    keyed = ledger.model_key(KEY, "resnet50")
    assert keyed == KEY + "@resnet50"
    assert ledger.split_model(keyed) == (KEY, "resnet50")
    assert ledger.split_model(KEY) == (KEY, None)  # "@" in a name is not a model: only after the last "#"
    assert ledger.parse_key(keyed) == ("sightline-images", "photos/a@b#c.png", 1732950000000000)
    assert jobs.job_id("sightline-images", "photos/a@b#c.png", 1732950000000000, "resnet50") != jobs.job_id(
        "sightline-images", "photos/a@b#c.png", 1732950000000000
    )
    with pytest.raises(ValueError):
        ledger.model_key(KEY, "resnet50#2")


def test_a_models_jobs_go_to_its_own_queue_and_the_live_models_to_the_live_one():
    cfg = dataclasses.replace(settings.SIGHTLINE, model="efficientnet_lite0")
    assert queue_name(cfg) == queue_name(cfg, "efficientnet_lite0") == cfg.queue_name
    assert routed_model(cfg, "efficientnet_lite0") is None
    assert queue_name(cfg, "resnet50") == f"{cfg.queue_name}-resnet50"


def test_a_worker_refuses_another_models_queue_at_start():
    cfg = dataclasses.replace(settings.SIGHTLINE, model="resnet50")
    assert queue_mismatch(cfg, [f"{cfg.queue_name}-resnet50"]) is None
    assert queue_mismatch(cfg, [cfg.queue_name]) is None
    assert "another model's" in (queue_mismatch(cfg, [f"{cfg.queue_name}-efficientnet_lite0"]) or "")


def test_a_job_for_another_model_is_refused():
    unused = Redis()  # rq wants a connection to build a job; nothing is sent
    job = Job.create(
        "classifier.jobs.classify_object", kwargs={"bucket": "b", "name": "n", "generation": 1}, connection=unused
    )
    assert jobs.model_refusal(job, "efficientnet_lite0") is None  # a live job: the live queue's model
    job = Job.create(
        "classifier.jobs.classify_object",
        kwargs={"bucket": "b", "name": "n", "generation": 1, "model": "resnet50"},
        connection=unused,
    )
    assert jobs.model_refusal(job, "resnet50") is None
    assert "for model resnet50" in (jobs.model_refusal(job, "efficientnet_lite0") or "")


def test_inference_ms_is_an_additive_nullable_column():
    spec = s.stack_spec(cfg=settings.SIGHTLINE)
    r = next(r for r in spec.resources if r.kind == s.TABLE)  # the first table is the classifications'
    assert r.attrs["schema"] == bigquery.CLASSIFICATIONS_SCHEMA
    field = next(f for f in bigquery.CLASSIFICATIONS_SCHEMA if f.name == "inference_ms")
    assert (field.field_type, field.mode) == ("FLOAT", "NULLABLE")
    before = [f for f in bigquery.CLASSIFICATIONS_SCHEMA if f.name != "inference_ms"]
    live = bigquery.TableLive(schema=before, shape=r.attrs["shape"])
    (change,) = KINDS[r.kind].diff(spec, r, live)
    assert (change.action, change.details) == (UPDATE, ("missing field inference_ms (FLOAT, NULLABLE): will be added",))


def test_a_selection_is_bounded():
    now = datetime.now(UTC)
    with pytest.raises(ValueError, match="at most"):
        reprocess.Selection(model="resnet50", bucket="b", since=now - timedelta(days=40), until=now)
    with pytest.raises(ValueError):
        reprocess.Selection(model="resnet50", bucket="b", since=now, until=now - timedelta(hours=1))
    with pytest.raises(ValueError, match="model"):
        reprocess.Selection(model="../x", bucket="b", since=now - timedelta(hours=1), until=now)
