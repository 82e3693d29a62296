"""Reprocessing with another model: a selection of classified objects enqueued, a page at a time, for that model.

Each object gets one job on the target model's queue (classifier.queue.queue_name), classified by a worker holding
that model through the same download and write path as a live upload, keyed by model (ledger.model_key): one row per
object generation per model, never doubled. A run is a chain of short steps on the live queue, each scheduled by rq a
few seconds after the last: a step checks the progress of what was enqueued, then enqueues what the target queue has
room for (classifier.queue.bound), so a run never fills Redis nor takes the live uploads' room. State is in Redis;
the dashboard reads it (controlplane/reprocess/).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from rq.job import Job
from rq.serializers import JSONSerializer

from classifier import ledger, operations, outcomes
from classifier.cloud import bigquery
from classifier.config import Config

log = logging.getLogger(__name__)

OPS = operations.Operations(
    prefix="sightline:reprocess:op:",
    latest="sightline:reprocess:latest",
    counters=("total", "enqueued", "done", "failed", "lost"),
)
PENDING_PREFIX = "sightline:reprocess:pending:"  # a set per run: the ledger keys enqueued and not yet ended
STEP_S = 2
PAGE = 500  # the most enqueued, and the most checked for progress, per step
MAX_OBJECTS = 100_000  # one run's cap: the page says so
MAX_WINDOW_DAYS = 31  # a selection's window is at most this long: each page reads only its partitions
STATES_ACTIVE = ("running", "cancelling")


@dataclass(frozen=True)
class Selection:
    """Which objects: those with a row processed in [since, until), in `bucket`, whose name starts with `prefix`, whose
    top-1 label is `label` ("" for any), that have no row yet for `model`."""

    model: str
    bucket: str
    since: datetime
    until: datetime
    prefix: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        if not ledger.MODEL_ID.fullmatch(self.model):
            raise ValueError(f"not a model id: {self.model[:60]!r}")
        if not self.since < self.until or self.until - self.since > timedelta(days=MAX_WINDOW_DAYS):
            raise ValueError(f"the window must run forwards and last at most {MAX_WINDOW_DAYS} days")

    def as_fields(self) -> dict[str, str]:
        return {
            "model": self.model,
            "bucket": self.bucket,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "prefix": self.prefix,
            "label": self.label,
        }

    @classmethod
    def from_fields(cls, f: dict[str, str]) -> Selection:
        return cls(
            model=f["model"],
            bucket=f["bucket"],
            since=datetime.fromisoformat(f["since"]),
            until=datetime.fromisoformat(f["until"]),
            prefix=f.get("prefix", ""),
            label=f.get("label", ""),
        )


def _candidates_sql(cfg: Config, sel: Selection) -> str:
    """Objects with a source row in the window and none of the target model's. A target row is written after its
    source row, so looking for it from `since` on reads only the window's partitions and the days after."""
    filters = ["s.processed_at >= @since", "s.processed_at < @until", "s.bucket = @bucket"]
    if sel.prefix:
        filters.append("STARTS_WITH(s.image_name, @prefix)")
    if sel.label:
        filters.append("s.classifications[SAFE_OFFSET(0)].classification = @label")
    return (
        "WITH src AS (SELECT s.bucket, s.image_name, s.generation, MIN(s.upload) AS upload "
        f"FROM `{cfg.table_id}` AS s WHERE {' AND '.join(filters)} GROUP BY s.bucket, s.image_name, s.generation), "
        "done AS (SELECT DISTINCT t.image_name, t.generation "
        f"FROM `{cfg.table_id}` AS t WHERE t.processed_at >= @since AND t.bucket = @bucket "
        f"AND {outcomes.model_match('t', live=False)}) "
        "SELECT src.bucket, src.image_name, src.generation, src.upload FROM src LEFT JOIN done "
        "ON src.image_name = done.image_name AND src.generation = done.generation WHERE done.image_name IS NULL"
    )


def _params(sel: Selection) -> list[Any]:
    params = [
        bigquery.param("since", "TIMESTAMP", sel.since),
        bigquery.param("until", "TIMESTAMP", sel.until),
        bigquery.param("bucket", "STRING", sel.bucket),
        bigquery.param("model", "STRING", sel.model),
    ]
    if sel.prefix:
        params.append(bigquery.param("prefix", "STRING", sel.prefix))
    if sel.label:
        params.append(bigquery.param("label", "STRING", sel.label))
    return params


