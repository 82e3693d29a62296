"""Every BigQuery query the app issues, recorded at the client boundary, and what each would read on BigQuery.

`recording()` wraps `google.cloud.bigquery.Client.query` (the one door every query and DML goes through) and
keeps each query's text, parameters and `maximum_bytes_billed`. `verdict()` reads a query's text: for each of the
two tables it names, whether the read prunes to a window of the partition column, is a lookup by the clustering
columns, or is a metadata-only count; anything else reads the whole table. Used by tests/test_query_bounds.py
(which fails on an unbounded query) and by bench/dashboard_cost.py (the measure).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from google.cloud import bigquery as gbq

PRUNES = "prunes to the window"
CLUSTERED = "clustered lookup"
METADATA = "metadata only"
MIGRATION = "migration copy (capped at the table's size)"
UNBOUNDED = "READS THE WHOLE TABLE"


@dataclass(frozen=True)
class Recorded:
    sql: str
    max_bytes: int | None
    params: tuple[str, ...]

    def tables(self, *table_ids: str) -> list[str]:
        return [t for t in table_ids if f"`{t}`" in self.sql]


@contextmanager
def recording() -> Iterator[list[Recorded]]:
    seen: list[Recorded] = []
    real = gbq.Client.query

    def query(self: gbq.Client, sql: str, *args: Any, **kwargs: Any) -> Any:
        config = kwargs.get("job_config")
        params = tuple(p.name for p in getattr(config, "query_parameters", None) or [])
        seen.append(Recorded(" ".join(sql.split()), getattr(config, "maximum_bytes_billed", None), params))
        return real(self, sql, *args, **kwargs)

    with mock.patch.object(gbq.Client, "query", query):
        yield seen


def _segment_verdict(segment: str, table: str, partition: str) -> str:
    t = re.escape(table)
    if re.search(rf"^INSERT INTO `{t}` \(.*\) SELECT .* FROM `[^`]+`$", segment) or re.search(
        rf"^INSERT INTO `[^`]+` \(.*\) SELECT .* FROM `{t}`$", segment
    ):
        return MIGRATION
    if re.fullmatch(rf"SELECT COUNT\(\*\) AS n FROM `{re.escape(table)}`", segment):
        return METADATA
    if re.search(rf"(?<![\w.])(?:\w+\.)?{partition}\s*>=\s*@\w+", segment):
        return PRUNES
    bucket = re.search(r"(?:\w+\.)?bucket = @bucket\b", segment)
    name = re.search(r"(?:\w+\.)?image_name (?:= @name\b|IN UNNEST\(@names\))", segment)
    return CLUSTERED if bucket and name else UNBOUNDED


def verdict(sql: str, partitions: dict[str, str]) -> dict[str, str]:
    """Table id -> how the query reads it (the worst of its parts), for each table of `partitions` it names.
    `partitions`: table id -> its partition column."""
    order = [MIGRATION, PRUNES, METADATA, CLUSTERED, UNBOUNDED]
    out: dict[str, str] = {}
    for segment in re.split(r"\bUNION ALL\b", sql):
        segment = segment.strip()
        for table, column in partitions.items():
            if f"`{table}`" in segment:
                found = _segment_verdict(segment, table, column)
                out[table] = max(out.get(table, PRUNES), found, key=order.index)
    return out
