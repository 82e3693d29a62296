"""Plan and apply against the real local stack, on resources of their own (never the session pipeline's)."""

from __future__ import annotations

import dataclasses
from unittest import mock

import pytest

from classifier.cloud import bigquery, gcs, pubsub
from controlplane.infra import plan as p
from controlplane.infra import spec as s
from controlplane.infra.changes import Plan
from controlplane.infra.lock import exclusive
from controlplane.infra.services import Actor, Refused, StalePlan, stack_apply, stack_plan
from controlplane.models import AuditLog
from tests.infra_support import run, use_isolated

F = bigquery.SchemaField
ACTOR = Actor(name="tests")


@pytest.fixture
def icfg(cfg, stack, settings):
    return use_isolated(cfg, settings)


def actions(plan: Plan) -> list[tuple[str, str, str]]:
    return [(c.action, c.kind, c.name) for c in plan.changes]


@pytest.mark.local_only
def test_plan_on_an_empty_project_lists_every_resource_to_create(icfg, db):
    plan = stack_plan(spec=s.stack_spec(cfg=icfg))
    assert actions(plan) == [
        ("create", s.DATASET, icfg.dataset_id),
        ("create", s.TABLE, icfg.table_id),
        ("create", s.TABLE, icfg.failures_table_id),
        ("create", s.TOPIC, icfg.dead_letter_topic),
        ("provided", s.TOPIC_IAM, f"{icfg.dead_letter_topic} roles/pubsub.publisher {s.PUBSUB_SERVICE_AGENT}"),
        ("create", s.SUBSCRIPTION, icfg.dead_letter_subscription),
        ("create", s.TOPIC, icfg.topic),
        ("create", s.SUBSCRIPTION, icfg.subscription),
        ("provided", s.SUBSCRIPTION_IAM, f"{icfg.subscription} roles/pubsub.subscriber {s.PUBSUB_SERVICE_AGENT}"),
        ("provided", s.TOPIC_IAM, f"{icfg.topic} roles/pubsub.publisher {s.GCS_SERVICE_AGENT}"),
        ("create", s.BUCKET, icfg.bucket),
        ("provided", s.NOTIFICATION, f"gs://{icfg.bucket} -> {icfg.topic}"),
    ]
    assert plan.summary == "Plan: 8 to create, 0 to change, 0 to destroy."
    provided = {c.kind: c.reason for c in plan.changes if c.action == "provided"}
    assert all(reason.startswith("provided by the local stack") for reason in provided.values())
    assert "fake-gcs-server event flags" in provided[s.NOTIFICATION] and "IAM API" in provided[s.TOPIC_IAM]
    assert not AuditLog.objects.exists()  # a plan is a read


@pytest.mark.local_only
def test_apply_creates_everything_then_nothing_to_do_then_a_deleted_subscription_is_one_create(icfg, db):
    code, out = run("plan")
    assert code == 2 and "Plan: 8 to create, 0 to change, 0 to destroy." in out
    assert f"  + {s.SUBSCRIPTION} {icfg.subscription}: does not exist" in out

    code, out = run("apply", "--yes")
    assert code == 0, out
    assert out.count(": ok: created") == 8 and "Apply complete: 8 step(s) done." in out
    assert gcs.bucket_get(icfg, icfg.bucket) is not None
    assert bigquery.table_schema(icfg, icfg.failures_table_id) is not None
    assert pubsub.subscription_get(icfg, icfg.subscription) == {
        "topic": icfg.topic_path,
        "ack_deadline_seconds": 60,
        "message_retention_seconds": 7 * 24 * 3600,
        "expiration_ttl_seconds": None,
        "dead_letter_topic": f"projects/{icfg.project}/topics/{icfg.dead_letter_topic}",
        "max_delivery_attempts": 5,
    }

    code, out = run("plan")
    assert code == 0 and "Plan: 0 to create, 0 to change, 0 to destroy." in out
    code, out = run("apply", "--yes")
    assert code == 0 and "No changes" in out

    pubsub.subscription_delete(icfg, icfg.subscription)
    code, out = run("plan")
    assert code == 2 and "Plan: 1 to create, 0 to change, 0 to destroy." in out
    plan = p.build_plan(s.stack_spec(cfg=icfg))
    assert [(c.kind, c.name) for c in plan.pending] == [(s.SUBSCRIPTION, icfg.subscription)]
    code, out = run("apply", "--yes")
    assert code == 0 and f"+ {s.SUBSCRIPTION} {icfg.subscription}: ok: created" in out

    log = list(AuditLog.objects.order_by("id").values_list("actor", "action", "outcome"))
    assert all(actor.startswith("cli:") for actor, _, _ in log)
    assert [(a, o) for _, a, o in log] == [
        ("apply", "succeeded"),
        ("apply", "succeeded"),
    ]


