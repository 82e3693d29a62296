"""Reads. Every query is parameterised; table ids come from validated settings, never from requests."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from rq import Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from classifier import failures, jobs, ledger, listener, liveness, stats
from classifier.cloud import bigquery, gcs, monitoring
from classifier.config import Config
from classifier.queue import bound, depth, queue
from classifier.refusals import REFUSED_COUNT_KEY
from classifier.weights import resolve_model_name
from controlplane.review import selectors as review_selectors

# A heartbeat older than this (the listener beats every second) means the process is gone or hung.
LISTENER_STALE_S = 10


def _cfg() -> Config:
    return settings.SIGHTLINE


def _redis() -> Any:
    return ledger.connection(_cfg())


def pipeline_identity() -> dict[str, Any]:
    cfg = _cfg()
    return {
        "project": cfg.project,
        "bucket": cfg.bucket,
        "table": cfg.table_id,
        "failures_table": cfg.failures_table_id,
        "model": resolve_model_name(cfg),
        "local": cfg.local,
    }


# The dashboard lists one window of processed_at at a time (the partition column): the last day by default, and
# "Older" moves to the day before. A query names its window, so BigQuery reads only those days' partitions.
WINDOW = timedelta(days=1)
# Rows a clock a little ahead may have stamped: the live window ends this far after now.
CLOCK_SLACK = timedelta(minutes=5)
STORY_WINDOW = timedelta(days=30)
SUGGEST_WINDOW = timedelta(days=7)


# Each row holds the model's top 5 (classifier.model.TOP_K), most confident first: the label filter looks at these
# five positions by offset. A correlated `EXISTS (SELECT ... FROM UNNEST(classifications))` reads the same column on
# BigQuery, but DuckDB (bqemulator) runs it as a join over every row of the window: 2-6 s at 33,000 rows a day,
# against ~0.2 s for the five offsets.
LABEL_OFFSETS = 5


@dataclass(frozen=True)
class ClassificationFilter:
    label: str = ""
    name: str = ""
    since: datetime | None = None
    until: datetime | None = None
    before: datetime | None = None  # the window ends here: paging back window by window
    # The top-1 confidence, inclusive bounds in [0, 1] (views.py refuses anything else before a query is made).
    min_confidence: float | None = None
    max_confidence: float | None = None

    @property
    def active(self) -> bool:
        return bool(
            self.label
            or self.name
            or self.since
            or self.until
            or self.min_confidence is not None
            or self.max_confidence is not None
        )

    def window(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """[start, end) of processed_at that this listing reads."""
        end = self.until or self.before or (now or datetime.now(UTC)) + CLOCK_SLACK
        start = self.since or end - WINDOW
        return start, max(start, end)


def _with_latency(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        upload, done = row.get("upload"), row.get("processed_at")
        row["latency_s"] = (done - upload).total_seconds() if upload and done else None
    return rows


_COLUMNS = "image_name, upload, classifications, bucket, generation, content_type, size_bytes, model, processed_at"
_COLUMN_NAMES = tuple(c.strip() for c in _COLUMNS.split(","))


def classification_list(
    *, filters: ClassificationFilter, limit: int = 25, offset: int = 0, now: datetime | None = None
) -> tuple[list[dict[str, Any]], bool, tuple[datetime, datetime]]:
    """One page of one window, newest first; the flag says whether another page of this window follows."""
    cfg = _cfg()
    start, end = filters.window(now)
    where, params = classification_where(filters, start, end)
    params += [bigquery.param("limit", "INT64", limit + 1), bigquery.param("offset", "INT64", offset)]
    sql = (
        f"SELECT {_COLUMNS} FROM `{cfg.table_id}` WHERE {' AND '.join(where)} "
        "ORDER BY processed_at DESC, upload DESC LIMIT @limit OFFSET @offset"
    )
    rows = _with_latency(bigquery.query(cfg, sql, params))
    return rows[:limit], len(rows) > limit, (start, end)


def classification_where(filters: ClassificationFilter, start: datetime, end: datetime) -> tuple[list[str], list[Any]]:
    """The list's WHERE terms and their parameters: shared with the export (controlplane/insight), so a download
    holds exactly what the filtered list shows."""
    where = ["processed_at >= @start", "processed_at < @end"]
    params: list[Any] = [bigquery.param("start", "TIMESTAMP", start), bigquery.param("end", "TIMESTAMP", end)]
    if filters.label:
        # SAFE_OFFSET: NULL (no match) where a row holds fewer labels.
        where.append(
            "("
            + " OR ".join(
                f"STRPOS(LOWER(classifications[SAFE_OFFSET({i})].classification), LOWER(@label)) > 0"
                for i in range(LABEL_OFFSETS)
            )
            + ")"
        )
        params.append(bigquery.param("label", "STRING", filters.label))
    if filters.name:
        where.append("STRPOS(LOWER(image_name), LOWER(@name)) > 0")
        params.append(bigquery.param("name", "STRING", filters.name))
    # The top-1 confidence is the first element (rows are sorted by confidence): no UNNEST, same column read.
    if filters.min_confidence is not None:
        where.append("classifications[SAFE_OFFSET(0)].confidence >= @min_confidence")
        params.append(bigquery.param("min_confidence", "FLOAT64", filters.min_confidence))
    if filters.max_confidence is not None:
        where.append("classifications[SAFE_OFFSET(0)].confidence <= @max_confidence")
        params.append(bigquery.param("max_confidence", "FLOAT64", filters.max_confidence))
    return where, params


def _live_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the workers wrote it (JSON in Redis), typed as BigQuery returns it."""
    out = {column: row.get(column) for column in _COLUMN_NAMES}
    for column in ("upload", "processed_at"):
        out[column] = stats.parse_time(out[column])
    return out


