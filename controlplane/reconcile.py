"""Reconcile: find objects in the bucket with neither a row nor a failure record, and enqueue them.

Also the backfill of a bucket that had images before the pipeline existed (`since`). Cheap on a large bucket:
the listing is paged and each page costs one BigQuery query for all its keys, never one per object.
What BigQuery holds is written back into the Redis ledger, so after a Redis flush a full run restores it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from classifier import ledger, outcomes
from classifier.cloud import gcs
from classifier.config import Config
from classifier.queue import enqueue_classification, queue

log = logging.getLogger(__name__)

PAGE_SIZE = 500
SHOWN_MISSING = 100


@dataclass
class ReconcileReport:
    dry_run: bool
    since: datetime | None
    prefix: str | None
    listed: int = 0
    pages: int = 0
    queries: int = 0
    done: int = 0
    missing: int = 0
    enqueued: int = 0
    in_flight: int = 0
    missing_keys: list[str] = field(default_factory=list)  # the first SHOWN_MISSING, for a report page
    ledger_restored: int = 0
    abandoned_retried: int = 0
    ledger_trusted: bool = False
    elapsed_s: float = 0.0

    def summary(self) -> str:
        verb = "would enqueue" if self.dry_run else "enqueued"
        count = self.missing if self.dry_run else self.enqueued
        return (
            f"listed {self.listed} objects in {self.pages} pages ({self.queries} BigQuery queries): "
            f"{self.done} done, {self.missing} missing; {verb} {count}"
            + ("" if self.dry_run else f", {self.in_flight} already queued or running")
            + f" in {self.elapsed_s:.1f}s"
        )


def _page_missing(cfg: Config, page: list[gcs.Listed], report: ReconcileReport) -> list[tuple[str, gcs.Listed]]:
    keyed = {ledger.object_key(cfg.bucket, o.name, o.generation): o for o in page}
    created = [o.time_created for o in page]
    since = min(created) if created and all(t is not None for t in created) else None  # type: ignore[type-var]
    held = outcomes.find(cfg, list(keyed), since=since)
    report.queries += 1
    report.done += len(held)
    if not report.dry_run and held:
        ledger.outcome_set_many(ledger.connection(cfg), {k: v[0] for k, v in held.items()})
        report.ledger_restored += len(held)
    return [(k, o) for k, o in keyed.items() if k not in held]


def _retry_abandoned(cfg: Config) -> int:
    """RQ's own maintenance, run now: jobs of a worker that died (heartbeat expired) are retried or failed.

    Until then such a job still counts as running, and enqueueing its object again would be refused."""
    registry = queue(cfg).started_job_registry
    abandoned = registry.get_expired_job_ids()
    if abandoned:
        registry.cleanup()
        log.warning("reconcile: %d abandoned jobs handed back to RQ (retry or failed)", len(abandoned))
    return len(abandoned)


def reconcile_run(
    *, cfg: Config, since: datetime | None = None, dry_run: bool, prefix: str | None = None, page_size: int = PAGE_SIZE
) -> ReconcileReport:
    started = time.monotonic()
    report = ReconcileReport(dry_run=dry_run, since=since, prefix=prefix)
    if not dry_run:
        report.abandoned_retried = _retry_abandoned(cfg)
    for page in gcs.list_pages(cfg, prefix=prefix, page_size=page_size):
        report.pages += 1
        report.listed += len(page)
        if since is not None:
            page = [o for o in page if o.time_created is None or o.time_created >= since]
        if not page:
            continue
        for key, obj in _page_missing(cfg, page, report):
            report.missing += 1
            if len(report.missing_keys) < SHOWN_MISSING:
                report.missing_keys.append(key)
            if dry_run:
                continue
            upload = obj.time_created.isoformat() if obj.time_created else None
            _, created = enqueue_classification(
                cfg, bucket=cfg.bucket, name=obj.name, generation=obj.generation, event_time=upload
            )
            report.enqueued += int(created)
            report.in_flight += int(not created)
    if not dry_run and since is None and prefix is None:
        # Every live object was checked and the ledger now holds what BigQuery holds: jobs may trust it again.
        ledger.trust(ledger.connection(cfg))
        report.ledger_trusted = True
    report.elapsed_s = time.monotonic() - started
    log.info("reconcile%s: %s", " (dry run)" if dry_run else "", report.summary())
    return report