def test_apply_asks_and_anything_but_yes_aborts(icfg, db, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda prompt="": "y")
    code, out = run("apply")
    assert code == 1 and "Apply cancelled" in out
    assert gcs.bucket_get(icfg, icfg.bucket) is None and pubsub.topic_get(icfg, icfg.topic) is None


@pytest.mark.local_only
def test_existing_matching_resources_are_adopted(icfg, db):
    pubsub.topic_ensure(icfg, icfg.topic)
    gcs.bucket_create(icfg, icfg.bucket)
    spec = s.stack_spec(cfg=icfg)
    plan = p.build_plan(spec)
    assert ("no-op", s.TOPIC, icfg.topic) in actions(plan) and ("no-op", s.BUCKET, icfg.bucket) in actions(plan)
    result = stack_apply(spec=spec, checksum=plan.checksum, actor=ACTOR)
    assert result.ok and len(result.steps) == 6


def test_a_hand_made_table_with_a_wrong_schema_shows_the_exact_drift(icfg, db):
    wrong = [
        F("image_name", "STRING", mode="REQUIRED"),
        F("upload", "TIMESTAMP", mode="NULLABLE"),
        F(
            "classifications",
            "RECORD",
            mode="REPEATED",
            fields=[F("classification", "STRING"), F("confidence", "STRING")],
        ),
        F("bucket", "STRING", mode="REQUIRED"),
        F("generation", "STRING", mode="REQUIRED"),
        F("content_type", "STRING", mode="REQUIRED"),
        F("size_bytes", "INTEGER"),
        F("processed_at", "TIMESTAMP"),
        F("colour", "STRING"),
    ]
    bigquery.dataset_create(icfg, icfg.dataset_id)
    bigquery.table_create(icfg, icfg.table_id, wrong)
    spec = s.stack_spec(cfg=icfg)
    plan = p.build_plan(spec)
    change = next(c for c in plan.changes if c.name == icfg.table_id)
    assert change.action == "replace" and "cannot change in place" in change.reason
    assert change.details == (
        "field upload: mode NULLABLE, wanted REQUIRED",
        "field classifications.confidence: type STRING, wanted FLOAT",
        "field generation: type STRING, wanted INTEGER",
        "extra field colour (STRING, NULLABLE): not in the desired schema",
        "field content_type: mode REQUIRED, wanted NULLABLE: will be relaxed",
        "missing field model (STRING, NULLABLE): will be added",
        "missing field inference_ms (FLOAT, NULLABLE): will be added",
        "shape: not partitioned, not clustered, wanted partitioned by day on processed_at, clustered on bucket, image_name",
    )
    assert "1 change(s) need a destructive replacement" in plan.summary
    with pytest.raises(Refused, match="destructive"):
        stack_apply(spec=spec, checksum=plan.checksum, actor=ACTOR)
    assert bigquery.table_schema(icfg, icfg.table_id)[-1].name == "colour"  # untouched
    assert AuditLog.objects.get(action="apply").outcome == "refused"


