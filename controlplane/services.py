"""Writes the dashboard makes: listener control, requeue, dismiss, upload, reconcile. Views check permissions; these
act, and record each action in the audit log (controlplane.audit), however it ends."""

from __future__ import annotations

import logging
import mimetypes
import time
import unicodedata
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from classifier import failures, ledger, listener
from classifier.cloud import gcs
from classifier.config import Config
from classifier.logsafe import shown
from classifier.queue import enqueue_classification, queue
from controlplane import selectors
from controlplane.audit import Actor, audit_record, audited
from controlplane.models import AuditLog
from controlplane.reconcile import ReconcileReport, reconcile_run

log = logging.getLogger(__name__)

REQUEUE_ALL_CAP = 10_000


class NotFound(Exception):
    pass


class CountChanged(Exception):
    """The set of failures changed since the operator confirmed "requeue all"."""

    def __init__(self, now: int) -> None:
        super().__init__(f"there are {now} failures now")
        self.now = now


class BadUpload(ValueError):
    pass


def _cfg() -> Config:
    return settings.SIGHTLINE


def listener_desired_set(*, state: str, actor: Actor) -> None:
    action = AuditLog.Action.LISTENER_START if state == "running" else AuditLog.Action.LISTENER_STOP
    with audited(actor=actor, action=action, summary=f"listener desired state set to {state}"):
        listener.desired_set(ledger.connection(_cfg()), state)
    log.info("listener desired state set to %s by %s", state, shown(actor.name))


def _failure_rows_delete(*, bucket: str, name: str, generation: int, before: datetime) -> None:
    """Delete the failure rows the operator acted on, never one that a new attempt recorded since `before`; rows
    still in the streaming buffer stay, shown as pending, until a scheduled retry deletes them."""
    cfg = _cfg()
    failures.delete(cfg, ledger.connection(cfg), [ledger.object_key(bucket, name, generation)], before=before)


def _require_failure(*, bucket: str, name: str, generation: int) -> list[dict[str, Any]]:
    rows = selectors.failure_get(bucket=bucket, name=name, generation=generation)
    if not rows:
        raise NotFound(f"no open failure for gs://{bucket}/{name}#{generation}")
    return rows


def _object(bucket: str, name: str, generation: int) -> str:
    return f"gs://{bucket}/{name}#{generation}"


def failure_requeue(*, bucket: str, name: str, generation: int, actor: Actor) -> str:
    """Clear the outcome, enqueue a forced job, then delete the failure rows seen before it: returns the job id."""
    with audited(
        actor=actor,
        action=AuditLog.Action.REQUEUE,
        summary=f"requeue {_object(bucket, name, generation)}",
        refusals=(NotFound,),
    ) as note:
        job_id = _requeue(bucket=bucket, name=name, generation=generation, user=actor.name)
        note.summary += f" as {job_id}"
    return job_id


def _requeue(*, bucket: str, name: str, generation: int, upload: Any = None, user: str) -> str:
    rows = _require_failure(bucket=bucket, name=name, generation=generation)
    upload = upload or rows[0]["upload"]  # the row keeps the original upload time, for upload-to-row latency
    cfg = _cfg()
    before = datetime.now(UTC)
    event_time = upload.isoformat() if isinstance(upload, datetime) else upload
    # Each model's failure is retried with that model, under its own key: the rows deleted below are all requeued.
    job_ids = []
    for model in sorted({failures.row_model(cfg, row) for row in rows}, key=lambda m: m or ""):
        ledger.outcome_clear(
            ledger.connection(cfg), ledger.model_key(ledger.object_key(bucket, name, generation), model)
        )
        job_ids.append(
            enqueue_classification(
                cfg, bucket=bucket, name=name, generation=generation, event_time=event_time, force=True, model=model
            )[0]
        )
    job_id = ", ".join(job_ids)
    _failure_rows_delete(bucket=bucket, name=name, generation=generation, before=before)
    log.info("requeued gs://%s/%s#%s as %s by %s", shown(bucket), shown(name), generation, job_id, shown(user))
    return job_id


def failure_requeue_all(*, expected: int, actor: Actor) -> str:
    """Start requeueing every open failure in the background (batched: one DELETE per 500); returns the operation's
    id, whose progress `failures.op_get` reads. Refuses when their number is not the one the operator confirmed."""
    summary = f"requeue all {expected} failures"
    with audited(actor=actor, action=AuditLog.Action.REQUEUE_ALL, summary=summary, refusals=(CountChanged,)) as note:
        op_id = _requeue_all_start(expected=expected, user=actor.name)
        note.summary = f"requeue all {expected} failures: started as {op_id}"
    return op_id


