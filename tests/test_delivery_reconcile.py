"""Reconcile and backfill, and the dead-letter listing, in-process against the session's local stack.

Backfill uses a bucket of its own: fake-gcs-server notifies only for the pipeline's bucket, so its objects
are exactly "images that were there before the pipeline existed" and nothing else enqueues them.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command

from classifier import jobs, ledger
from classifier.cloud import gcs, pubsub
from controlplane.deadletters import dead_letter_list
from controlplane.reconcile import reconcile_run
from tests import contract
from tests.helpers import wait_for


@pytest.fixture
def old_bucket(cfg, stack):
    name = f"sightline-old-{uuid.uuid4().hex[:8]}"
    gcs.bucket_create(cfg, name)
    return dataclasses.replace(cfg, bucket=name)


def test_reconcile_backfills_what_has_neither_row_nor_failure(old_bucket, photos):
    cfg = old_bucket
    keys = {contract.upload(cfg, f"a/{n}", photos[n], "image/png"): "row" for n in ("chelsea.png", "coffee.png")}
    keys |= {contract.upload(cfg, "a/rocket.jpg", photos["rocket.jpg"], "image/jpeg"): "row"}
    keys |= {contract.upload(cfg, "a/notes.jpg", b"plain text, not a jpeg\n"): "failure:not_an_image"}
    done = next(iter(keys))
    jobs.classify_object(*ledger.parse_key(done))

    dry = reconcile_run(cfg=cfg, dry_run=True, page_size=3)
    assert (dry.listed, dry.pages, dry.queries, dry.done, dry.missing, dry.enqueued) == (4, 2, 2, 1, 3, 0)
    assert set(dry.missing_keys) == set(keys) - {done}

    run = reconcile_run(cfg=cfg, dry_run=False, page_size=3)
    assert (run.missing, run.enqueued + run.in_flight) == (3, 3)
    contract.drain(cfg)  # the session's worker, when running, may take some of them: wait for it too
    wait_for(lambda: contract.settled(cfg, keys), timeout=60, every=0.5)
    assert contract.violations(cfg, keys) == {}

    again = reconcile_run(cfg=cfg, dry_run=False)
    assert (again.listed, again.done, again.missing) == (4, 4, 0)


def test_reconcile_since_only_looks_at_newer_objects(old_bucket, photos):
    cfg = old_bucket
    contract.upload(cfg, "before.png", photos["chelsea.png"], "image/png")
    time.sleep(1.1)
    since = datetime.now(UTC)
    after = contract.upload(cfg, "after.png", photos["coffee.png"], "image/png")
    report = reconcile_run(cfg=cfg, since=since, dry_run=True)
    assert report.listed == 2 and report.missing_keys == [after]


def test_reconcile_restores_a_flushed_ledger(old_bucket, photos):
    cfg = old_bucket
    key = contract.upload(cfg, "flushed.png", photos["chelsea.png"], "image/png")
    jobs.classify_object(*ledger.parse_key(key))
    redis = ledger.connection(cfg)
    ledger.outcome_clear(redis, key)
    report = reconcile_run(cfg=cfg, dry_run=False)
    assert (report.missing, report.ledger_restored, report.ledger_trusted) == (0, 1, True)
    assert ledger.outcome_get(redis, key) == "row"


def test_reconcile_command(cfg, stack, capsys):
    call_command("reconcile", "--dry-run", "--prefix", "nothing-here/")
    assert "listed 0 objects" in capsys.readouterr().out
    with pytest.raises(CommandError, match="--since"):
        call_command("reconcile", "--since", "yesterday")


def test_dead_letters_are_listed_without_being_consumed(cfg, stack):
    marker = uuid.uuid4().hex
    pubsub.publish(
        cfg, cfg.dead_letter_topic, b"{not json", eventType="?", objectId=marker, sightline_error="no eventType"
    )
    for _ in range(2):  # a second read still finds it: listing never acks
        listed = [m for m in dead_letter_list(cfg, 50) if m["object"] == marker]
        assert len(listed) == 1
        assert listed[0]["error"] == "no eventType" and listed[0]["data_preview"] == "{not json"
        assert "sightline_error" not in listed[0]["attributes"]
