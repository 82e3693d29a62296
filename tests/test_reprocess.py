"""Reprocessing with a second model: one row per object generation per model, under repeats and a killed worker.

Two real models: the live one (EfficientNet-Lite0, the session's, in-process and in a live worker process) and
ResNet50 in a worker process of its own, on its own queue (torchvision's architecture; its weights are a seeded
random initialisation saved as the weights file, since no real ResNet50 weights can be fetched offline).
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from classifier import jobs, ledger, reprocess
from classifier.config import Config
from classifier.queue import enqueue_classification, queue
from classifier.worker import ClassifierWorker
from controlplane.models import AuditLog
from devstack import localstack
from tests import contract
from tests.helpers import insert_row, rows_for, wait_for

SECOND = "resnet50"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from torchvision.models import resnet50

    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    torch.save(resnet50().state_dict(), folder / "resnet50-19c8e357.pth")
    return folder


def _second_worker(cfg: Config, models_dir: Path, name: str) -> localstack.Service:
    env = {**localstack.app_env(cfg), "MODELS_DIR": str(models_dir), "INFERENCE_BACKEND": "torch"}
    return localstack.worker_service(cfg, env, name=name, model=SECOND)


@pytest.fixture(scope="module")
def workers(cfg: Config, stack: Any, models_dir: Path) -> Iterator[dict[str, localstack.Service]]:
    """A live worker (it also runs the reprocess steps) and a worker holding the second model."""
    env = localstack.app_env(cfg)
    services = {
        "live": localstack.worker_service(cfg, env, name="reprocess-live-worker"),
        SECOND: _second_worker(cfg, models_dir, "reprocess-resnet-worker"),
    }
    for service in services.values():
        service.start()
    yield services
    for service in services.values():
        service.stop()


@pytest.fixture
def qcfg(cfg: Config, stack: Any) -> Config:
    return contract.quiet(cfg)


def _live_rows(keys: list[str]) -> None:
    """The live model's row of each key, in this process (as the live worker would write it)."""
    for key in keys:
        assert jobs.classify_object(*ledger.parse_key(key))["outcome"] == "row"


def _second(key: str) -> str:
    return ledger.model_key(key, SECOND)


def _enqueue(cfg: Config, key: str, **kwargs: Any) -> tuple[str, bool]:
    bucket, name, generation = ledger.parse_key(key)
    return enqueue_classification(
        cfg, bucket=bucket, name=name, generation=generation, event_time=None, model=SECOND, **kwargs
    )


def _finished(cfg: Config, job_id: str) -> bool:
    job = Job.fetch(job_id, connection=ledger.connection(cfg), serializer=JSONSerializer)
    return job.get_status() == JobStatus.FINISHED


def test_a_second_model_adds_one_row_per_object_never_doubled(cfg, qcfg, workers, photos, prefix):
    keys = [contract.upload(qcfg, f"{prefix}{name}", data) for name, data in photos.items()]
    _live_rows(keys)
    first = [_enqueue(qcfg, key) for key in keys]
    again = [_enqueue(qcfg, key) for key in keys]  # a repeated reprocess while the jobs wait or run
    assert all(created for _, created in first)
    assert again == [(job_id, False) for job_id, _ in first]
    wait_for(lambda: contract.settled(cfg, [_second(k) for k in keys]), timeout=240)
    assert [_enqueue(qcfg, key)[1] for key in keys] == [False] * len(keys)  # done: the ledger says so
    forced = [_enqueue(qcfg, key, force=True)[0] for key in keys]  # even a forced job finds the outcome
    wait_for(lambda: all(_finished(cfg, job_id) for job_id in forced), timeout=240)

    expected = {k: "row" for k in keys} | {_second(k): "row" for k in keys}
    assert contract.violations(cfg, expected) == {}
    rows = rows_for(cfg, [ledger.parse_key(k)[1] for k in keys])
    for name, found in rows.items():
        models = sorted(r["model"].split(" ")[0] for r in found)
        assert models == ["efficientnet_lite0", SECOND], name
        assert all(r["inference_ms"] is not None and r["inference_ms"] > 0 for r in found), name


def test_a_job_for_another_model_is_refused_by_a_worker_holding_the_live_one(cfg, qcfg, photos, prefix):
    """Forged onto the live queue, a ResNet50 job is failed unrun by an EfficientNet worker: no row for either."""
    key = contract.upload(qcfg, f"{prefix}forged.png", photos["coffee.png"])
    lonely = dataclasses.replace(cfg, queue_name=f"forged-{prefix.strip('/')}")
    q = Queue(lonely.queue_name, connection=ledger.connection(cfg), serializer=JSONSerializer)
    bucket, name, generation = ledger.parse_key(key)
    job = q.enqueue(
        jobs.classify_object,
        kwargs={"bucket": bucket, "name": name, "generation": generation, "event_time": None, "model": SECOND},
    )
    ClassifierWorker([q], connection=q.connection).work(burst=True, logging_level="WARNING")
    assert job.get_status() == JobStatus.FAILED
    assert "this worker holds efficientnet_lite0" in (job.latest_result().exc_string or "")
    assert contract.found(cfg, [key, _second(key)]) == {key: [], _second(key): []}


def _rq_held(q: Queue) -> int:
    redis = q.connection
    return int(redis.llen(q.intermediate_queue_key)) + int(redis.zcard(q.started_job_registry.key))