@pytest.mark.local_only
def test_additive_schema_drift_and_subscription_drift_are_updated_in_place(icfg, db):
    bigquery.dataset_create(icfg, icfg.dataset_id)
    bigquery.table_create(
        icfg,
        icfg.failures_table_id,
        [f for f in bigquery.FAILURES_SCHEMA if f.name != "model"],
        bigquery.FAILURES_SHAPE,
    )
    pubsub.topic_ensure(icfg, icfg.topic)
    pubsub.topic_ensure(icfg, icfg.dead_letter_topic)
    pubsub.subscription_ensure(icfg, icfg.subscription, icfg.topic)  # no dead-letter policy
    spec = s.stack_spec(cfg=icfg)
    plan = p.build_plan(spec)
    updates = {c.name: c.details for c in plan.changes if c.action == "update"}
    assert updates == {
        icfg.failures_table_id: ("missing field model (STRING, NULLABLE): will be added",),
        icfg.subscription: (
            f"dead_letter_topic: None -> projects/{icfg.project}/topics/{icfg.dead_letter_topic}",
            "max_delivery_attempts: None -> 5",
        ),
    }
    assert plan.summary == "Plan: 3 to create, 2 to change, 0 to destroy."
    assert stack_apply(spec=spec, checksum=plan.checksum, actor=ACTOR).ok
    assert not p.build_plan(spec).has_changes


@pytest.mark.local_only
def test_the_inference_ms_column_is_added_in_place_to_a_table_with_rows(icfg, db):
    """A classifications table from before the column: the plan adds it in place, an additive update, and then has
    nothing left to change. (bqemulator records the new schema but does not add the column to its DuckDB table, so
    reading the column back is real BigQuery's part; a fresh local stack creates the table with it.)"""
    bigquery.dataset_create(icfg, icfg.dataset_id)
    before = [f for f in bigquery.CLASSIFICATIONS_SCHEMA if f.name != "inference_ms"]
    bigquery.table_create(icfg, icfg.table_id, before, bigquery.CLASSIFICATIONS_SHAPE)
    spec = s.stack_spec(cfg=icfg)
    plan = p.build_plan(spec)
    table = next(c for c in plan.changes if c.name == icfg.table_id)
    assert (table.action, table.details) == ("update", ("missing field inference_ms (FLOAT, NULLABLE): will be added",))
    assert stack_apply(spec=spec, checksum=plan.checksum, actor=ACTOR).ok
    assert bigquery.table_schema(icfg, icfg.table_id)[-1].name == "inference_ms"
    assert not p.build_plan(spec).has_changes


def test_subscriptions_never_expire_and_the_default_expiry_is_drift(icfg, db):
    """Real Pub/Sub deletes a subscription idle for 31 days unless told never to; the emulator shows the policy sent."""
    raw = pubsub.subscriber(icfg)
    spec = s.stack_spec(cfg=icfg)
    assert stack_apply(spec=spec, checksum=p.build_plan(spec).checksum, actor=ACTOR).ok
    for name in (icfg.subscription, icfg.dead_letter_subscription):
        sub = raw.get_subscription(request={"subscription": raw.subscription_path(icfg.project, name)})
        assert "expiration_policy" in sub and "ttl" not in sub.expiration_policy  # an empty policy: never

    pubsub.subscription_delete(icfg, icfg.dead_letter_subscription)
    raw.create_subscription(  # as made by hand or by an older Sightline: the default expiry applies
        request={
            "name": raw.subscription_path(icfg.project, icfg.dead_letter_subscription),
            "topic": pubsub.topic_path(icfg, icfg.dead_letter_topic),
            "ack_deadline_seconds": 60,
            "message_retention_duration": {"seconds": 7 * 24 * 3600},
        }
    )
    (change,) = p.build_plan(spec).pending
    assert (change.action, change.name, change.details) == (
        "update",
        icfg.dead_letter_subscription,
        ("expiration_ttl_seconds: expires after 2678400 s without a pull -> never expires",),
    )


