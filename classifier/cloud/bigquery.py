"""BigQuery: the official client; BIGQUERY_EMULATOR_HOST points it at bqemulator locally."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_RETRY

from classifier.cloud import http
from classifier.config import Config

# Google's type that callers need (the infra schemas), named here: nobody writes `bigquery.bigquery.SchemaField`.
SchemaField = bigquery.SchemaField
F = SchemaField

CLASSIFICATIONS_SCHEMA = [
    F("image_name", "STRING", mode="REQUIRED"),
    F("upload", "TIMESTAMP", mode="REQUIRED"),
    F(
        "classifications",
        "RECORD",
        mode="REPEATED",
        fields=[F("classification", "STRING"), F("confidence", "FLOAT")],
    ),
    F("bucket", "STRING", mode="REQUIRED"),
    F("generation", "INTEGER", mode="REQUIRED"),
    F("content_type", "STRING"),
    F("size_bytes", "INTEGER"),
    F("model", "STRING"),
    F("processed_at", "TIMESTAMP"),
    # The image's share of its batch's forward pass (milliseconds); added later: NULL in older rows.
    F("inference_ms", "FLOAT"),
]

FAILURES_SCHEMA = [
    F("image_name", "STRING", mode="REQUIRED"),
    F("upload", "TIMESTAMP"),
    F("bucket", "STRING", mode="REQUIRED"),
    F("generation", "INTEGER", mode="REQUIRED"),
    F("content_type", "STRING"),
    F("size_bytes", "INTEGER"),
    F("reason_code", "STRING", mode="REQUIRED"),
    F("reason", "STRING", mode="REQUIRED"),
    F("attempts", "INTEGER"),
    F("model", "STRING"),
    F("failed_at", "TIMESTAMP"),
]


@dataclass(frozen=True)
class TableShape:
    """How a table is laid out for its queries: day partitions on the time every read filters on, clustered on
    what lookups filter on. A query that names a window of `partition_field` reads only those days."""

    partition_field: str | None
    clustering: tuple[str, ...] = ()

    def describe(self) -> str:
        part = f"partitioned by day on {self.partition_field}" if self.partition_field else "not partitioned"
        return part + (f", clustered on {', '.join(self.clustering)}" if self.clustering else ", not clustered")


CLASSIFICATIONS_SHAPE = TableShape("processed_at", ("bucket", "image_name"))
FAILURES_SHAPE = TableShape("failed_at", ("bucket", "image_name"))
UNSHAPED = TableShape(None)


@dataclass(frozen=True)
class TableLive:
    schema: list[SchemaField]
    shape: TableShape
    num_bytes: int = 0


class InsertError(Exception):
    pass


class BytesBudgetExceeded(Exception):
    """BigQuery refused a query that would bill more than BQ_MAX_BYTES_BILLED: nothing was billed."""


@functools.cache
def client(cfg: Config) -> bigquery.Client:
    if cfg.local:
        made = bigquery.Client(project=cfg.project, credentials=AnonymousCredentials())
    else:
        made = bigquery.Client(project=cfg.project)
    http.read_environment_once(made._http)  # the client's own AuthorizedSession, made on first use
    return made


# Every request has a deadline and every call a bounded total: the client's defaults are no per-request timeout and
# up to 10 minutes of retries. Reads, creates (Conflict is success), deletes (not_found_ok) and schema updates are
# idempotent, so they retry on the transient errors the client's DEFAULT_RETRY knows, with backoff.
CALL_TIMEOUT_S = 30.0
RETRY = DEFAULT_RETRY.with_timeout(90.0)
# A dashboard query or a DML statement: long enough for BigQuery's slowest ordinary answers, never unbounded.
QUERY_TIMEOUT_S = 60.0


def _bounded() -> dict[str, Any]:
    return {"timeout": CALL_TIMEOUT_S, "retry": RETRY}


# A job's write must end well inside its Redis claim (ledger CLAIM_TTL_S): the client's own retry would
# otherwise keep trying for 10 minutes. RQ retries the whole job with backoff instead.
WRITE_TIMEOUT_S = 20.0


def insert_row(cfg: Config, table_id: str, row: dict[str, Any], *, row_id: str) -> None:
    insert_rows(cfg, table_id, [row], row_ids=[row_id])


def insert_rows(cfg: Config, table_id: str, rows: Sequence[dict[str, Any]], *, row_ids: Sequence[str]) -> None:
    """One insert request for all `rows` (bounded like a single one); any refused row raises for the whole call."""
    errors = client(cfg).insert_rows_json(
        table_id,
        list(rows),
        row_ids=list(row_ids),
        retry=DEFAULT_RETRY.with_timeout(WRITE_TIMEOUT_S),
        timeout=WRITE_TIMEOUT_S / 2,
    )
    if errors:
        raise InsertError(f"insert into {table_id} refused: {errors}")


def query(
    cfg: Config,
    sql: str,
    params: Sequence[Any] = (),
    *,
    timeout_s: float = QUERY_TIMEOUT_S,
    max_bytes: int | None = None,
) -> list[dict[str, Any]]:
    """Run a parameterised query; `params` are ScalarQueryParameter objects, never formatted into the SQL.

    Every query carries `maximum_bytes_billed` (BQ_MAX_BYTES_BILLED unless `max_bytes` names a deliberate cap):
    one that would bill more raises BytesBudgetExceeded instead of a bill.
    `timeout_s` bounds the whole call (the client's default retries for up to 10 minutes)."""
    _, rows = _run(cfg, sql, params, timeout_s=timeout_s, max_bytes=max_bytes)
    return [dict(row.items()) for row in rows]


# An export's page: rows a web process holds at once while it streams a download (a few MB). Fewer, larger pages
# cost fewer round trips: 20,000 rows read locally in 38 s at 1,000 a page, 30 s at 5,000, 23 s in one.
PAGE_ROWS = 5000


def query_pages(
    cfg: Config,
    sql: str,
    params: Sequence[Any] = (),
    *,
    page_rows: int = PAGE_ROWS,
    timeout_s: float = QUERY_TIMEOUT_S,
) -> Iterator[list[dict[str, Any]]]:
    """Like `query`, capped the same way, but the result is read a page at a time as the caller consumes it: an
    export streams rows without holding them all. The job runs (and is billed) once; each further page is a read
    of its result, bounded by `timeout_s` like the first. Bound the rows in `sql` itself (LIMIT)."""
    _, rows = _run(cfg, sql, params, timeout_s=timeout_s, page_size=page_rows)
    for page in rows.pages:
        yield [dict(row.items()) for row in page]


def _budget_error(cfg: Config, exc: gexc.GoogleAPICallError, max_bytes: int | None) -> Exception | None:
    text = str(exc).lower()
    if "bytes billed" in text or "bytesbilledlimitexceeded" in text:
        cap = max_bytes or cfg.max_bytes_billed
        return BytesBudgetExceeded(
            f"BigQuery refused a query that would bill more than {cap:,} bytes (BQ_MAX_BYTES_BILLED); "
            "nothing was billed. Narrow the time window, or raise the setting if the cost is intended."
        )
    return None


def _run(
    cfg: Config,
    sql: str,
    params: Sequence[Any],
    *,
    timeout_s: float,
    max_bytes: int | None = None,
    page_size: int | None = None,
) -> tuple[bigquery.QueryJob, Any]:
    """Start the job and wait for it, within `timeout_s` in all. Retrying the request is safe (it carries a request
    id, or the client names the job, and a retry finds the same job); re-running a failed job (job_retry) is not
    done: a DML could run twice.

    jobs.query, not jobs.insert: its answer carries a finished query's first page, so a small read costs two
    round trips (jobs.query, then the jobs.get with which `result()` confirms the job's state) instead of three
    (jobs.insert, getQueryResults twice): 33 ms against 44 ms for `SELECT 1` locally. Not `query_and_wait` (one
    round trip): bqemulator answers a failed query with HTTP 200 and `errors`, which `query_and_wait` returns as
    an empty result; the jobs.get here raises it, as BigQuery's own non-2xx answer does. An export (`page_size`)
    keeps jobs.insert: its first page is then `page_size` rows, not whatever fits jobs.query's answer."""
    bounded = DEFAULT_RETRY.with_timeout(timeout_s)
    job_config = bigquery.QueryJobConfig(
        query_parameters=list(params), maximum_bytes_billed=max_bytes or cfg.max_bytes_billed
    )
    method = bigquery.enums.QueryApiMethod.INSERT if page_size else bigquery.enums.QueryApiMethod.QUERY
    try:
        job = client(cfg).query(
            sql, job_config=job_config, retry=bounded, job_retry=None, timeout=timeout_s / 2, api_method=method
        )
        return job, job.result(retry=bounded, timeout=timeout_s, page_size=page_size)
    except (gexc.BadRequest, gexc.Forbidden) as exc:
        raise (_budget_error(cfg, exc, max_bytes) or exc) from None


def array_param(name: str, type_: str, values: Sequence[Any]) -> bigquery.ArrayQueryParameter:
    return bigquery.ArrayQueryParameter(name, type_, list(values))


def param(name: str, type_: str, value: Any) -> bigquery.ScalarQueryParameter:
    return bigquery.ScalarQueryParameter(name, type_, value)


# One object generation, as `bucket = @bucket AND image_name = @name AND generation = @generation`.
OBJECT_MATCH = "bucket = @bucket AND image_name = @name AND generation = @generation"


def object_params(bucket: str, name: str, generation: int) -> list[bigquery.ScalarQueryParameter]:
    return [param("bucket", "STRING", bucket), param("name", "STRING", name), param("generation", "INT64", generation)]


# --- Live state and teardown, for the control plane's plan/apply/destroy ---


def dataset_get(cfg: Config, dataset_id: str) -> dict[str, Any] | None:
    try:
        dataset = client(cfg).get_dataset(dataset_id, **_bounded())
    except gexc.NotFound:
        return None
    return {"dataset_id": dataset_id, "location": dataset.location}


def dataset_create(cfg: Config, dataset_id: str) -> bool:
    """True when created (in GCP_LOCATION), False when it already existed: creating is idempotent, and the answer
    needs no read first."""
    dataset = bigquery.Dataset(dataset_id)
    dataset.location = cfg.location
    try:
        client(cfg).create_dataset(dataset, **_bounded())
    except gexc.Conflict:
        return False
    return True


def dataset_table_ids(cfg: Config, dataset_id: str) -> list[str]:
    try:
        return sorted(
            f"{t.project}.{t.dataset_id}.{t.table_id}" for t in client(cfg).list_tables(dataset_id, **_bounded())
        )
    except gexc.NotFound:
        return []


def dataset_delete(cfg: Config, dataset_id: str) -> None:
    """Only an empty dataset: tables are deleted one by one, each shown in the plan."""
    client(cfg).delete_dataset(dataset_id, delete_contents=False, not_found_ok=True, **_bounded())


def table_get(cfg: Config, table_id: str) -> TableLive | None:
    try:
        table = client(cfg).get_table(table_id, **_bounded())
    except gexc.NotFound:
        return None
    tp = table.time_partitioning
    field = (tp.field or "_PARTITIONTIME") if tp is not None else None
    shape = TableShape(field, tuple(table.clustering_fields or ()))
    return TableLive(schema=list(table.schema), shape=shape, num_bytes=int(table.num_bytes or 0))


def table_schema(cfg: Config, table_id: str) -> list[bigquery.SchemaField] | None:
    live = table_get(cfg, table_id)
    return live.schema if live is not None else None


def _table(table_id: str, schema: Sequence[bigquery.SchemaField], shape: TableShape) -> bigquery.Table:
    table = bigquery.Table(table_id, schema=list(schema))
    if shape.partition_field:
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=shape.partition_field
        )
    if shape.clustering:
        table.clustering_fields = list(shape.clustering)
    return table


