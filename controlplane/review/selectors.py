"""Reads of the review queue: the unsure classifications of one model in a window, not yet reviewed, least sure
first; the row a verdict judges; the verdicts of one object.

Every BigQuery query names a window of processed_at (the partition column), and the row lookup also names the
clustering columns (bucket, image_name): a page of the queue reads the window's days, never the whole table.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from classifier import ledger
from classifier.cloud import bigquery
from classifier.config import Config
from classifier.weights import resolve_model_name
from controlplane import livecache
from controlplane import selectors as main_selectors
from controlplane.review.models import Review
from controlplane.review.rules import Thresholds, candidate_reasons

RANGES = {"24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_RANGE = "24h"
# Rows a clock a little ahead may have stamped: the window ends this far after now (as the dashboard's).
CLOCK_SLACK = timedelta(minutes=5)
# How far back a verdict's row is looked up: the longest window, and a day for a page left open.
LOOKBACK = max(RANGES.values()) + timedelta(days=1)
# The queue leaves out objects already reviewed by naming their keys in the query; a row of the window can only
# have been reviewed after the window began, so only those reviews are named, the newest this many (about 1 MB).
REVIEWED_KEYS_MAX = 20_000
# Paging through the queue (j/k) and a reload share one query for this long; a verdict changes the query.
QUEUE_CACHE_S = 30.0
MODELS_CACHE_S = 60.0
MODELS_SHOWN = 20


def _cfg() -> Config:
    return settings.SIGHTLINE


def live_model() -> str:
    return resolve_model_name(_cfg())


@dataclass(frozen=True)
class QueueSpec:
    """One queue: a model's rows in [start, end) of processed_at whose top-1 is unsure by `thresholds`."""

    model: str
    start: datetime
    end: datetime
    thresholds: Thresholds = field(default_factory=Thresholds)

    @classmethod
    def of(cls, *, model: str, range_: str, thresholds: Thresholds, now: datetime | None = None) -> QueueSpec:
        # The live window's end moves by the minute, so a reload within the minute asks the same query.
        now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
        end = now + CLOCK_SLACK
        return cls(model=model, start=end - RANGES[range_], end=end, thresholds=thresholds)


@dataclass(frozen=True)
class QueuePage:
    rows: list[dict[str, Any]]
    pending: int  # candidates of the window not yet reviewed, all pages
    offset: int
    reviewed_left_out: int  # reviews named in the query to leave their objects out
    reviewed_truncated: bool  # more reviews since the window's start than REVIEWED_KEYS_MAX: some may show again


def reviewed_keys_since(start: datetime) -> tuple[list[str], bool]:
    """Keys (ledger.object_key) of the objects reviewed since `start`, newest first, at most REVIEWED_KEYS_MAX."""
    found = list(
        Review.objects.filter(reviewed_at__gte=start)
        .order_by("-reviewed_at", "-id")
        .values_list("bucket", "image_name", "generation")[: REVIEWED_KEYS_MAX + 1]
    )
    keys = [ledger.object_key(b, n, g) for b, n, g in found[:REVIEWED_KEYS_MAX]]
    return keys, len(found) > REVIEWED_KEYS_MAX


_KEY = "CONCAT(bucket, '/', image_name, '#', CAST(generation AS STRING))"
_TOP1 = "IFNULL(classifications[SAFE_OFFSET(0)].confidence, 0)"
_TOP2 = "IFNULL(classifications[SAFE_OFFSET(1)].confidence, 0)"


def _candidates_query(
    cfg: Config, spec: QueueSpec, reviewed: list[str], *, limit: int, offset: int
) -> list[dict[str, Any]]:
    """One page of the queue, with the number of candidates in all (a window count over the same rows)."""
    sql = (
        "SELECT bucket, image_name, generation, model, processed_at, classifications, top1, margin, "
        "COUNT(*) OVER () AS pending FROM ("
        f"SELECT bucket, image_name, generation, model, processed_at, classifications, {_TOP1} AS top1, "
        f"{_TOP1} - {_TOP2} AS margin FROM `{cfg.table_id}` "
        "WHERE processed_at >= @start AND processed_at < @end AND model = @model"
        f") WHERE (top1 < @confidence_below OR margin < @margin_below) AND {_KEY} NOT IN UNNEST(@reviewed) "
        "ORDER BY top1, margin, processed_at, image_name, generation LIMIT @limit OFFSET @offset"
    )
    params = [
        bigquery.param("start", "TIMESTAMP", spec.start),
        bigquery.param("end", "TIMESTAMP", spec.end),
        bigquery.param("model", "STRING", spec.model),
        bigquery.param("confidence_below", "FLOAT64", spec.thresholds.confidence_below),
        bigquery.param("margin_below", "FLOAT64", spec.thresholds.margin_below),
        bigquery.array_param("reviewed", "STRING", reviewed),
        bigquery.param("limit", "INT64", limit),
        bigquery.param("offset", "INT64", offset),
    ]
    return bigquery.query(cfg, sql, params)


