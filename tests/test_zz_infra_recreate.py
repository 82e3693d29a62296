"""Destroy then apply on the session's own stack, then the pipeline end to end again.

Marked runs_last (see conftest): it deletes the session's bucket, topics, subscriptions and tables (with their data). The other
modules' objects and rows go with them, but nothing else is lost: the Pub/Sub emulator keeps no state of its own,
and the listener and worker processes keep running (the listener backs off while its subscription is gone).
"""

from __future__ import annotations

import pytest

from classifier.cloud import bigquery, gcs, pubsub
from controlplane.infra import plan as p
from controlplane.infra import spec as s
from controlplane.infra.services import Actor, stack_apply, stack_destroy
from tests.helpers import rows_for, wait_for_all

pytestmark = [pytest.mark.e2e, pytest.mark.runs_last]

CATS = {"Egyptian cat", "tiger cat", "tabby", "Persian cat", "Siamese cat", "lynx"}


def test_the_pipeline_works_after_destroy_then_apply(cfg, pipeline, photos, upload, prefix, db):
    spec, actor = s.stack_spec(cfg=cfg), Actor(name="tests")
    upload(f"{prefix}before.png", photos["coffee.png"], "image/png")  # data in the bucket: needs the explicit choice
    plan = p.build_destroy_plan(spec)
    assert plan.data_at_risk
    destroyed = stack_destroy(spec=spec, checksum=plan.checksum, confirmation=cfg.bucket, delete_data=True, actor=actor)
    assert destroyed.ok, [st.line for st in destroyed.steps]
    assert gcs.bucket_get(cfg, cfg.bucket) is None and pubsub.subscription_get(cfg, cfg.subscription) is None
    assert bigquery.dataset_get(cfg, cfg.dataset_id) is None

    plan = p.build_plan(spec)
    assert plan.summary == "Plan: 8 to create, 0 to change, 0 to destroy."
    applied = stack_apply(spec=spec, checksum=plan.checksum, actor=actor)
    assert applied.ok and not p.build_plan(spec).has_changes

    name = f"{prefix}chelsea.png"
    upload(name, photos["chelsea.png"], "image/png")
    rows = wait_for_all(lambda: rows_for(cfg, [name]), timeout=90)
    assert len(rows[name]) == 1, f"no row for {name} after destroy + apply: {rows}"
    assert rows[name][0]["classifications"][0]["classification"] in CATS
    assert pipeline["worker"].alive() and pipeline["listener"].alive()
