"""The delivery contract: every finalized object generation ends as exactly one classification row or exactly one
failure record, whatever crashes or repeats in between.

Reading and classifying have no side effects and may run any number of times; the one write (the BigQuery insert,
then the ledger outcome) happens under a claim, see `write_once` and classifier/ledger.py. docs/delivery.md has the
whole picture.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from redis import Redis
from rq import get_current_job
from rq.registry import StartedJobRegistry

from classifier import ledger, outcomes, stats
from classifier.cloud import bigquery, gcs
from classifier.config import Config
from classifier.images import BadImage
from classifier.logsafe import shown

if TYPE_CHECKING:
    from classifier.batch import Batch
    from classifier.model import Classifier, Prediction

log = logging.getLogger(__name__)

# Longer than a write can take (bigquery.WRITE_TIMEOUT_S + outcomes.QUERY_TIMEOUT_S), shorter than RQ's backoff.
CLAIM_TTL_S = 60
CLAIM_WAIT_S = 10.0


class ObjectRef(NamedTuple):
    """One job's object: the notified generation, and its event time when the notification had one."""

    bucket: str
    name: str
    generation: int
    event_time: str | None = None
    model: str | None = None  # None: the live model; else the model a reprocess asked for

    @property
    def key(self) -> str:
        """The delivery key: one row or failure per object generation per model (ledger.model_key)."""
        return ledger.model_key(ledger.object_key(self.bucket, self.name, self.generation), self.model)


class ClaimBusy(Exception):
    """Another live execution is writing the outcome of this object generation; transient: retried."""