def classification_live_page(
    *, limit: int = 25, now: datetime | None = None
) -> tuple[list[dict[str, Any]], bool, tuple[datetime, datetime]] | None:
    """Page 1 of the unfiltered live window, from the newest rows the workers recorded in Redis as they wrote them
    (classifier.stats): no BigQuery query. None when that record cannot prove it holds every row the page would
    show (it began after the window did and holds fewer than a page, or Redis lost it): the caller asks BigQuery."""
    start, end = ClassificationFilter().window(now)
    found, complete_from = stats.recent_rows(_redis(), start=start, end=end, limit=limit + 1)
    # Exact when every row processed since the oldest one it shows is in the record, or, when the window holds no
    # more than a page, since the window began.
    since = found[-1][1] if len(found) > limit else start.timestamp()
    if complete_from > since:
        return None
    rows = [_live_row(row) for row, _ in found]
    rows.sort(key=lambda r: (r["processed_at"], r["upload"] or r["processed_at"]), reverse=True)
    return _with_latency(rows[:limit]), len(rows) > limit, (start, end)


def models_in_window(*, start: datetime, end: datetime, limit: int = 50) -> list[dict[str, Any]]:
    """The models that wrote rows in [start, end) of processed_at, most rows first: what the model choosers offer
    (the review queue, the labels and comparison pages). One query over the window's partitions."""
    cfg = _cfg()
    sql = (
        f"SELECT model, COUNT(*) AS n FROM `{cfg.table_id}` WHERE processed_at >= @start AND processed_at < @end "
        "AND model IS NOT NULL GROUP BY model ORDER BY n DESC, model LIMIT @limit"
    )
    params = [
        bigquery.param("start", "TIMESTAMP", start),
        bigquery.param("end", "TIMESTAMP", end),
        bigquery.param("limit", "INT64", limit),
    ]
    return [{"model": r["model"], "rows": int(r["n"])} for r in bigquery.query(cfg, sql, params)]


def _list_for_name(table_id: str, columns: str, partition: str, *, name: str, since: datetime) -> list[dict[str, Any]]:
    """An object's records in one table, newest first (at most 100): a lookup by the clustering columns (bucket,
    image_name) within the partitions from `since` on. `partition` is that table's partition column."""
    cfg = _cfg()
    sql = (
        f"SELECT {columns} FROM `{table_id}` WHERE {partition} >= @since AND bucket = @bucket "
        f"AND image_name = @name ORDER BY {partition} DESC LIMIT 100"
    )
    params = [
        bigquery.param("since", "TIMESTAMP", since),
        bigquery.param("bucket", "STRING", cfg.bucket),
        bigquery.param("name", "STRING", name),
    ]
    return bigquery.query(cfg, sql, params)


def classification_list_for_name(*, name: str, since: datetime) -> list[dict[str, Any]]:
    return _with_latency(_list_for_name(_cfg().table_id, _COLUMNS, "processed_at", name=name, since=since))


# --- Failures -------------------------------------------------------------------------------------------------------

_FAILURE_COLUMNS = failures.COLUMNS