def test_a_second_model_worker_killed_mid_job_still_gives_one_row_per_model(
    cfg, qcfg, workers, models_dir, photos, prefix
):
    keys = [contract.upload(qcfg, f"{prefix}{i}-{name}", data) for i in range(3) for name, data in photos.items()]
    _live_rows(keys)
    killed = workers[SECOND]
    q = queue(cfg, SECOND)
    for key in keys:
        _enqueue(qcfg, key)
    wait_for(lambda: _rq_held(q) > 0, timeout=120, every=0.05)
    killed.kill(signal.SIGKILL)
    replacement = _second_worker(cfg, models_dir, "reprocess-resnet-worker-2")
    replacement.start()
    workers[SECOND] = replacement  # the module fixture stops it
    wait_for(lambda: contract.settled(cfg, [_second(k) for k in keys]), timeout=300)
    wait_for(lambda: _rq_held(q) == 0 and q.count == 0, timeout=120)
    expected = {k: "row" for k in keys} | {_second(k): "row" for k in keys}
    assert contract.violations(cfg, expected) == {}


def _window() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "since": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "until": (now + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M"),
    }


def test_the_dry_run_counts_what_has_no_row_of_the_model(cfg, stack, staff, viewer, prefix):
    for name, label in (("a.png", "tabby"), ("b.png", "tabby"), ("c.png", "espresso")):
        insert_row(cfg, prefix + name, [(label, 0.9)], generation=1)
    done = insert_row(cfg, prefix + "b.png", [("tabby", 0.4)], generation=1)
    done_row = {**done, "model": "resnet50 (resnet50-19c8e357.pth)"}
    from classifier.cloud import bigquery

    bigquery.insert_row(cfg, cfg.table_id, done_row, row_id=f"{prefix}b@resnet50")

    def count(**query: str) -> int:
        response = staff.get(reverse("reprocess:page"), {**_window(), "prefix": prefix, "dry_run": "1", **query})
        assert response.status_code == 200 and response.context["error"] is None, response.context["error"]
        return int(response.context["count"])

    assert count(model=SECOND) == 2  # b already has a ResNet50 row
    assert count(model=SECOND, label="tabby") == 1
    assert count(model="efficientnet_lite0") == 0
    assert count(model=SECOND, prefix=prefix + "c") == 1
    page = staff.get(reverse("reprocess:page"), {**_window(), "model": "../etc", "dry_run": "1"})
    assert "choose one of the models" in page.context["error"]
    refused = viewer.post(reverse("reprocess:start"), {**_window(), "model": SECOND, "prefix": prefix, "expected": 2})
    assert refused.status_code == 403


def test_a_run_from_the_page_reprocesses_the_selection_once(cfg, qcfg, workers, staff, photos, prefix):
    keys = [contract.upload(qcfg, f"{prefix}{name}", data) for name, data in photos.items()]
    _live_rows(keys)
    form = {**_window(), "model": SECOND, "prefix": prefix}
    # The rows are the quiet bucket's: the page selects in the pipeline's bucket, so run it on the quiet one.
    sel = reprocess.Selection(
        model=SECOND,
        bucket=qcfg.bucket,
        since=datetime.now(UTC) - timedelta(hours=1),
        until=datetime.now(UTC) + timedelta(minutes=2),
        prefix=prefix,
    )
    assert reprocess.count(cfg, sel) == len(keys)
    changed = staff.post(reverse("reprocess:start"), {**form, "expected": 99})
    assert changed.status_code == 302
    assert AuditLog.objects.filter(action=AuditLog.Action.REPROCESS, outcome=AuditLog.Outcome.REFUSED).exists()

    redis = ledger.connection(cfg)
    op_id = reprocess.start(cfg, redis, sel, total=len(keys), user="test")
    wait_for(lambda: (reprocess.get(redis, op_id) or {}).get("state") == "done", timeout=300)
    op = reprocess.get(redis, op_id)
    assert op is not None and (op["enqueued"], op["done"], op["failed"]) == (len(keys), len(keys), 0)
    again = reprocess.start(cfg, redis, sel, total=reprocess.count(cfg, sel), user="test")
    wait_for(lambda: (reprocess.get(redis, again) or {}).get("state") == "done", timeout=120)
    assert (reprocess.get(redis, again) or {}).get("enqueued") == 0  # nothing left without a ResNet50 row
    expected = {k: "row" for k in keys} | {_second(k): "row" for k in keys}
    assert contract.violations(cfg, expected) == {}
    progress = staff.get(reverse("reprocess:progress"), {"run": op_id}).content.decode()
    assert f"{len(keys)} of {len(keys)} finished" in progress


def test_a_cancelled_run_takes_back_its_queued_jobs(cfg, qcfg, workers, staff, photos, prefix):
    names = [f"{prefix}{i}.png" for i in range(6)]
    keys = [contract.upload(qcfg, name, photos["chelsea.png"]) for name in names]
    _live_rows(keys)
    q = queue(cfg, SECOND)
    workers[SECOND].kill(signal.SIGSTOP)  # nothing is taken from the queue meanwhile
    try:
        redis = ledger.connection(cfg)
        sel = reprocess.Selection(
            model=SECOND,
            bucket=qcfg.bucket,
            since=datetime.now(UTC) - timedelta(hours=1),
            until=datetime.now(UTC) + timedelta(minutes=2),
            prefix=prefix,
        )
        op_id = reprocess.start(cfg, redis, sel, total=len(keys), user="test")
        wait_for(lambda: (reprocess.get(redis, op_id) or {}).get("enqueued") == len(keys), timeout=120)
        response = staff.post(reverse("reprocess:cancel"), {"run": op_id})
        assert response.status_code == 302
        wait_for(lambda: (reprocess.get(redis, op_id) or {}).get("state") == "cancelled", timeout=60)
        queued = set(q.get_job_ids())
        assert not queued & {jobs.job_id(*ledger.parse_key(k), SECOND) for k in keys}
        assert AuditLog.objects.filter(action=AuditLog.Action.REPROCESS_CANCEL).exists()
    finally:
        workers[SECOND].kill(signal.SIGCONT)
