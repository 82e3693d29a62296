"""Destroy against the real local stack, on resources of their own: confirmation, data, protection, CLI."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from classifier.cloud import bigquery, gcs, pubsub
from classifier.config import Config, ConfigError
from controlplane.infra import plan as p
from controlplane.infra import spec as s
from controlplane.infra.services import Actor, Refused, stack_apply, stack_destroy
from controlplane.models import AuditLog
from tests.infra_support import run, use_isolated

ACTOR = Actor(name="tests")


@pytest.fixture
def icfg(cfg, stack, settings):
    return use_isolated(cfg, settings)


def applied(cfg):
    spec = s.stack_spec(cfg=cfg)
    assert stack_apply(spec=spec, checksum=p.build_plan(spec).checksum, actor=ACTOR).ok
    return spec


def gone(cfg) -> bool:
    return (
        gcs.bucket_get(cfg, cfg.bucket) is None
        and pubsub.topic_get(cfg, cfg.topic) is None
        and pubsub.topic_get(cfg, cfg.dead_letter_topic) is None
        and pubsub.subscription_get(cfg, cfg.subscription) is None
        and pubsub.subscription_get(cfg, cfg.dead_letter_subscription) is None
        and bigquery.dataset_get(cfg, cfg.dataset_id) is None
    )


@pytest.mark.local_only
def test_destroy_plan_is_in_reverse_dependency_order(icfg, db):
    spec = applied(icfg)
    plan = p.build_destroy_plan(spec)
    assert [(c.action, c.kind) for c in plan.changes] == [
        ("provided", s.NOTIFICATION),
        ("delete", s.BUCKET),
        ("provided", s.TOPIC_IAM),
        ("provided", s.SUBSCRIPTION_IAM),
        ("delete", s.SUBSCRIPTION),
        ("delete", s.TOPIC),
        ("delete", s.SUBSCRIPTION),
        ("provided", s.TOPIC_IAM),
        ("delete", s.TOPIC),
        ("delete", s.TABLE),
        ("delete", s.TABLE),
        ("delete", s.DATASET),
    ]
    assert plan.summary == "Plan: 0 to create, 0 to change, 8 to destroy."
    assert not plan.data_at_risk


def test_wrong_confirmation_is_refused_and_the_right_one_removes_everything(icfg, db):
    spec = applied(icfg)
    checksum = p.build_destroy_plan(spec).checksum
    with pytest.raises(Refused, match="type the bucket name"):
        stack_destroy(spec=spec, checksum=checksum, confirmation="yes", delete_data=False, actor=ACTOR)
    assert gcs.bucket_get(icfg, icfg.bucket) is not None
    result = stack_destroy(spec=spec, checksum=checksum, confirmation=icfg.bucket, delete_data=False, actor=ACTOR)
    assert result.ok and len(result.steps) == 8 and gone(icfg)
    assert not p.build_destroy_plan(spec).has_changes
    assert list(AuditLog.objects.filter(action="destroy").order_by("id").values_list("outcome", flat=True)) == [
        "refused",
        "succeeded",
    ]


def test_data_needs_the_explicit_choice_that_states_the_counts(icfg, db):
    spec = applied(icfg)
    gcs.upload(icfg, name="a.txt", data=b"a")
    gcs.upload(icfg, name="b/c.txt", data=b"c")
    bigquery.insert_row(
        icfg,
        icfg.failures_table_id,
        {"image_name": "x", "bucket": "b", "generation": 1, "reason_code": "r", "reason": "r"},
        row_id="1",
    )
    plan = p.build_destroy_plan(spec)
    assert {c.name: c.data_label for c in plan.data_at_risk} == {
        icfg.bucket: "2 objects",
        icfg.failures_table_id: "1 rows",
    }
    with pytest.raises(Refused, match=rf"{icfg.bucket}: 2 objects, {icfg.failures_table_id}: 1 rows"):
        stack_destroy(spec=spec, checksum=plan.checksum, confirmation=icfg.bucket, delete_data=False, actor=ACTOR)
    assert gcs.object_count(icfg, icfg.bucket) == 2
    result = stack_destroy(spec=spec, checksum=plan.checksum, confirmation=icfg.bucket, delete_data=True, actor=ACTOR)
    assert result.ok and gone(icfg)
    assert "deleted with 2 objects" in [st.message for st in result.steps]


def test_destroy_protection_refuses_outright(icfg, db):
    protected = dataclasses.replace(icfg, destroy_protection=True)
    spec = applied(protected)
    plan = p.build_destroy_plan(spec)
    with pytest.raises(Refused, match="DESTROY_PROTECTION"):
        stack_destroy(spec=spec, checksum=plan.checksum, confirmation=icfg.bucket, delete_data=True, actor=ACTOR)
    assert not gone(icfg)


def test_cli_destroy_asks_for_the_bucket_name(icfg, db, monkeypatch):
    applied(icfg)
    monkeypatch.setattr("builtins.input", lambda prompt="": "yes")
    code, out = run("destroy")
    assert code == 1 and "confirmation does not match" in out and not gone(icfg)
    assert f"  - {s.BUCKET} {icfg.bucket}: exists" in out
    monkeypatch.setattr("builtins.input", lambda prompt="": icfg.bucket)
    code, out = run("destroy")
    assert code == 0 and "Destroy complete: 8 resource(s) deleted." in out and gone(icfg)
    code, out = run("destroy", "--yes")
    assert code == 0 and "Nothing to destroy." in out


def test_cli_destroy_refuses_data_without_delete_data(icfg, db):
    applied(icfg)
    gcs.upload(icfg, name="a.txt", data=b"a")
    code, out = run("destroy", "--yes")
    assert code == 1 and "1 objects" in out and "also delete the data" in out
    code, out = run("destroy", "--yes", "--delete-data")
    assert code == 0 and gone(icfg)


def test_destroy_protection_setting_is_strict():
    base = {"GCP_PROJECT": "my-project-1", "BUCKET_NAME": "my-images"}
    assert Config.from_env(base).destroy_protection is False
    assert Config.from_env({**base, "DESTROY_PROTECTION": "1"}).destroy_protection is True
    with pytest.raises(ConfigError, match=r"^DESTROY_PROTECTION='maybe' is not a boolean"):
        Config.from_env({**base, "DESTROY_PROTECTION": "maybe"})


def test_a_large_bucket_is_destroyed_by_the_infra_worker_in_batches_with_progress_and_the_lock_renewed(
    icfg, db, staff, monkeypatch
):
    """Outside the web request (an RQ job on its own queue), a batch of deletes at a time, each reported on the run's
    page; the lock's TTL is shorter than the run here, so only renewals keep it."""
    from django.urls import reverse

    from classifier import ledger
    from controlplane.infra import jobs, lock

    applied(icfg)
    bucket = gcs.client(icfg).bucket(icfg.bucket)
    for i in range(230):
        bucket.blob(f"bulk/{i:04d}").upload_from_string(b"x")
    page = staff.get(reverse("infra:destroy"))
    post = staff.post(
        reverse("infra:destroy"),
        {"checksum": page.context["plan"].checksum, "confirmation": icfg.bucket, "delete_data": "on"},
    )
    assert post.status_code == 302 and gcs.bucket_get(icfg, icfg.bucket) is not None  # nothing done in the request

    monkeypatch.setattr(lock, "LOCK_TTL_S", 5)
    redis = ledger.connection(icfg)
    held: list[bool] = []
    real_rpush = redis.rpush

    def slow_progress(key: str, value: str) -> int:  # each report takes a while, as a batch of real deletes does
        held.append(redis.get(lock.lock_key(icfg)) is not None)
        time.sleep(0.6)
        return real_rpush(key, value)

    monkeypatch.setattr(ledger.connection(icfg), "rpush", slow_progress)
    jobs.worker(icfg).work(burst=True)

    assert gone(icfg) and len(held) > 10 and all(held)  # ran for > 6.6 s with a 5 s lock, never without it
    state = jobs.run_state(icfg, post["Location"].rstrip("/").rsplit("/", 1)[-1])
    assert state.status == "finished" and state.result["ok"]
    bucket_step = next(st for st in state.steps if st["kind"] == s.BUCKET)
    assert bucket_step["status"] == "ok" and bucket_step["message"] == "deleted with 230 objects"
    progress = [json.loads(x)["message"] for x in redis.lrange(jobs._progress_key(state.run_id), 0, -1)]
    assert [m for m in progress if m.startswith("deleted ") and "so far" in m] == [
        "deleted 100 of 230 objects so far",
        "deleted 200 of 230 objects so far",
        "deleted 230 of 230 objects so far",
    ]
    assert "Destroy complete." in staff.get(post["Location"]).content.decode()