def test_a_stale_plan_is_refused(icfg, db):
    spec = s.stack_spec(cfg=icfg)
    seen = p.build_plan(spec)
    pubsub.topic_ensure(icfg, icfg.topic)  # someone else acts between plan and apply
    with pytest.raises(StalePlan, match="plan changed since it was shown") as refused:
        stack_apply(spec=spec, checksum=seen.checksum, actor=ACTOR)
    assert refused.value.fresh.count("create") == 7
    assert pubsub.topic_get(icfg, icfg.dead_letter_topic) is None
    assert AuditLog.objects.get(action="apply").outcome == "refused"


@pytest.mark.local_only
def test_a_failure_midway_leaves_a_report_and_applying_again_finishes(icfg, db):
    spec = s.stack_spec(cfg=icfg)
    plan = p.build_plan(spec)
    boom = pubsub.gexc.ServiceUnavailable("pubsub is having a bad day")
    seen: list[str] = []
    with mock.patch.object(
        type(pubsub.subscriber(icfg)), "create_subscription", autospec=True, side_effect=boom
    ) as create_subscription:
        result = stack_apply(spec=spec, checksum=plan.checksum, actor=ACTOR, on_step=lambda st: seen.append(st.status))
    assert create_subscription.call_count == 1
    assert seen == ["ok", "ok", "ok", "ok", "failed", "skipped", "skipped", "skipped"]
    assert not result.ok and "bad day" in result.steps[4].message
    assert result.remaining is not None
    assert [c.name for c in result.remaining.pending] == [
        icfg.dead_letter_subscription,
        icfg.topic,
        icfg.subscription,
        icfg.bucket,
    ]
    audit = AuditLog.objects.get(action="apply")
    assert audit.outcome == "failed" and "Run apply again" in audit.error
    assert [c.get("status") for c in audit.changes] == [*seen, None, None, None, None]  # + the 4 provided lines

    again = p.build_plan(spec)
    retry = stack_apply(spec=spec, checksum=again.checksum, actor=ACTOR)
    assert retry.ok and [st.change.name for st in retry.steps] == [c.name for c in result.remaining.pending]
    assert not p.build_plan(spec).has_changes


def test_one_apply_or_destroy_at_a_time(icfg, db):
    spec = s.stack_spec(cfg=icfg)
    plan = p.build_plan(spec)
    with (
        exclusive(icfg, holder="apply by alice"),
        pytest.raises(Refused, match=r"another operation is running \(apply by alice since"),
    ):
        stack_apply(spec=spec, checksum=plan.checksum, actor=ACTOR)
    assert pubsub.topic_get(icfg, icfg.topic) is None
    assert AuditLog.objects.get(action="apply").outcome == "refused"
    assert stack_apply(spec=spec, checksum=plan.checksum, actor=ACTOR).ok  # released: the next one goes ahead


@pytest.mark.local_only
def test_the_local_stack_creates_only_whats_missing_of_its_kinds_and_never_updates(icfg, db):
    """What an emulator's (re)start runs (devstack.localstack): apply's own plan and steps, creates only."""
    from controlplane.infra import apply as runner

    pubsub.topic_ensure(icfg, icfg.topic)
    pubsub.subscription_ensure(icfg, icfg.subscription, icfg.topic)  # drifted: no dead-letter policy
    steps = runner.create_missing(icfg, (s.TOPIC, s.SUBSCRIPTION))
    assert [(st.status, st.change.kind, st.change.name) for st in steps] == [
        (runner.OK, s.TOPIC, icfg.dead_letter_topic),
        (runner.OK, s.SUBSCRIPTION, icfg.dead_letter_subscription),
    ]
    assert runner.create_missing(icfg, (s.TOPIC, s.SUBSCRIPTION)) == []
    left = {(c.action, c.kind) for c in p.build_plan(s.stack_spec(cfg=icfg)).changes}
    assert ("update", s.SUBSCRIPTION) in left  # the drift is left to an operator's reviewed apply
    assert ("create", s.BUCKET) in left and ("create", s.DATASET) in left  # other kinds untouched
    assert not AuditLog.objects.exists()


