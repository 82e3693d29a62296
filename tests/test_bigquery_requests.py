"""What the BigQuery client sends, at the HTTP boundary (`Client._call_api`), against the emulator: every query goes
through jobs.query with `maximumBytesBilled` in the request, and costs two round trips, not three."""

from __future__ import annotations

import time
from typing import Any
from unittest import mock

import pytest
from google.api_core import exceptions as gexc
from google.cloud import bigquery as gbq

from classifier.cloud import bigquery
from classifier.config import Config


def _calls(spy: Any) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c.kwargs["method"], c.kwargs["path"], c.kwargs.get("data") or {}) for c in spy.call_args_list]


def test_a_query_is_one_jobs_query_request_carrying_the_byte_cap(cfg: Config, stack: Any) -> None:
    params = [bigquery.param("since", "TIMESTAMP", None)]
    with mock.patch.object(gbq.Client, "_call_api", autospec=True, side_effect=gbq.Client._call_api) as spy:
        rows = bigquery.query(cfg, f"SELECT COUNT(*) AS n FROM `{cfg.table_id}` WHERE processed_at >= @since", params)
    assert rows == [{"n": 0}]
    calls = _calls(spy)
    method, path, body = calls[0]
    assert (method, path) == ("POST", f"/projects/{cfg.project}/queries")
    assert body["maximumBytesBilled"] == str(cfg.max_bytes_billed)
    assert body["queryParameters"][0]["name"] == "since" and body["requestId"]  # a retried request finds its job
    # Then one jobs.get (the job's final state), and no getQueryResults: the answer carried the rows.
    assert [(m, p.rsplit("/", 2)[-2]) for m, p, _ in calls[1:]] == [("GET", "jobs")]


def test_a_deliberate_cap_is_what_the_request_carries(cfg: Config, stack: Any) -> None:
    with mock.patch.object(gbq.Client, "_call_api", autospec=True, side_effect=gbq.Client._call_api) as spy:
        bigquery.query(cfg, "SELECT 1 AS one", max_bytes=52_428_800)
    assert _calls(spy)[0][2]["maximumBytesBilled"] == "52428800"


def test_a_failed_query_raises_though_the_emulator_answers_it_with_200(cfg: Config, stack: Any) -> None:
    # bqemulator answers jobs.query for a failed query with HTTP 200 and `errors`; BigQuery with an error status.
    # `Client.query_and_wait` would hand back an empty result here; the job's state makes it raise.
    with pytest.raises(gexc.BadRequest, match="boom"):
        bigquery.query(cfg, "SELECT ERROR('boom') AS x")
    with pytest.raises(gexc.NotFound):
        bigquery.query(cfg, f"SELECT 1 FROM `{cfg.table_id}_missing`")


def test_dml_through_jobs_query_says_how_many_rows_it_changed(cfg: Config, stack: Any) -> None:
    generation = int(time.time() * 1e6)
    row = {"image_name": "t-dml/a.png", "upload": "2026-11-30T00:00:00+00:00", "bucket": cfg.bucket}
    bigquery.insert_row(cfg, cfg.table_id, {**row, "generation": generation}, row_id=str(generation))
    sql = f"DELETE FROM `{cfg.table_id}` WHERE bucket = @bucket AND image_name = @name AND generation = @generation"
    assert bigquery.dml(cfg, sql, bigquery.object_params(cfg.bucket, row["image_name"], generation)) == 1


def test_the_byte_cap_refusal_of_jobs_query_is_the_clear_message(cfg: Config, stack: Any) -> None:
    refusal = gexc.BadRequest("Query exceeded limit for bytes billed: 1000000000. 2000000000 or higher required.")
    with (
        mock.patch.object(gbq.Client, "_call_api", autospec=True, side_effect=refusal),
        pytest.raises(bigquery.BytesBudgetExceeded, match="BQ_MAX_BYTES_BILLED"),
    ):
        bigquery.query(cfg, "SELECT 1 AS one")