def table_create(
    cfg: Config, table_id: str, schema: Sequence[bigquery.SchemaField], shape: TableShape = UNSHAPED
) -> bool:
    """True when created, False when it already existed (whatever its schema and shape: the plan compares those)."""
    try:
        client(cfg).create_table(_table(table_id, schema, shape), **_bounded())
    except gexc.Conflict:
        return False
    return True


# Copying a whole table (a migration) takes as long as the table is large: bounded, but by an hour.
COPY_TIMEOUT_S = 3600.0


def table_copy_rows(cfg: Config, source: str, target: str, columns: Sequence[str], *, max_bytes: int) -> int:
    """INSERT every row of `source` into `target` (same columns): one job, billed the source's bytes once."""
    cols = ", ".join(columns)
    sql = f"INSERT INTO `{target}` ({cols}) SELECT {cols} FROM `{source}`"
    job, _ = _run(cfg, sql, (), timeout_s=COPY_TIMEOUT_S, max_bytes=max_bytes)
    return int(job.num_dml_affected_rows or 0)


def table_schema_update(cfg: Config, table_id: str, schema: Sequence[bigquery.SchemaField]) -> None:
    """Additive changes only (new NULLABLE/REPEATED fields, REQUIRED relaxed to NULLABLE): BigQuery refuses the rest."""
    table = client(cfg).get_table(table_id, **_bounded())
    table.schema = list(schema)
    client(cfg).update_table(table, ["schema"], **_bounded())