def test_a_table_without_partitions_or_clustering_is_drift_and_apply_migrates_it_keeping_every_row(icfg, db):
    bigquery.dataset_create(icfg, icfg.dataset_id)
    bigquery.table_create(icfg, icfg.table_id, bigquery.CLASSIFICATIONS_SCHEMA)  # the old, unshaped table
    rows = [
        {
            "image_name": f"m{i}.png",
            "upload": "2026-11-01T00:00:00Z",
            "bucket": "b",
            "generation": i,
            "classifications": [{"classification": "cat", "confidence": 0.5}],
            "processed_at": f"2026-11-0{i}T01:00:00Z",
        }
        for i in range(1, 6)
    ]
    bigquery.insert_rows(icfg, icfg.table_id, rows, row_ids=[str(i) for i in range(1, 6)])
    spec = s.stack_spec(cfg=icfg)
    plan = p.build_plan(spec)
    change = next(c for c in plan.changes if c.name == icfg.table_id)
    assert change.action == "update" and "keeping every row" in change.reason
    assert change.details == (
        "shape: not partitioned, not clustered, wanted partitioned by day on processed_at, "
        "clustered on bucket, image_name",
    )
    assert stack_apply(spec=spec, checksum=plan.checksum, actor=ACTOR).ok
    live = bigquery.table_get(icfg, icfg.table_id)
    assert live.shape == bigquery.CLASSIFICATIONS_SHAPE
    got = bigquery.query(icfg, f"SELECT image_name, generation FROM `{icfg.table_id}` ORDER BY generation")
    assert [(r["image_name"], r["generation"]) for r in got] == [(f"m{i}.png", i) for i in range(1, 6)]
    assert bigquery.table_get(icfg, icfg.table_id + "__reshape") is None
    assert not p.build_plan(spec).has_changes


def test_an_interrupted_migration_is_finished_from_its_copy(icfg, db):
    tmp = icfg.table_id + "__reshape"
    bigquery.dataset_create(icfg, icfg.dataset_id)
    bigquery.table_create(icfg, tmp, bigquery.CLASSIFICATIONS_SCHEMA, bigquery.CLASSIFICATIONS_SHAPE)
    row = {
        "image_name": "kept.png",
        "upload": "2026-11-01T00:00:00Z",
        "bucket": "b",
        "generation": 1,
        "processed_at": "2026-11-01T01:00:00Z",
    }
    bigquery.insert_rows(icfg, tmp, [row], row_ids=["1"])
    spec = s.stack_spec(cfg=icfg)  # the original was dropped, its rows are only in the copy
    plan = p.build_plan(spec)
    assert stack_apply(spec=spec, checksum=plan.checksum, actor=ACTOR).ok
    assert bigquery.table_row_count(icfg, icfg.table_id) == 1
    assert bigquery.table_get(icfg, tmp) is None


def test_the_dataset_is_created_in_gcp_location_and_a_mismatch_is_a_change_apply_will_not_make(icfg, db):
    """bqemulator keeps a dataset's location; fake-gcs-server does not (the bucket's side is in the boundary tests)."""
    here = dataclasses.replace(icfg, location="europe-west1")
    spec = s.stack_spec(cfg=here)
    assert stack_apply(spec=spec, checksum=p.build_plan(spec).checksum, actor=ACTOR).ok
    assert bigquery.dataset_get(here, here.dataset_id)["location"] == "europe-west1"
    assert not p.build_plan(spec).has_changes

    elsewhere = s.stack_spec(cfg=dataclasses.replace(icfg, location="US"))
    plan = p.build_plan(elsewhere)
    (moved,) = plan.destructive
    assert (moved.kind, moved.details) == (s.DATASET, ("location: europe-west1, wanted US",))
    assert moved.reason.startswith("in location europe-west1, GCP_LOCATION is US: a dataset cannot move")
    assert "set GCP_LOCATION=europe-west1 to keep it" in moved.reason
    with pytest.raises(Refused, match="destructive"):
        stack_apply(spec=elsewhere, checksum=plan.checksum, actor=ACTOR)