def count(cfg: Config, sel: Selection) -> int:
    """The dry run: how many objects a run would enqueue now (one bounded query)."""
    rows = bigquery.query(cfg, f"SELECT COUNT(*) AS n FROM ({_candidates_sql(cfg, sel)})", _params(sel))
    return int(rows[0]["n"]) if rows else 0


def page(cfg: Config, sel: Selection, *, after: tuple[str, int] | None, limit: int) -> list[dict[str, Any]]:
    """The next `limit` candidates after `after` (name, generation), in that order."""
    sql = f"SELECT * FROM ({_candidates_sql(cfg, sel)}) AS c"
    params = [*_params(sel), bigquery.param("limit", "INT64", limit)]
    if after is not None:
        sql += " WHERE c.image_name > @after_name OR (c.image_name = @after_name AND c.generation > @after_gen)"
        params += [bigquery.param("after_name", "STRING", after[0]), bigquery.param("after_gen", "INT64", after[1])]
    return bigquery.query(cfg, sql + " ORDER BY c.image_name, c.generation LIMIT @limit", params)


# --- a run: its state in Redis, advanced by steps ----------------------------------------------------------------


def start(cfg: Config, redis: Redis, sel: Selection, *, total: int, user: str) -> str:
    """Record a run and schedule its first step; returns its id."""
    counters = {"total": min(total, MAX_OBJECTS), "enqueued": 0, "done": 0, "failed": 0, "lost": 0}
    fields = sel.as_fields() | counters | {"state": "running", "user": user, "exhausted": "", "error": ""}
    op_id = OPS.start(redis, fields)
    _schedule(cfg, op_id, delay_s=0)
    return op_id


def get(redis: Redis, op_id: str | None = None) -> dict[str, Any] | None:
    """A run's state (the latest when no id is given), or None."""
    op = OPS.get(redis, op_id)
    if op is not None:
        op["pending"] = int(redis.scard(PENDING_PREFIX + op["id"]))
        op["active"] = op["state"] in STATES_ACTIVE
    return op


def cancel(redis: Redis, op_id: str) -> bool:
    """Ask a running run to stop; its next step takes back what is still queued. False when it was not running."""
    if get(redis, op_id) is None or ledger.text(redis.hget(OPS.key(op_id), "state") or b"") != "running":
        return False
    OPS.set(redis, op_id, state="cancelling")
    return True


def _schedule(cfg: Config, op_id: str, *, delay_s: int) -> None:
    from classifier.queue import queue  # classifier.queue imports classifier.jobs, which imports this lazily

    q = queue(cfg)
    job_id = f"reprocess-{op_id}-{uuid.uuid4().hex[:8]}"
    if delay_s:
        q.enqueue_in(timedelta(seconds=delay_s), "classifier.jobs.reprocess_step", op_id, job_id=job_id, result_ttl=60)
    else:
        q.enqueue("classifier.jobs.reprocess_step", op_id, job_id=job_id, result_ttl=60)


def step(cfg: Config, redis: Redis, op_id: str) -> str:
    """One step: check progress, enqueue what there is room for, schedule the next step. Returns the run's state."""
    op = get(redis, op_id)
    if op is None or not op["active"]:
        return op["state"] if op else "gone"
    sel = Selection.from_fields(op)
    try:
        if op["state"] == "cancelling":
            _take_back(cfg, redis, op_id, sel.model)
            OPS.set(redis, op_id, state="cancelled", finished=time.time())
            return "cancelled"
        _check(cfg, redis, op_id, sel.model)
        if not op["exhausted"]:
            _enqueue_page(cfg, redis, op, sel)
    except Exception as exc:
        OPS.set(redis, op_id, state="failed", error=f"{exc.__class__.__name__}: {exc}"[:500], finished=time.time())
        log.exception("reprocess %s failed", op_id)
        raise
    op = get(redis, op_id)
    assert op is not None
    if op["exhausted"] and op["pending"] == 0 and op["state"] == "running":
        OPS.set(redis, op_id, state="done", finished=time.time())
        log.info("reprocess %s with %s done: %d enqueued, %d done", op_id, sel.model, op["enqueued"], op["done"])
        return "done"
    _schedule(cfg, op_id, delay_s=STEP_S)
    return str(op["state"])


