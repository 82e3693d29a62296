"""Every query the app issues against the two tables is bounded: it carries `maximum_bytes_billed`, and it filters on
the partition column or is a lookup by the clustering columns (bench/bqaudit.py reads the query's text).

The queries are recorded at the client boundary (`google.cloud.bigquery.Client.query`) while every page, partial,
action, background job, reconcile, /metrics and the infra plan run against the local stack.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse
from google.api_core import exceptions as gexc
from google.cloud import bigquery as gbq

from bench import bqaudit
from classifier import delivery, failures, jobs, ledger, outcomes, reprocess
from classifier.cloud import bigquery, gcs
from classifier.config import Config
from controlplane import livecache, selectors
from controlplane.infra import plan as infra_plan
from controlplane.infra import spec as infra_spec
from controlplane.reconcile import reconcile_run
from controlplane.review.models import Review
from tests.helpers import drop_jobs, insert_failure, insert_row, png, run_background_job

TOKEN = "metrics-token-0123456789abcdef"


def _partitions(cfg: Config) -> dict[str, str]:
    return {cfg.table_id: "processed_at", cfg.failures_table_id: "failed_at"}


def _exercise(staff: Client, cfg: Config, settings: Any) -> None:
    """Everything the app reads or writes in BigQuery, once."""
    folder = f"t-{uuid.uuid4().hex[:8]}/"
    generation = gcs.upload(cfg, name=folder + "a.png", data=png(), content_type="image/png")
    row = insert_row(cfg, folder + "a.png", [("tabby", 0.5)], generation=generation)
    # The same object by a second model, and a verdict on it, so the comparison runs every query it has.
    bigquery.insert_row(cfg, cfg.table_id, {**row, "model": "second (test)"}, row_id=uuid.uuid4().hex)
    Review.objects.create(
        bucket=cfg.bucket,
        image_name=row["image_name"],
        generation=generation,
        model=row["model"],
        predicted_label="tabby",
        predicted_confidence=0.5,
        verdict=Review.Verdict.CORRECT,
        true_label="tabby",
        reviewer_name="op",
        reviewed_at=datetime.now(UTC),
    )
    bad = insert_failure(cfg, folder + "bad.txt")
    other = insert_failure(cfg, folder + "other.txt")
    livecache.forget_all()
    for page in ("dashboard", "recent_partial", "health_partial", "failures", "failure_requeue_all"):
        assert staff.get(reverse(page)).status_code == 200, page
    staff.get(reverse("dashboard"), {"label": "tabby", "name": folder, "range": "7d"})
    staff.get(reverse("recent_partial"), {"label": "tabby", "min_confidence": "0.2", "max_confidence": "0.9"})
    staff.get(reverse("recent_partial"), {"page": "2"})
    staff.get(reverse("failures"), {"part": "dead-letters"})
    staff.get(reverse("dashboard"), {"before": "2026-01-02T00:00"})
    model = "efficientnet_lite0 (test)"  # tests.helpers.insert_row's model
    for url, query in (
        ("insight:labels", {"window": "30d", "model": model, "threshold": "0.4"}),
        ("insight:label", {"label": "tabby", "window": "1d", "model": model}),
        ("insight:compare", {"window": "7d", "a": model, "b": "second (test)"}),
    ):
        page = staff.get(reverse(url), query)
        assert page.status_code == 200 and b"could not be read" not in page.content, url
    for kind in ("classifications", "failures"):
        export = staff.get(reverse("insight:export", args=[kind]), {"format": "csv", "name": folder, "range": "7d"})
        assert b"".join(export.streaming_content), kind
    staff.get(reverse("object_find"), {"name": folder + "a.png"})
    staff.get(reverse("object_find"), {"name": folder + "nothing-like-it"})
    model = "efficientnet_lite0 (test)"  # tests.helpers.insert_row's
    staff.get(reverse("review:queue"), {"model": model, "range": "30d"})
    verdict = {"bucket": cfg.bucket, "name": folder + "a.png", "generation": generation, "verdict_model": model}
    staff.post(reverse("review:verdict"), {**verdict, "verdict": "correct"})
    staff.get(
        reverse("failure_dismiss"),
        {"bucket": cfg.bucket, "name": other["image_name"], "generation": other["generation"]},
    )
    staff.post(
        reverse("failure_dismiss"),
        {"bucket": cfg.bucket, "name": other["image_name"], "generation": other["generation"]},
    )
    staff.post(
        reverse("failure_requeue"), {"bucket": cfg.bucket, "name": bad["image_name"], "generation": bad["generation"]}
    )
    count = staff.get(reverse("failure_requeue_all")).context["count"]
    staff.post(reverse("failure_requeue_all"), {"expected": count})
    op = failures.op_get(ledger.connection(cfg))
    run_background_job(cfg, f"failures-requeue-all-{op['id']}")
    failures.retry_pending(cfg, ledger.connection(cfg))
    key = ledger.object_key(cfg.bucket, folder + "a.png", generation)
    outcomes.find(cfg, [key])
    outcomes.find(cfg, [key], since=datetime.now(UTC))
    reconcile_run(cfg=cfg, dry_run=True, prefix=folder)
    outcomes.find(cfg, [ledger.model_key(key, "resnet50")], since=datetime.now(UTC))
    now = datetime.now(UTC)
    window = {
        "since": f"{now - timedelta(hours=1):%Y-%m-%dT%H:%M}",
        "until": f"{now + timedelta(hours=1):%Y-%m-%dT%H:%M}",
    }
    dry = staff.get(reverse("reprocess:page"), {**window, "model": "resnet50", "prefix": folder, "dry_run": "1"})
    assert dry.context["count"] == 1, dry.context["error"]
    sel = reprocess.Selection(
        model="resnet50", bucket=cfg.bucket, since=now - timedelta(hours=1), until=now + timedelta(hours=1)
    )
    reprocess.page(cfg, sel, after=(folder, 1), limit=10)
    settings.SIGHTLINE = dataclasses.replace(cfg, metrics_token=TOKEN)
    staff.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    settings.SIGHTLINE = cfg
    spec = infra_spec.stack_spec(cfg=cfg)
    infra_plan.build_plan(spec)
    infra_plan.build_destroy_plan(spec)
    selectors.objective_hours_from_tables(start=now - timedelta(days=1), end=now)  # runalerts' refill of a day
    drop_jobs(cfg, [jobs.job_id(cfg.bucket, f["image_name"], f["generation"]) for f in (bad, other)])


def test_every_query_against_the_two_tables_is_capped_and_prunes_or_is_a_clustered_lookup(
    staff: Client, cfg: Config, stack: Any, settings: Any
) -> None:
    with bqaudit.recording() as seen:
        _exercise(staff, cfg, settings)
    against = [q for q in seen if q.tables(cfg.table_id, cfg.failures_table_id)]
    assert len(against) >= 15, [q.sql for q in seen]
    assert [q.params for q in against if "reviewed" in q.params], "the review queue's query was not exercised"
    assert [q.params for q in against if "model" in q.params and "generation" in q.params], "nor a verdict's lookup"
    assert [q for q in against if "UNION ALL" in q.sql and "'f' AS kind" in q.sql], "nor the objective's refill"
    uncapped = [q.sql for q in against if not q.max_bytes]
    assert uncapped == [], "queries without maximum_bytes_billed"
    unbounded = [
        (table, q.sql)
        for q in against
        for table, how in bqaudit.verdict(q.sql, _partitions(cfg)).items()
        if how == bqaudit.UNBOUNDED
    ]
    assert unbounded == [], "queries that read a whole table"
    assert all(q.max_bytes == cfg.max_bytes_billed for q in against)


def test_the_audit_tells_a_full_scan_from_a_pruned_read_and_a_clustered_lookup(cfg: Config) -> None:
    parts = _partitions(cfg)
    t = cfg.table_id
    assert bqaudit.verdict(f"SELECT * FROM `{t}` ORDER BY processed_at DESC LIMIT 20", parts) == {t: bqaudit.UNBOUNDED}
    assert bqaudit.verdict(f"SELECT * FROM `{t}` WHERE processed_at >= @start LIMIT 20", parts) == {t: bqaudit.PRUNES}
    lookup = f"SELECT * FROM `{t}` WHERE bucket = @bucket AND image_name IN UNNEST(@names)"
    assert bqaudit.verdict(lookup, parts) == {t: bqaudit.CLUSTERED}
    concat = f"SELECT 1 FROM `{t}` AS r WHERE CONCAT(r.bucket, '/', r.image_name) IN UNNEST(@keys)"
    assert bqaudit.verdict(concat, parts) == {t: bqaudit.UNBOUNDED}


def test_a_query_over_the_byte_cap_is_a_clear_message_not_a_bill(staff: Client, cfg: Config, stack: Any) -> None:
    refusal = gexc.BadRequest("Query exceeded limit for bytes billed: 1000000000. 2000000000 or higher required.")
    livecache.forget_all()
    with mock.patch.object(gbq.Client, "query", autospec=True, side_effect=refusal):
        with pytest.raises(bigquery.BytesBudgetExceeded, match="BQ_MAX_BYTES_BILLED"):
            bigquery.query(cfg, f"SELECT 1 FROM `{cfg.table_id}` WHERE processed_at >= CURRENT_TIMESTAMP()")
        # A filtered list always asks BigQuery (page 1 unfiltered may come from the workers' record in Redis).
        page = staff.get(reverse("recent_partial"), {"label": "tabby"}).content.decode()
    assert "BytesBudgetExceeded" in page and "Narrow the time window" in page


def test_the_byte_cap_setting_is_strict() -> None:
    from classifier.config import ConfigError

    base = {"GCP_PROJECT": "sightline-test", "BUCKET_NAME": "sightline-test-images", "SIGHTLINE_LOCAL": "1"}
    assert Config.from_env(base).max_bytes_billed == 1_000_000_000
    assert Config.from_env({**base, "BQ_MAX_BYTES_BILLED": "52428800"}).max_bytes_billed == 52_428_800
    with pytest.raises(ConfigError, match="BQ_MAX_BYTES_BILLED"):
        Config.from_env({**base, "BQ_MAX_BYTES_BILLED": "1000"})


def test_a_lost_ledger_lookup_reads_only_partitions_since_the_upload(cfg: Config, stack: Any) -> None:
    """The crash path of a job asks BigQuery about one key within the days since its upload, by cluster."""
    row = {"upload": "2026-11-30T00:00:00+00:00"}
    with bqaudit.recording() as seen:
        outcomes.find(cfg, [ledger.object_key(cfg.bucket, "x.png", 1)], since=delivery._when(row["upload"]))
    assert [bqaudit.verdict(q.sql, _partitions(cfg)) for q in seen] == [
        {cfg.table_id: bqaudit.PRUNES, cfg.failures_table_id: bqaudit.PRUNES}
    ]