def _classifier() -> Classifier:
    """The process's classifier, imported where a job runs: the listener and the web app import this module (through
    classifier.jobs) only to enqueue, and must not load torch for that (it costs them ~800 MB each)."""
    from classifier import inference

    return inference.get_classifier()


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _iso(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _when(value: Any) -> datetime | None:
    """The upload time of a row, when it has a readable one: its row or failure was written after it."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _claim_token() -> str:
    """`<job id>:<execution id>` under RQ, so a retry can tell a dead holder (its own earlier attempt) from a live one."""
    job = get_current_job()
    if job is None:
        return f"local:{uuid.uuid4().hex}"
    execution_id = os.environ.get("RQ_EXECUTION_ID")  # set in a forked work horse
    if not execution_id:
        # In-process (SimpleWorker): ours is the newest; an older one is a dead attempt not yet cleaned up.
        executions = job.get_executions()
        if not executions:
            return f"local:{uuid.uuid4().hex}"
        execution_id = max(executions, key=lambda e: e.created_at).id
    return f"{job.id}:{execution_id}:{job.origin}"


def _holder_dead(redis: Redis, token: str) -> bool:
    """True when the claim belongs to an RQ execution that RQ no longer counts as running (killed, abandoned)."""
    parts = token.split(":")
    if len(parts) != 3 or parts[0] == "local":
        return False
    job_id_, execution_id, queue_name = parts
    started = StartedJobRegistry(name=queue_name, connection=redis)
    return redis.zscore(started.key, f"{job_id_}:{execution_id}") is None


def _claim(redis: Redis, key: str, token: str) -> bool:
    """Take the write claim; wait briefly for a live holder to finish. False when the outcome appeared meanwhile."""
    deadline = time.monotonic() + CLAIM_WAIT_S
    while not ledger.claim(redis, key, token, CLAIM_TTL_S):
        raw = redis.get(ledger.CLAIM_PREFIX + key)
        holder = ledger.text(raw) if raw is not None else None
        if holder is not None and _holder_dead(redis, holder):
            if ledger.claim_takeover(redis, key, holder, token, CLAIM_TTL_S):
                log.warning("claim on %s held by dead execution %s: taken over", shown(key), shown(holder))
                return True
            continue  # another contender took it first: look again
        if ledger.outcome_get(redis, key) is not None:
            return False
        if time.monotonic() > deadline:
            raise ClaimBusy(f"{key} is being written by {holder or 'another execution'}")
        time.sleep(0.2)
    return True


def record_stats(redis: Redis, *, rows: list[dict[str, Any]], failures: list[dict[str, Any]], key: str = "") -> None:
    """The live figures (classifier.stats); never the reason a written row's job fails. A reprocess's rows (a model
    key) are not uploads: their upload-to-row time would be days, so they stay out of the live figures."""
    if key and ledger.split_model(key)[1] is not None:
        return
    try:
        stats.record(redis, rows=rows, failures=failures)
    except Exception:
        log.exception("live figures not recorded for %d rows, %d failures", len(rows), len(failures))


def write_once(
    cfg: Config, redis: Redis, *, key: str, table_id: str, row: dict[str, Any], outcome: str
) -> tuple[bool, str]:
    """Insert `row` unless this generation already has an outcome; returns (written, the outcome that holds)."""
    token = _claim_token()
    if not _claim(redis, key, token):
        return False, ledger.outcome_get(redis, key) or outcome
    try:
        previous = ledger.outcome_get(redis, key)
        if previous is not None:
            return False, previous
        if ledger.inserting(redis, key) or not ledger.trusted(redis):
            # An earlier attempt died between insert and outcome, or Redis lost the ledger: ask BigQuery.
            found = outcomes.find(cfg, [key], since=_when(row.get("upload"))).get(key)
            if found:
                ledger.outcome_set(redis, key, found[0])
                log.warning("recovered %s: BigQuery already holds %s", shown(key), found[0])
                return False, found[0]
        ledger.inserting_mark(redis, key)
        bigquery.insert_row(cfg, table_id, row, row_id=key)
        ledger.outcome_set(redis, key, outcome)
        record_stats(redis, rows=[row] if outcome == "row" else [], failures=[] if outcome == "row" else [row], key=key)
        return True, outcome
    finally:
        ledger.claim_release(redis, key, token)


def record_failure(
    cfg: Config,
    redis: Redis,
    *,
    bucket: str,
    name: str,
    generation: int,
    code: str,
    reason: str,
    upload: str | None,
    attempts: int,
    blob: gcs.Blob | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """The one failure record of this generation for `model` (None: the live one), unless it already ended (as a
    row or another failure) for that model."""
    key = ledger.model_key(ledger.object_key(bucket, name, generation), model)
    row = {
        "image_name": name,
        "upload": upload,
        "bucket": bucket,
        "generation": generation,
        "content_type": blob.content_type if blob else None,
        "size_bytes": blob.size if blob else None,
        "reason_code": code,
        "reason": reason,
        "attempts": attempts,
        "model": _classifier().name,
        "failed_at": _now(),
    }
    written, outcome = write_once(
        cfg, redis, key=key, table_id=cfg.failures_table_id, row=row, outcome=f"failure:{code}"
    )
    if not written:
        log.info("skipped %s: already ended as %s", shown(key), outcome)
        return {"outcome": "duplicate", "key": key, "previous": outcome}
    log.warning("failed %s: %s (%s)", shown(key), shown(reason), code)
    return {"outcome": "failure", "key": key, "reason_code": code, "reason": reason}


def classify(
    cfg: Config, redis: Redis, obj: ObjectRef, *, attempts: int = 1, batch: Batch | None = None
) -> dict[str, Any]:
    """Download, classify and write one object generation: its row, or its failure record, or `duplicate`.

    `batch`: what a batching worker prepared for this job (its blob, its predictions, or its row already written);
    whatever it lacks, this does itself.
    """
    key = obj.key
    batch_written = batch.take_written(key) if batch is not None else None
    if batch_written is not None:  # this very job's row, written with its batch moments ago: no ledger read
        return row_result(key, *batch_written)
    previous = ledger.outcome_get(redis, key)
    if previous is not None:
        log.info("skipped %s: already ended as %s", shown(key), previous)
        return {"outcome": "duplicate", "key": key, "previous": previous}

    clf = _classifier()
    fail: dict[str, Any] = dict(
        bucket=obj.bucket,
        name=obj.name,
        generation=obj.generation,
        upload=obj.event_time,
        attempts=attempts,
        model=obj.model,
    )
    try:
        blob = batch.blob(key) if batch is not None else None
        if blob is None:
            blob = gcs.download(
                cfg, bucket=obj.bucket, name=obj.name, generation=obj.generation, created=obj.event_time is None
            )
    except gcs.ObjectGone as exc:
        return record_failure(cfg, redis, code="object_gone", reason=str(exc), **fail)
    except gcs.TooLarge as exc:
        return record_failure(cfg, redis, code="too_large", reason=str(exc), **fail)
    inference_ms = batch.inference_ms if batch is not None else None
    try:
        predictions = batch.take_predictions(key) if batch is not None else None
        if predictions is None:
            tensor = clf.preprocess(blob.data)
            started = time.perf_counter()
            predictions = clf.predict([tensor])[0]
            inference_ms = (time.perf_counter() - started) * 1000
    except BadImage as exc:
        return record_failure(cfg, redis, code=exc.code, reason=exc.reason, blob=blob, **fail)

    row = classification_row(obj, blob, predictions, clf.name, inference_ms)
    written, outcome = write_once(cfg, redis, key=key, table_id=cfg.table_id, row=row, outcome="row")
    if not written:
        log.info("skipped %s: already ended as %s", shown(key), outcome)
        return {"outcome": "duplicate", "key": key, "previous": outcome}
    return row_result(key, predictions, clf.name)


def classification_row(
    obj: ObjectRef, blob: gcs.Blob, predictions: list[Prediction], model_name: str, inference_ms: float | None = None
) -> dict[str, Any]:
    """`inference_ms`: this image's share of its forward pass (the batch's time over its images), when measured."""
    return {
        "image_name": obj.name,
        "upload": obj.event_time or _iso(blob.time_created) or _now(),
        "classifications": [{"classification": p.classification, "confidence": p.confidence} for p in predictions],
        "bucket": obj.bucket,
        "generation": obj.generation,
        "content_type": blob.content_type,
        "size_bytes": blob.size,
        "model": model_name,
        "processed_at": _now(),
        "inference_ms": None if inference_ms is None else round(inference_ms, 3),
    }


def row_result(key: str, predictions: list[Prediction], model_name: str) -> dict[str, Any]:
    top = predictions[0]
    log.info("classified %s: %s (%.3f) by %s", shown(key), top.classification, top.confidence, model_name)
    return {"outcome": "row", "key": key, "top": top.classification, "confidence": top.confidence}
