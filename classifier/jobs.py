"""RQ jobs: thin adapters that take primitives and call the real work. JSON-serialisable arguments only.

Delivery contract: every finalized object generation ends as exactly one classification row or exactly one
failure record, whatever crashes or repeats in between. Reading and classifying have no side effects and may
run any number of times; the one write (the BigQuery insert, then the ledger outcome) happens under a claim,
see `_write_once` and classifier/ledger.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from types import ModuleType, TracebackType
from typing import Any

from redis import Redis
from rq import Retry, get_current_job
from rq.job import Job
from rq.registry import StartedJobRegistry

from classifier import ledger, outcomes
from classifier.cloud import bigquery, gcs
from classifier.config import Config, get_config
from classifier.weights import BadImage

log = logging.getLogger(__name__)

# Transient faults (network, 5xx, timeouts, a busy claim) raise and are retried with backoff by RQ;
# permanent ones (a bad image, a gone object) become a failure record at once and never reach RQ's retry.
RETRY = Retry(max=3, interval=[5, 20, 60])
# Longer than a write can take (bigquery.WRITE_TIMEOUT_S + outcomes.QUERY_TIMEOUT_S), shorter than RQ's backoff.
CLAIM_TTL_S = 60
CLAIM_WAIT_S = 10.0


class ClaimBusy(Exception):
    """Another live execution is writing the outcome of this object generation; transient: retried."""


def job_id(bucket: str, name: str, generation: int) -> str:
    """Deterministic: a redelivered notification maps to the same job and is not enqueued twice."""
    digest = hashlib.sha256(ledger.object_key(bucket, name, generation).encode()).hexdigest()[:32]
    return f"classify-{digest}"


def _runtime() -> ModuleType:
    """The model's runtime, imported where a job runs: the listener and the web app import this module only to
    enqueue, and must not load torch for that (it costs them ~800 MB each)."""
    from classifier import runtime

    return runtime


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _iso(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


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
        holder = redis.get(ledger.CLAIM_PREFIX + key)
        if holder is not None and _holder_dead(redis, holder.decode()):
            if ledger.claim_takeover(redis, key, holder.decode(), token, CLAIM_TTL_S):
                log.warning("claim on %s held by dead execution %s: taken over", key, holder.decode())
                return True
            continue  # another contender took it first: look again
        if ledger.outcome_get(redis, key) is not None:
            return False
        if time.monotonic() > deadline:
            raise ClaimBusy(f"{key} is being written by {holder.decode() if holder else 'another execution'}")
        time.sleep(0.2)
    return True


def _write_once(
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
            found = outcomes.find(cfg, [key]).get(key)
            if found:
                ledger.outcome_set(redis, key, found[0])
                log.warning("recovered %s: BigQuery already holds %s", key, found[0])
                return False, found[0]
        ledger.inserting_mark(redis, key)
        bigquery.insert_row(cfg, table_id, row, row_id=key)
        ledger.outcome_set(redis, key, outcome)
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
) -> dict[str, Any]:
    key = ledger.object_key(bucket, name, generation)
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
        "model": _runtime().get_classifier().name,
        "failed_at": _now(),
    }
    written, outcome = _write_once(
        cfg, redis, key=key, table_id=cfg.failures_table_id, row=row, outcome=f"failure:{code}"
    )
    if not written:
        log.info("skipped %s: already ended as %s", key, outcome)
        return {"outcome": "duplicate", "key": key, "previous": outcome}
    log.warning("failed %s: %s (%s)", key, reason, code)
    return {"outcome": "failure", "key": key, "reason_code": code, "reason": reason}


def _attempt() -> int:
    job = get_current_job()
    if job is None or job.retries_left is None:
        return 1
    return (RETRY.max or 0) - job.retries_left + 1


def classify_object(bucket: str, name: str, generation: int, event_time: str | None = None) -> dict[str, Any]:
    cfg = get_config()
    redis = ledger.connection(cfg)
    key = ledger.object_key(bucket, name, generation)
    previous = ledger.outcome_get(redis, key)
    batch_written = _batch_written.pop(key, None)
    if previous == "row" and batch_written is not None:  # this very job's row, written with its batch
        return _row_result(key, *batch_written)
    if previous is not None:
        log.info("skipped %s: already ended as %s", key, previous)
        return {"outcome": "duplicate", "key": key, "previous": previous}

    runtime = _runtime()
    clf = runtime.get_classifier()
    fail = dict(bucket=bucket, name=name, generation=generation, upload=event_time, attempts=_attempt())
    try:
        blob = runtime.download(  # prefetched in a batch
            cfg, bucket=bucket, name=name, generation=generation, created=event_time is None
        )
    except gcs.ObjectGone as exc:
        return record_failure(cfg, redis, code="object_gone", reason=str(exc), **fail)
    except gcs.TooLarge as exc:
        return record_failure(cfg, redis, code="too_large", reason=str(exc), **fail)
    try:
        predictions = runtime.classify(clf, blob)
    except BadImage as exc:
        return record_failure(cfg, redis, code=exc.code, reason=exc.reason, blob=blob, **fail)

    row = _classification_row(bucket, name, generation, event_time, blob, predictions, clf.name)
    written, outcome = _write_once(cfg, redis, key=key, table_id=cfg.table_id, row=row, outcome="row")
    if not written:
        log.info("skipped %s: already ended as %s", key, outcome)
        return {"outcome": "duplicate", "key": key, "previous": outcome}
    return _row_result(key, predictions, clf.name)


def _classification_row(
    bucket: str,
    name: str,
    generation: int,
    event_time: str | None,
    blob: gcs.Blob,
    predictions: list[Any],
    model_name: str,
) -> dict[str, Any]:
    return {
        "image_name": name,
        "upload": event_time or _iso(blob.time_created) or _now(),
        "classifications": [{"classification": p.classification, "confidence": p.confidence} for p in predictions],
        "bucket": bucket,
        "generation": generation,
        "content_type": blob.content_type,
        "size_bytes": blob.size,
        "model": model_name,
        "processed_at": _now(),
    }


def _row_result(key: str, predictions: list[Any], model_name: str) -> dict[str, Any]:
    top = predictions[0]
    log.info("classified %s: %s (%.3f) by %s", key, top.classification, top.confidence, model_name)
    return {"outcome": "row", "key": key, "top": top.classification, "confidence": top.confidence}


# The rows of the current batch that `write_batch` wrote before the batch's jobs ran: key -> (predictions, model).
# Per process (the batching worker runs its jobs in-process) and only the current batch.
_batch_written: dict[str, tuple[list[Any], str]] = {}


def write_batch(cfg: Config, redis: Redis, objects: Sequence[tuple[str, str, int, str | None]]) -> int:
    """Write the rows of a batch's prefetched classifications in ONE BigQuery insert; returns how many were written.

    Each (bucket, name, generation, event_time) whose image the batch classified is written under the same rules
    as `_write_once`, key by key: a claim, no outcome yet, then the `inserting` marker, the insert (row id = key) and
    the outcome. Anything that `_write_once` would handle specially is simply left to the object's own job, which
    then runs `_write_once` as usual: a key whose claim is held elsewhere, a key that already has an outcome or an
    `inserting` marker (an earlier attempt died mid-write), and every key while the ledger is untrusted. Failure
    records are never batched. If the insert (or anything else here) fails, this raises: the markers stay, so each
    job asks BigQuery whether its row landed before inserting it itself (the crash path of `_write_once`).
    The jobs then run through rq; one whose key was written here returns its row result (see classify_object).
    """
    _batch_written.clear()
    runtime = _runtime()
    model_name = runtime.get_classifier().name
    token = f"local:batch-{uuid.uuid4().hex}"  # never taken over: expires after CLAIM_TTL_S if this process dies
    claimed: list[str] = []
    try:
        if not ledger.trusted(redis):
            return 0
        candidates: list[tuple[str, dict[str, Any], list[Any]]] = []
        for bucket, name, generation, event_time in objects:
            key = ledger.object_key(bucket, name, generation)
            blob, predictions = runtime.prefetched(key)
            if blob is None or predictions is None:
                continue  # not classified in the batch: its job does the work and meets its own error
            if not ledger.claim(redis, key, token, CLAIM_TTL_S):
                continue  # a live holder: the job waits for it as usual
            claimed.append(key)
            if ledger.outcome_get(redis, key) is not None or ledger.inserting(redis, key):
                continue
            row = _classification_row(bucket, name, generation, event_time, blob, predictions, model_name)
            candidates.append((key, row, predictions))
        if not candidates:
            return 0
        for key, _, _ in candidates:
            ledger.inserting_mark(redis, key)
        bigquery.insert_rows(
            cfg, cfg.table_id, [row for _, row, _ in candidates], row_ids=[k for k, _, _ in candidates]
        )
        for key, _, predictions in candidates:
            ledger.outcome_set(redis, key, "row")
            _batch_written[key] = (predictions, model_name)
            runtime.forget(key)
        return len(candidates)
    finally:
        for key in claimed:
            ledger.claim_release(redis, key, token)


def on_failure(
    job: Job,
    connection: Redis,
    exc_type: type[BaseException],
    exc_value: BaseException,
    traceback: TracebackType | None,
) -> None:
    """RQ calls this on every failed attempt; after the last one, leave a failure record an operator can read."""
    if job.retries_left:
        log.warning(
            "job %s attempt failed (%s: %s); %s retries left", job.id, exc_type.__name__, exc_value, job.retries_left
        )
        return
    kwargs = job.kwargs
    cfg = get_config()
    attempts = (RETRY.max or 0) + 1
    try:
        record_failure(
            cfg,
            connection,
            bucket=kwargs["bucket"],
            name=kwargs["name"],
            generation=kwargs["generation"],
            code="transient_exhausted",
            reason=f"gave up after {attempts} attempts: {exc_type.__name__}: {exc_value}",
            upload=kwargs.get("event_time"),
            attempts=attempts,
        )
    except Exception:
        # The failure stays in RQ's failed registry and reconcile will pick the object up again.
        log.exception("could not record the failure of job %s", job.id)