def table_row_count(cfg: Config, table_id: str) -> int:
    """COUNT(*) with no filter reads table metadata only: 0 bytes billed on BigQuery."""
    try:
        return int(query(cfg, f"SELECT COUNT(*) AS n FROM `{table_id}`")[0]["n"])
    except gexc.NotFound:
        return 0


def table_delete(cfg: Config, table_id: str) -> None:
    client(cfg).delete_table(table_id, not_found_ok=True, **_bounded())


class StreamingBufferBusy(Exception):
    """BigQuery refuses DML on rows still in the streaming buffer (up to ~90 min after a streaming insert)."""


def dml(cfg: Config, sql: str, params: Sequence[Any] = (), *, timeout_s: float = QUERY_TIMEOUT_S) -> int:
    """Run a parameterised DELETE/UPDATE, capped like every query; returns the rows it affected."""
    try:
        job, _ = _run(cfg, sql, params, timeout_s=timeout_s)
    except gexc.BadRequest as exc:
        if "streaming buffer" in str(exc).lower():
            raise StreamingBufferBusy(str(exc)) from None
        raise
    return int(job.num_dml_affected_rows or 0)


def table_permissions(cfg: Config, table_id: str, permissions: Sequence[str]) -> set[str] | None:
    """Which of `permissions` the caller holds on the table (a dataset's grants included); None when it is missing."""
    try:
        response = client(cfg).test_iam_permissions(table_id, list(permissions), **_bounded())
    except gexc.NotFound:
        return None
    return set(response.get("permissions", []))