def _visible(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with its key and whether its delete is pending (refused by the streaming buffer, retried later)."""
    cutoffs = failures.pending(_redis())
    for row in rows:
        row["key"] = ledger.object_key(row["bucket"], row["image_name"], row["generation"])
        row["pending_delete"] = failures.is_pending(row, cutoffs)
    return rows


def failure_list(
    *, name: str = "", limit: int = 50, offset: int = 0, now: datetime | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """One page of the failures of the window (the last 30 days), newest first."""
    cfg = _cfg()
    where = ["failed_at >= @since"]
    params = [
        bigquery.param("since", "TIMESTAMP", failures.window_start(now)),
        bigquery.param("limit", "INT64", limit + 1),
        bigquery.param("offset", "INT64", offset),
    ]
    if name:
        where.append("STRPOS(LOWER(image_name), LOWER(@name)) > 0")
        params.append(bigquery.param("name", "STRING", name))
    sql = (
        f"SELECT {_FAILURE_COLUMNS} FROM `{cfg.failures_table_id}` WHERE {' AND '.join(where)} "
        "ORDER BY failed_at DESC LIMIT @limit OFFSET @offset"
    )
    rows = bigquery.query(cfg, sql, params)
    return _visible(rows[:limit]), len(rows) > limit


def failure_list_all(*, cap: int = 10_000) -> list[dict[str, Any]]:
    """Every open failure of the window (up to `cap`), oldest first, less those whose delete is pending: what
    "requeue all" acts on."""
    return failures.not_pending(_redis(), _visible(failures.open_failures(_cfg(), cap=cap)))


def failure_requeue_preview(*, shown: int, now: datetime | None = None) -> tuple[int, list[dict[str, Any]]]:
    """What "requeue all" would act on: how many, and the oldest `shown` of them. One query (the count rides along
    with the rows as a window function) unless some deletes are pending, which the count must leave out."""
    if failures.pending(_redis()):
        return failure_count(now=now), failure_list_all(cap=shown)
    cfg = _cfg()
    sql = (
        f"SELECT {_FAILURE_COLUMNS}, COUNT(*) OVER () AS total FROM `{cfg.failures_table_id}` "
        "WHERE failed_at >= @since ORDER BY failed_at LIMIT @cap"
    )
    params = [bigquery.param("since", "TIMESTAMP", failures.window_start(now)), bigquery.param("cap", "INT64", shown)]
    rows = bigquery.query(cfg, sql, params)
    total = int(rows[0]["total"]) if rows else 0
    return total, _visible([{k: v for k, v in row.items() if k != "total"} for row in rows])


def failure_get(*, bucket: str, name: str, generation: int) -> list[dict[str, Any]]:
    cfg = _cfg()
    sql = (
        f"SELECT {_FAILURE_COLUMNS} FROM `{cfg.failures_table_id}` "
        f"WHERE failed_at >= @since AND {bigquery.OBJECT_MATCH} ORDER BY failed_at DESC"
    )
    params = [
        bigquery.param("since", "TIMESTAMP", failures.window_start()),
        *bigquery.object_params(bucket, name, generation),
    ]
    return _visible(bigquery.query(cfg, sql, params))


def failure_list_for_name(*, name: str, since: datetime) -> list[dict[str, Any]]:
    return _visible(_list_for_name(_cfg().failures_table_id, _FAILURE_COLUMNS, "failed_at", name=name, since=since))


def failure_count(*, now: datetime | None = None) -> int:
    """Open failures: the records of the window, less those whose delete is pending (few, short-lived)."""
    cfg = _cfg()
    since = failures.window_start(now)
    sql = f"SELECT COUNT(*) AS n FROM `{cfg.failures_table_id}` WHERE failed_at >= @since"
    total = int(bigquery.query(cfg, sql, [bigquery.param("since", "TIMESTAMP", since)])[0]["n"])
    cutoffs = failures.pending(_redis())
    if not cutoffs:
        return total
    hidden = 0
    for bucket, keys in failures._by_bucket(cutoffs).items():
        for chunk in failures.chunks(keys):
            sql = (
                f"SELECT {_FAILURE_COLUMNS} FROM `{cfg.failures_table_id}` WHERE failed_at >= @since "
                f"AND {failures.KEYS_MATCH}"
            )
            params = [bigquery.param("since", "TIMESTAMP", since), *failures._key_params(bucket, chunk)]
            hidden += sum(1 for r in bigquery.query(cfg, sql, params) if failures.is_pending(r, cutoffs))
    return total - hidden


# --- Pipeline health ------------------------------------------------------------------------------------------------


def listener_status() -> dict[str, Any]:
    redis = _redis()
    raw = redis.get(listener.HEARTBEAT_KEY)
    return listener_state(json.loads(raw) if raw else None, desired=listener.desired_get(redis), now=time.time())


def listener_state(beat: dict[str, Any] | None, *, desired: str, now: float) -> dict[str, Any]:
    """running / paused / reconnecting from a fresh heartbeat; stopped after a clean exit; dead when it went quiet."""
    if beat is None:
        return {"state": "dead", "desired": desired, "detail": "no heartbeat: the listener is not running"}
    age = max(0.0, now - float(beat["at"]))
    state = beat["state"]
    if state != "stopped" and age > LISTENER_STALE_S:
        state = "dead"
    return {
        "state": state,
        "desired": desired,
        "age_s": age,
        "at": datetime.fromtimestamp(float(beat["at"]), UTC),
        "started_at": datetime.fromtimestamp(float(beat["started_at"]), UTC),
        "received": int(beat.get("received", 0)),
        "enqueued": int(beat.get("enqueued", 0)),
        "pid": beat.get("pid"),
        "host": beat.get("host"),
        "detail": f"last heartbeat {age:.0f} s ago" if state == "dead" else "",
    }


def queue_status() -> dict[str, Any]:
    q = queue(_cfg())
    redis = q.connection
    workers = []
    for worker in Worker.all(queue=q):
        state = getattr(worker.get_state(), "value", str(worker.get_state()))
        # rq keeps a killed worker registered, "busy", until its key expires: its own beat says whether it lives.
        if not liveness.alive(redis, worker.name):
            state = "dead"
        workers.append(
            {"name": worker.name, "state": state, "job": worker.get_current_job_id(), "hostname": worker.hostname}
        )
    live = [w for w in workers if w["state"] != "dead"]
    return {
        "name": q.name,
        "depth": q.count,
        # Taken off the queue by a worker (a batch) and not started yet: rq's intermediate list.
        "taken": redis.llen(q.intermediate_queue_key),
        "waiting": depth(q),  # queued, and taken by a batching worker but not started
        "bound": bound(_cfg(), q),
        "started": q.started_job_registry.count,
        "scheduled": q.scheduled_job_registry.count,
        "failed": q.failed_job_registry.count,
        "refused": int(redis.get(REFUSED_COUNT_KEY) or 0),
        "workers": workers,
        "workers_alive": len(live),
        "workers_busy": sum(1 for w in live if w["state"] == "busy"),
        "workers_dead": len(workers) - len(live),
    }


def pubsub_backlog() -> dict[str, Any]:
    """Messages waiting in the subscription (Cloud Monitoring, on GCP only), and whether the listener holds back."""
    beat = _redis().get(listener.HEARTBEAT_KEY)
    held_back = bool(json.loads(beat).get("held_back")) if beat else False
    try:
        return {"undelivered": monitoring.undelivered_messages(_cfg()), "detail": "", "held_back": held_back}
    except monitoring.Unavailable as exc:
        return {"undelivered": None, "detail": str(exc), "held_back": held_back}


def redis_memory() -> dict[str, Any]:
    """Redis' used memory against the alert threshold, and what it holds by kind (counted from rq's lists and
    registries and the ledger's day counters: no scan of the keyspace)."""
    cfg, redis = _cfg(), _redis()
    q = queue(cfg)
    info = redis.info("memory")
    with redis.pipeline(transaction=False) as pipe:
        pipe.dbsize()
        for key in (q.started_job_registry.key, q.finished_job_registry.key, q.failed_job_registry.key):
            pipe.zcard(key)
        pipe.zcard(q.scheduled_job_registry.key)
        total, started, finished, failed, scheduled = pipe.execute()
    return {
        "used_bytes": int(info["used_memory"]),
        "peak_bytes": int(info["used_memory_peak"]),
        "max_bytes": int(info.get("maxmemory", 0)) or None,
        "alert_bytes": cfg.redis_memory_alert_mb * 1024 * 1024,
        "keys": int(total),
        "kinds": {
            "jobs waiting": depth(q),
            "jobs running": int(started),
            "jobs awaiting retry": int(scheduled),
            "finished jobs kept": int(finished),
            "failed jobs kept": int(failed),
            "ledger outcomes": ledger.outcome_count(redis),
        },
    }


def throughput(*, minutes: int = 15, now: datetime | None = None) -> dict[str, Any]:
    """Rows per minute, upload-to-row latency and failures over the last minutes, from what the workers recorded
    in Redis as they wrote (classifier.stats): no BigQuery scan."""
    return stats.throughput(_redis(), minutes=minutes, now=now)


# --- One object's story ---------------------------------------------------------------------------------------------


def _job_summary(bucket: str, name: str, generation: int) -> dict[str, Any] | None:
    q = queue(_cfg())
    job_id = jobs.job_id(bucket, name, generation)
    if not Job.exists(job_id, q.connection):
        return None
    job = Job.fetch(job_id, connection=q.connection, serializer=JSONSerializer)
    result = job.latest_result()
    exc = result.exc_string if result else None
    return {
        "id": job_id,
        "status": getattr(job.get_status(), "value", str(job.get_status())),
        "enqueued_at": job.enqueued_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "retries_left": job.retries_left,
        "error": exc.strip().splitlines()[-1] if exc else None,
    }


def object_for_job(*, job_id: str) -> tuple[str, str, int] | None:
    """(bucket, name, generation) of a job id, while RQ still has the job (JOB_RESULT_TTL_S after it finished,
    FAILED_JOB_TTL_S after it failed)."""
    q = queue(_cfg())
    if not job_id.startswith("classify-") or not Job.exists(job_id, q.connection):
        return None
    kwargs = Job.fetch(job_id, connection=q.connection, serializer=JSONSerializer).kwargs
    return str(kwargs["bucket"]), str(kwargs["name"]), int(kwargs["generation"])


def object_story(*, name: str, known: tuple[str, int] | None = None, now: datetime | None = None) -> dict[str, Any]:
    """Everything known about one object name: each generation's job, ledger outcome, row and failures.

    `known` adds a (bucket, generation) found elsewhere, e.g. from a job id, that has no row, failure or object yet.
    Rows and failures of the last 30 days (STORY_WINDOW): a lookup by the clustering columns in those partitions."""
    cfg = _cfg()
    since = (now or datetime.now(UTC)) - STORY_WINDOW
    # Three independent reads from three services, at once: the page waits for the slowest, not for their sum
    # (a BigQuery query is ~0.5-1 s of round trips on GCP whatever it reads). The clients are thread-safe.
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="story") as pool:
        rows_f = pool.submit(classification_list_for_name, name=name, since=since)
        failed_f = pool.submit(failure_list_for_name, name=name, since=since)
        current_f = pool.submit(gcs.object_current, cfg, name=name)
        rows, failed, current = rows_f.result(), failed_f.result(), current_f.result()
    generations: dict[tuple[str, int], dict[str, Any]] = {}

    def entry(bucket: str, generation: int) -> dict[str, Any]:
        return generations.setdefault(
            (bucket, generation), {"bucket": bucket, "generation": generation, "rows": [], "failures": []}
        )

    for row in rows:
        entry(row["bucket"], row["generation"])["rows"].append(row)
    for failure in failed:
        entry(failure["bucket"], failure["generation"])["failures"].append(failure)
    if current is not None:
        entry(cfg.bucket, current.generation)["object"] = current
    if known is not None:
        entry(*known)
    redis = _redis()
    reviews = review_selectors.reviews_for_name(name=name)
    for (bucket, generation), item in generations.items():
        item["review"] = reviews.get((bucket, generation))
        item["job"] = _job_summary(bucket, name, generation)
        item["outcome"] = ledger.outcome_get(redis, ledger.object_key(bucket, name, generation))
        item["job_id"] = jobs.job_id(bucket, name, generation)
    ordered = sorted(generations.values(), key=lambda g: g["generation"], reverse=True)
    return {"name": name, "generations": ordered, "current": current, "since": since}


