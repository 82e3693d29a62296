"""What BigQuery already holds for object generations: the source of truth behind the Redis ledger.

One query for any number of keys (both tables, keys as an array parameter): used by a job only on the
rare path where the ledger cannot answer, and by reconcile once per listed page of the bucket.
"""

from __future__ import annotations

from collections.abc import Sequence

from classifier.cloud import bigquery
from classifier.config import Config

QUERY_TIMEOUT_S = 20.0


def _key_sql(alias: str) -> str:
    return f"CONCAT({alias}.bucket, '/', {alias}.image_name, '#', CAST({alias}.generation AS STRING))"


def find(cfg: Config, keys: Sequence[str]) -> dict[str, list[str]]:
    """Key -> the outcomes BigQuery holds for it ("row", "failure:<code>"); keys with none are absent.

    A list, so a doubled row shows as two entries."""
    if not keys:
        return {}
    sql = (
        f"SELECT {_key_sql('r')} AS k, 'row' AS outcome FROM `{cfg.table_id}` AS r "
        f"WHERE {_key_sql('r')} IN UNNEST(@keys) "
        "UNION ALL "
        f"SELECT {_key_sql('f')} AS k, CONCAT('failure:', f.reason_code) AS outcome FROM `{cfg.failures_table_id}` AS f "
        f"WHERE {_key_sql('f')} IN UNNEST(@keys)"
    )
    found: dict[str, list[str]] = {}
    rows = bigquery.query(cfg, sql, [bigquery.array_param("keys", "STRING", keys)], timeout_s=QUERY_TIMEOUT_S)
    for row in rows:
        found.setdefault(row["k"], []).append(row["outcome"])
    return found
