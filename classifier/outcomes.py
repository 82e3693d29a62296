"""What BigQuery already holds for object generations: the source of truth behind the Redis ledger.

One query per bucket and page of keys (both tables, keys as array parameters), filtered on the clustering columns
(`bucket`, `image_name IN UNNEST(@names)`) and, when the caller knows when the objects were uploaded, on the
partition columns too: a row is processed, and a failure recorded, after its upload. Used by a job only on the
rare path where the ledger cannot answer, and by reconcile once per listed page of the bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from classifier import ledger
from classifier.cloud import bigquery
from classifier.config import Config
from classifier.weights import resolve_model_name

QUERY_TIMEOUT_S = 20.0
# Event times and object creation times come from other clocks than processed_at: a margin before the earliest.
CLOCK_MARGIN = timedelta(hours=1)
_KEY = "CONCAT({a}.bucket, '/', {a}.image_name, '#', CAST({a}.generation AS STRING))"


def model_match(alias: str, *, live: bool) -> str:
    """Rows and failures of model @model. The column holds the worker's label, "<model id> (<weights file>)". The
    live model's also claims rows written before the column existed (NULL)."""
    match = f"({alias}.model = @model OR STARTS_WITH({alias}.model, CONCAT(@model, ' (')))"
    return f"({alias}.model IS NULL OR {match})" if live else match


def _match(alias: str, column: str, since: datetime | None, *, live: bool) -> str:
    key = _KEY.format(a=alias)
    window = f"{alias}.{column} >= @since AND " if since is not None else ""
    return (
        f"{window}{alias}.bucket = @bucket AND {alias}.image_name IN UNNEST(@names) AND {key} IN UNNEST(@keys) "
        f"AND {model_match(alias, live=live)}"
    )


def find(cfg: Config, keys: Sequence[str], *, since: datetime | None = None) -> dict[str, list[str]]:
    """Delivery key -> the outcomes BigQuery holds for it ("row", "failure:<code>"); keys with none are absent.

    A key is of one model (ledger.model_key): the live model's (resolve_model_name) when it names none, so another
    model's rows of the same object never answer for it. One query per bucket and model.
    `since`: the earliest upload among the keys, when known: only partitions from then on are read.
    A list, so a doubled row shows as two entries."""
    found: dict[str, list[str]] = {}
    groups: dict[tuple[str, str | None], dict[str, str]] = {}  # (bucket, model) -> object key -> delivery key
    for key in keys:
        object_key, model = ledger.split_model(key)
        groups.setdefault((ledger.parse_key(object_key)[0], model), {})[object_key] = key
    for (bucket, model), by_object in groups.items():
        live = model is None
        sql = (
            f"SELECT {_KEY.format(a='r')} AS k, 'row' AS outcome FROM `{cfg.table_id}` AS r "
            f"WHERE {_match('r', 'processed_at', since, live=live)} "
            "UNION ALL "
            f"SELECT {_KEY.format(a='f')} AS k, CONCAT('failure:', f.reason_code) AS outcome "
            f"FROM `{cfg.failures_table_id}` AS f WHERE {_match('f', 'failed_at', since, live=live)}"
        )
        params = [
            bigquery.param("bucket", "STRING", bucket),
            bigquery.array_param("names", "STRING", sorted({ledger.parse_key(k)[1] for k in by_object})),
            bigquery.array_param("keys", "STRING", sorted(by_object)),
            bigquery.param("model", "STRING", model or resolve_model_name(cfg)),
        ]
        if since is not None:
            params.append(bigquery.param("since", "TIMESTAMP", since - CLOCK_MARGIN))
        for row in bigquery.query(cfg, sql, params, timeout_s=QUERY_TIMEOUT_S):
            found.setdefault(by_object[row["k"]], []).append(row["outcome"])
    return found