def object_names_like(*, text: str, limit: int = 20, now: datetime | None = None) -> list[str]:
    """Suggestions when a search does not name an object exactly: names seen in the last 7 days."""
    cfg = _cfg()
    since = (now or datetime.now(UTC)) - SUGGEST_WINDOW
    sql = (
        f"SELECT DISTINCT image_name FROM (SELECT image_name FROM `{cfg.table_id}` WHERE processed_at >= @since "
        f"UNION ALL SELECT image_name FROM `{cfg.failures_table_id}` WHERE failed_at >= @since) "
        "WHERE STRPOS(LOWER(image_name), LOWER(@text)) > 0 ORDER BY image_name LIMIT @limit"
    )
    params = [
        bigquery.param("since", "TIMESTAMP", since),
        bigquery.param("text", "STRING", text),
        bigquery.param("limit", "INT64", limit),
    ]
    return [r["image_name"] for r in bigquery.query(cfg, sql, params)]


# --- Alerts and the objective (controlplane/alerts/) -----------------------------------------------------------------


def queue_oldest_age_s(*, now: datetime | None = None) -> float | None:
    """Seconds the job at the head of the queue has waited; None when the queue is empty."""
    q = queue(_cfg())
    for job_id in q.get_job_ids(0, 1):
        job = Job.fetch(job_id, connection=q.connection, serializer=JSONSerializer)
        if job.enqueued_at is not None:
            return max(0.0, ((now or datetime.now(UTC)) - job.enqueued_at.replace(tzinfo=UTC)).total_seconds())
    return None