def _room(cfg: Config, model: str) -> int:
    """What the target queue has room for; on the live queue (the target is the live model) half of it, so the
    live uploads keep room of their own."""
    from classifier.queue import bound, depth, queue, routed_model

    q = queue(cfg, model)
    room = bound(cfg, q) - depth(q)
    return max(0, room // 2 if routed_model(cfg, model) is None else room)


def _enqueue_page(cfg: Config, redis: Redis, op: dict[str, Any], sel: Selection) -> None:
    from classifier.queue import enqueue_classification

    left = op["total"] - op["enqueued"]
    limit = min(PAGE, _room(cfg, sel.model), left)
    if left <= 0:
        OPS.set(redis, op["id"], exhausted="1")
        return
    if limit <= 0:
        return  # the queue is full: the next step looks again
    after = (op["after_name"], int(op["after_gen"])) if op.get("after_name") else None
    rows = page(cfg, sel, after=after, limit=limit)
    enqueued = 0
    for row in rows:
        upload = row["upload"]
        _, created = enqueue_classification(
            cfg,
            bucket=row["bucket"],
            name=row["image_name"],
            generation=int(row["generation"]),
            event_time=upload.isoformat() if isinstance(upload, datetime) else upload,
            model=sel.model,
        )
        if created:
            redis.sadd(
                PENDING_PREFIX + op["id"], ledger.object_key(row["bucket"], row["image_name"], row["generation"])
            )
            enqueued += 1
    redis.expire(PENDING_PREFIX + op["id"], operations.TTL_S)
    fields: dict[str, Any] = {}
    if rows:
        fields.update(after_name=rows[-1]["image_name"], after_gen=int(rows[-1]["generation"]))
    if len(rows) < limit:
        fields["exhausted"] = "1"
    if fields:
        OPS.set(redis, op["id"], **fields)
    OPS.incr(redis, op["id"], enqueued=enqueued)


def _check(cfg: Config, redis: Redis, op_id: str, model: str) -> None:
    """Move what ended (a row, a failure) or was lost (its job gone without an outcome) out of the pending set."""
    from classifier.queue import routed_model

    routed = routed_model(cfg, model)
    members: list[bytes] = redis.srandmember(PENDING_PREFIX + op_id, PAGE) or []  # type: ignore[assignment]
    pending = [ledger.text(k) for k in members]
    if not pending:
        return
    found = ledger.outcome_get_many(redis, [ledger.model_key(k, routed) for k in pending])
    done = failed = lost = 0
    finished: list[str] = []
    for key in pending:
        outcome = found[ledger.model_key(key, routed)]
        if outcome is None:
            if _job_live(cfg, key, routed):
                continue
            lost += 1
        elif outcome == "row":
            done += 1
        else:
            failed += 1
        finished.append(key)
    if finished:
        redis.srem(PENDING_PREFIX + op_id, *finished)
    OPS.incr(redis, op_id, done=done, failed=failed, lost=lost)


def _job_live(cfg: Config, key: str, model: str | None) -> bool:
    from classifier import jobs
    from classifier.queue import LIVE_STATUSES, queue

    q = queue(cfg, model)
    job_id = jobs.job_id(*ledger.parse_key(key), model)
    try:
        job = Job.fetch(job_id, connection=q.connection, serializer=JSONSerializer)
    except Exception:
        return False
    return job.get_status(refresh=False) in LIVE_STATUSES


def _take_back(cfg: Config, redis: Redis, op_id: str, model: str) -> None:
    """A cancelled run's jobs still waiting in the queue leave it; what a worker already holds finishes."""
    from classifier import jobs
    from classifier.queue import queue, routed_model

    routed = routed_model(cfg, model)
    q = queue(cfg, routed)
    keys = [ledger.text(k) for k in redis.smembers(PENDING_PREFIX + op_id)]
    removed = 0
    for key in keys:
        job_id = jobs.job_id(*ledger.parse_key(key), routed)
        removed += int(redis.lrem(q.key, 1, job_id))
    redis.delete(PENDING_PREFIX + op_id)
    OPS.set(redis, op_id, cancelled_jobs=removed)
    log.info("reprocess %s cancelled: %d queued jobs taken back", op_id, removed)