def _requeue_all_start(*, expected: int, user: str) -> str:
    cfg = _cfg()
    now = selectors.failure_count()
    if now != expected:
        raise CountChanged(now)
    redis = ledger.connection(cfg)
    op_id = failures.op_start(redis, kind="requeue all", total=expected, user=user)
    queue(cfg).enqueue(
        "classifier.jobs.requeue_all_failures",
        kwargs={"op_id": op_id, "before": datetime.now(UTC).isoformat(), "cap": REQUEUE_ALL_CAP},
        job_id=f"failures-requeue-all-{op_id}",
        job_timeout=3600,
        result_ttl=24 * 3600,
        description=f"requeue all open failures ({expected}), by {user}",
    )
    log.info("requeue of %d failures started as %s by %s", expected, op_id, user)
    return op_id


def failure_dismiss(*, bucket: str, name: str, generation: int, actor: Actor) -> None:
    """Forget the failure: its rows go, and so does the outcome, so a later notification may try it again."""
    summary = f"dismiss the failure of {_object(bucket, name, generation)}"
    with audited(actor=actor, action=AuditLog.Action.DISMISS, summary=summary, refusals=(NotFound,)):
        _dismiss(bucket=bucket, name=name, generation=generation, user=actor.name)


def _dismiss(*, bucket: str, name: str, generation: int, user: str) -> None:
    _require_failure(bucket=bucket, name=name, generation=generation)
    cfg = _cfg()
    _failure_rows_delete(bucket=bucket, name=name, generation=generation, before=datetime.now(UTC))
    ledger.outcome_clear(ledger.connection(cfg), ledger.object_key(bucket, name, generation))
    log.info("dismissed the failure of gs://%s/%s#%s (%s)", shown(bucket), shown(name), generation, shown(user))


def upload_name(*, folder: str, filename: str) -> str:
    """The object name for a browser upload: `folder/filename`, checked like GCS checks names."""
    folder = folder.strip().strip("/")
    filename = filename.replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = f"{folder}/{filename}" if folder else filename
    if not filename or filename in (".", ".."):
        raise BadUpload("a file without a name")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise BadUpload(f"{name!r}: object names cannot hold control characters")
    if len(name.encode()) > 1024:
        raise BadUpload(f"{name[:60]!r}...: object names are at most 1024 bytes")
    return name


def image_upload(*, folder: str, filename: str, data: bytes, content_type: str | None, actor: Actor) -> tuple[str, int]:
    """Send one file to the bucket; the bucket notification does the rest. Returns (name, generation)."""
    summary = f"upload {filename[:200]!r} ({len(data)} bytes)"
    with audited(actor=actor, action=AuditLog.Action.UPLOAD, summary=summary, refusals=(BadUpload,)) as note:
        name, generation = _upload(
            folder=folder, filename=filename, data=data, content_type=content_type, user=actor.name
        )
        note.summary = f"upload {_object(_cfg().bucket, name, generation)} ({len(data)} bytes)"
    return name, generation


def image_upload_refused(*, filename: str, size: int, reason: str, actor: Actor) -> None:
    """A file the view would not even read (over the size limit): recorded like any refused upload."""
    summary = f"upload {filename[:200]!r} ({size} bytes)"
    audit_record(
        actor=actor, action=AuditLog.Action.UPLOAD, outcome=AuditLog.Outcome.REFUSED, summary=summary, error=reason
    )


def reconcile_enqueue(*, since: datetime | None, actor: Actor) -> ReconcileReport:
    """Enqueue every object with neither row nor failure (controlplane/reconcile.py)."""
    scope = f" of objects created since {since:%Y-%m-%d %H:%M} UTC" if since else ""
    with audited(actor=actor, action=AuditLog.Action.RECONCILE, summary=f"reconcile{scope}") as note:
        report = reconcile_run(cfg=_cfg(), since=since, dry_run=False)
        note.summary = f"reconcile{scope}: {report.summary()}"
    return report


def _upload(*, folder: str, filename: str, data: bytes, content_type: str | None, user: str) -> tuple[str, int]:
    cfg = _cfg()
    name = upload_name(folder=folder, filename=filename)
    if len(data) > cfg.max_image_bytes:
        raise BadUpload(f"{name}: {len(data)} bytes is over MAX_IMAGE_BYTES={cfg.max_image_bytes}")
    if not content_type or content_type == "application/octet-stream":
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    started = time.monotonic()
    generation = gcs.upload(cfg, name=name, data=data, content_type=content_type)
    log.info(
        "uploaded gs://%s/%s#%s (%d bytes, %.2f s) by %s",
        cfg.bucket,
        shown(name),
        generation,
        len(data),
        time.monotonic() - started,
        user,
    )
    return name, generation