def _page(spec: QueueSpec, reviewed: list[str], truncated: bool, limit: int, offset: int) -> QueuePage:
    cfg = _cfg()
    rows = _candidates_query(cfg, spec, reviewed, limit=limit, offset=offset)
    if not rows and offset > 0:  # past the end (the queue shrank): the last page instead
        first = _candidates_query(cfg, spec, reviewed, limit=1, offset=0)
        total = int(first[0]["pending"]) if first else 0
        offset = max(0, (total - 1) // limit * limit)
        rows = _candidates_query(cfg, spec, reviewed, limit=limit, offset=offset) if total else []
    for row in rows:
        row["key"] = ledger.object_key(row["bucket"], row["image_name"], row["generation"])
        row["reasons"] = candidate_reasons(row["classifications"], spec.thresholds)
    pending = int(rows[0]["pending"]) if rows else 0
    return QueuePage(rows, pending, offset, len(reviewed), truncated)


def review_queue(*, spec: QueueSpec, limit: int = 20, offset: int = 0) -> tuple[QueuePage, float]:
    """One page of the queue and its age in seconds. Shared for QUEUE_CACHE_S by every tab asking the same page
    with the same reviews left out: a verdict changes the reviews, so the next page view asks BigQuery again."""
    # A worker's clock a little ahead stamps processed_at after the review of its row began: the slack covers it.
    reviewed, truncated = reviewed_keys_since(spec.start - CLOCK_SLACK)
    digest = hashlib.sha256(repr((spec, limit, offset, truncated)).encode() + "\n".join(reviewed).encode()).hexdigest()[
        :32
    ]
    page: QueuePage
    page, age = livecache.shared(
        f"review:queue:{digest}",
        _page,
        ttl_s=QUEUE_CACHE_S,
        spec=spec,
        reviewed=reviewed,
        truncated=truncated,
        limit=limit,
        offset=offset,
    )
    return page, age


def models_in_window(*, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The models that wrote rows in the window, most rows first (shared for a minute)."""
    key = f"review:models:{start:%Y%m%d%H%M}:{end:%Y%m%d%H%M}"
    models, _age = livecache.shared(
        key, main_selectors.models_in_window, ttl_s=MODELS_CACHE_S, start=start, end=end, limit=MODELS_SHOWN
    )
    return list(models)


def classification_row(
    *, bucket: str, name: str, generation: int, model: str, now: datetime | None = None
) -> dict[str, Any] | None:
    """The row `model` wrote for one object generation in the last LOOKBACK: a lookup by the clustering columns
    within those days' partitions. None when there is none (never classified, by another model, or too old)."""
    cfg = _cfg()
    sql = (
        f"SELECT bucket, image_name, generation, model, classifications, processed_at FROM `{cfg.table_id}` "
        f"WHERE processed_at >= @since AND {bigquery.OBJECT_MATCH} AND model = @model "
        "ORDER BY processed_at LIMIT 1"
    )
    params = [
        bigquery.param("since", "TIMESTAMP", (now or datetime.now(UTC)) - LOOKBACK),
        *bigquery.object_params(bucket, name, generation),
        bigquery.param("model", "STRING", model),
    ]
    rows = bigquery.query(cfg, sql, params)
    return rows[0] if rows else None


def reviews_for_name(*, name: str, buckets: Iterable[str] = ()) -> dict[tuple[str, int], Review]:
    """The verdicts on one object name, by (bucket, generation): what the object's story shows."""
    reviews = Review.objects.filter(image_name=name).select_related("reviewer")
    if buckets:
        reviews = reviews.filter(bucket__in=list(buckets))
    return {(r.bucket, r.generation): r for r in reviews}