def workers_live(*, idle_stale_s: float, busy_stale_s: float, now: datetime | None = None) -> int:
    """Workers whose heartbeat is fresh. rq keeps a killed worker's key for its TTL plus a minute, so the registry
    alone would count a dead worker as alive for minutes; an idle worker beats at every dequeue timeout."""
    now = now or datetime.now(UTC)
    live = 0
    for worker in Worker.all(queue=queue(_cfg())):
        beat = worker.last_heartbeat
        if beat is None:
            continue
        age = (now - beat.replace(tzinfo=UTC)).total_seconds()
        busy = getattr(worker.get_state(), "value", str(worker.get_state())) == "busy"
        live += age <= (busy_stale_s if busy else idle_stale_s)
    return live


def objective_counts(*, windows_s: list[int], latency_s: float, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per window (seconds back from now): uploads that became a row, those within `latency_s`, failures, and from
    when the counters hold them all (`counted_since`, `complete`: see `stats.window_counts`).

    From what the workers record as they write (classifier/stats.py: per-minute and per-hour counters in Redis),
    not from the tables: the 30-day window costs the same at any rate of rows, and no BigQuery bytes at all."""
    return stats.window_counts(_redis(), windows_s=windows_s, within_s=latency_s, now=now)


def _latency_bucket_sql(micros: str) -> str:
    """SQL for the latency bucket index of classifier/stats.py (`bisect_left(BUCKETS_S, latency)`) of `micros`."""
    whens = " ".join(f"WHEN {micros} <= {round(b * 1_000_000)} THEN {i}" for i, b in enumerate(stats.BUCKETS_S))
    return f"CASE {whens} ELSE {len(stats.BUCKETS_S)} END"


def objective_hours_from_tables(*, start: datetime, end: datetime) -> dict[datetime, dict[str, int]]:
    """The per-hour counters `classifier.stats.record` keeps (rows, latency buckets, failures) of [start, end),
    counted from the tables: for refilling the hours of a Redis that lost them. One query over those partitions.

    Rows of the pipeline's own model only: the live counters leave a reprocess's rows out (classifier/delivery.py).
    Failure records since requeued or dismissed are no longer in their table, so an hour filled from it counts
    fewer failures than the live counters did."""
    cfg = _cfg()
    lat = "GREATEST(0, UNIX_MICROS(processed_at) - UNIX_MICROS(upload))"
    sql = (
        "SELECT 'r' AS kind, h, b, COUNT(*) AS n, SUM(ms) AS ms FROM (SELECT DIV(UNIX_SECONDS(processed_at), 3600) AS h, "
        f"{_latency_bucket_sql(lat)} AS b, DIV({lat}, 1000) AS ms FROM `{cfg.table_id}` "
        "WHERE processed_at >= @start AND processed_at < @end AND model = @model) GROUP BY h, b "
        "UNION ALL SELECT 'f' AS kind, DIV(UNIX_SECONDS(failed_at), 3600) AS h, -1 AS b, COUNT(*) AS n, 0 AS ms "
        f"FROM `{cfg.failures_table_id}` WHERE failed_at >= @start AND failed_at < @end GROUP BY h"
    )
    params = [
        bigquery.param("start", "TIMESTAMP", start),
        bigquery.param("end", "TIMESTAMP", end),
        bigquery.param("model", "STRING", resolve_model_name(cfg)),
    ]
    hours: dict[datetime, dict[str, int]] = {}
    for r in bigquery.query(cfg, sql, params):
        fields = hours.setdefault(datetime.fromtimestamp(int(r["h"]) * 3600, UTC), {})
        n = int(r["n"])
        if r["kind"] == "f":
            fields["failures"] = fields.get("failures", 0) + n
            continue
        fields["rows"] = fields.get("rows", 0) + n
        fields[f"b{int(r['b'])}"] = n
        fields["lat_sum_ms"] = fields.get("lat_sum_ms", 0) + int(r["ms"] or 0)
    return hours
