"""Reads for the labels, confidence, comparison and export pages.

Every BigQuery query names a window of processed_at (or failed_at), so BigQuery reads only those days'
partitions, and goes through classifier.cloud.bigquery, which caps its bill (BQ_MAX_BYTES_BILLED). Reviews are
Django rows (controlplane.review): no BigQuery read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, Q

from classifier import failures
from classifier.cloud import bigquery
from classifier.config import Config
from controlplane import selectors
from controlplane.insight import params as p
from controlplane.review.models import Review

LABELS_SHOWN = 50  # labels on the page, by top-1 count; the trend query reads only these
DISAGREEMENTS_PAGE = 20
REVIEWS_COMPARED = 5000  # the most recent verdicts with a true label that the comparison checks


def _cfg() -> Config:
    return settings.SIGHTLINE


def _window_params(window: p.Window) -> list[Any]:
    return [bigquery.param("start", "TIMESTAMP", window.start), bigquery.param("end", "TIMESTAMP", window.end)]


_IN_WINDOW = "processed_at >= @start AND processed_at < @end"
_TOP1 = "classifications[SAFE_OFFSET(0)]"
_BIN = "LEAST(CAST(FLOOR({c} * @bins) AS INT64), @bins - 1)"


def models_in_window(*, window: p.Window) -> list[dict[str, Any]]:
    """The models with rows in the window, most rows first: what the choosers offer."""
    return selectors.models_in_window(start=window.start, end=window.end)


# --- Labels ---------------------------------------------------------------------------------------------------------


def label_summary(*, window: p.Window, model: str, limit: int = LABELS_SHOWN) -> list[dict[str, Any]]:
    """Per label: rows where it is the top-1, rows where it is any of the top 5, the mean top-1 confidence."""
    cfg = _cfg()
    sql = (
        "SELECT c.classification AS label, COUNTIF(pos = 0) AS top1, COUNT(*) AS top5, "
        "AVG(IF(pos = 0, c.confidence, NULL)) AS mean_top1 "
        f"FROM `{cfg.table_id}` AS r, UNNEST(r.classifications) AS c WITH OFFSET AS pos "
        "WHERE r.processed_at >= @start AND r.processed_at < @end AND r.model = @model AND pos < 5 "
        "GROUP BY label ORDER BY top1 DESC, top5 DESC, label LIMIT @limit"
    )
    params = [
        *_window_params(window),
        bigquery.param("model", "STRING", model),
        bigquery.param("limit", "INT64", limit),
    ]
    return [
        {"label": r["label"], "top1": int(r["top1"]), "top5": int(r["top5"]), "mean_top1": r["mean_top1"]}
        for r in bigquery.query(cfg, sql, params)
    ]


def label_daily(*, window: p.Window, model: str, labels: Sequence[str]) -> dict[str, dict[date, int]]:
    """Rows per UTC day with each of `labels` as top-1."""
    if not labels:
        return {}
    cfg = _cfg()
    sql = (
        f"SELECT DATE(processed_at) AS day, {_TOP1}.classification AS label, COUNT(*) AS n "
        f"FROM `{cfg.table_id}` WHERE {_IN_WINDOW} AND model = @model "
        f"AND {_TOP1}.classification IN UNNEST(@labels) GROUP BY day, label"
    )
    params = [
        *_window_params(window),
        bigquery.param("model", "STRING", model),
        bigquery.array_param("labels", "STRING", list(labels)),
    ]
    out: dict[str, dict[date, int]] = defaultdict(dict)
    for r in bigquery.query(cfg, sql, params):
        out[r["label"]][r["day"]] = int(r["n"])
    return dict(out)


def confidence_histogram(*, window: p.Window, model: str, label: str = "", bins: int = p.BINS) -> dict[int, int]:
    """Rows per bin of top-1 confidence (bin i: [i/bins, (i+1)/bins)), of every label or of one top-1 label."""
    cfg = _cfg()
    where = f"{_IN_WINDOW} AND model = @model"
    params = [*_window_params(window), bigquery.param("model", "STRING", model), bigquery.param("bins", "INT64", bins)]
    if label:
        where += f" AND {_TOP1}.classification = @label"
        params.append(bigquery.param("label", "STRING", label))
    sql = (
        f"SELECT {_BIN.format(c='top1')} AS bin, COUNT(*) AS n FROM "
        f"(SELECT {_TOP1}.confidence AS top1 FROM `{cfg.table_id}` WHERE {where}) "
        "WHERE top1 IS NOT NULL GROUP BY bin"
    )
    return {int(r["bin"]): int(r["n"]) for r in bigquery.query(cfg, sql, params)}


def low_confidence_daily(
    *, window: p.Window, model: str, threshold: float, label: str = ""
) -> dict[date, dict[str, int]]:
    """Per UTC day: rows, and rows whose top-1 confidence is below `threshold`."""
    cfg = _cfg()
    where = f"{_IN_WINDOW} AND model = @model"
    params = [
        *_window_params(window),
        bigquery.param("model", "STRING", model),
        bigquery.param("threshold", "FLOAT64", threshold),
    ]
    if label:
        where += f" AND {_TOP1}.classification = @label"
        params.append(bigquery.param("label", "STRING", label))
    sql = (
        f"SELECT DATE(processed_at) AS day, COUNT(*) AS n, COUNTIF({_TOP1}.confidence < @threshold) AS low "
        f"FROM `{cfg.table_id}` WHERE {where} GROUP BY day"
    )
    return {r["day"]: {"rows": int(r["n"]), "low": int(r["low"])} for r in bigquery.query(cfg, sql, params)}


def review_accuracy(*, model: str, since: datetime) -> dict[str, dict[str, int]]:
    """Per predicted label of `model`, verdicts given since `since`: reviewed (correct + wrong), correct, unclear."""
    rows = (
        Review.objects.filter(model=model, reviewed_at__gte=since)
        .values("predicted_label")
        .annotate(
            correct=Count("id", filter=Q(verdict=Review.Verdict.CORRECT)),
            wrong=Count("id", filter=Q(verdict=Review.Verdict.WRONG)),
            unclear=Count("id", filter=Q(verdict=Review.Verdict.UNCLEAR)),
        )
    )
    return {
        r["predicted_label"]: {
            "reviewed": r["correct"] + r["wrong"],
            "correct": r["correct"],
            "unclear": r["unclear"],
        }
        for r in rows
    }


# --- Two models side by side ----------------------------------------------------------------------------------------


def has_inference_ms() -> bool:
    """Whether the table has the `inference_ms` column yet (added by the per-model reprocessing work): a query
    naming a missing column fails, so the comparison reads NULL instead. A metadata read, not a query."""
    schema = bigquery.table_schema(_cfg(), _cfg().table_id) or []
    return any(f.name == "inference_ms" for f in schema)


def _pair_sql(cfg: Config, columns: str, *, with_ms: bool) -> str:
    """Rows of model A and of model B in the window, joined on the object generation (each side a pruned read)."""
    ms = "inference_ms" if with_ms else "CAST(NULL AS FLOAT64)"
    side = (
        "SELECT bucket, image_name, generation, processed_at, classifications AS top, "
        f"{_TOP1}.classification AS l, {_TOP1}.confidence AS c, {ms} AS ms, "
        f"{_BIN.format(c=_TOP1 + '.confidence')} AS bin "
        f"FROM `{cfg.table_id}` WHERE {_IN_WINDOW} AND model = @{{m}}"
    )
    return (
        f"WITH a AS ({side.format(m='a')}), b AS ({side.format(m='b')}) SELECT {columns} FROM a JOIN b "
        "ON a.bucket = b.bucket AND a.image_name = b.image_name AND a.generation = b.generation"
    )


def _pair_params(window: p.Window, a: str, b: str, bins: int = p.BINS) -> list[Any]:
    return [
        *_window_params(window),
        bigquery.param("a", "STRING", a),
        bigquery.param("b", "STRING", b),
        bigquery.param("bins", "INT64", bins),
    ]


def compare_summary(*, window: p.Window, a: str, b: str, with_ms: bool, bins: int = p.BINS) -> dict[str, Any]:
    """For objects classified by both: how many, top-1 agreement, each model's top-1 confidence per bin, and the
    mean inference time per image where recorded. One query; grouped by both bins so both distributions and the
    totals come from the same read."""
    cfg = _cfg()
    columns = (
        "a.bin AS abin, b.bin AS bbin, COUNT(*) AS n, COUNTIF(a.l = b.l) AS agree, "
        "SUM(a.ms) AS a_ms, COUNT(a.ms) AS a_ms_n, SUM(b.ms) AS b_ms, COUNT(b.ms) AS b_ms_n"
    )
    sql = _pair_sql(cfg, columns, with_ms=with_ms) + " GROUP BY a.bin, b.bin"
    a_bins: dict[int, int] = defaultdict(int)
    b_bins: dict[int, int] = defaultdict(int)
    total = agree = a_ms_n = b_ms_n = 0
    a_ms = b_ms = 0.0
    for r in bigquery.query(cfg, sql, _pair_params(window, a, b, bins)):
        n = int(r["n"])
        total += n
        agree += int(r["agree"])
        if r["abin"] is not None:
            a_bins[int(r["abin"])] += n
        if r["bbin"] is not None:
            b_bins[int(r["bbin"])] += n
        a_ms += float(r["a_ms"] or 0)
        b_ms += float(r["b_ms"] or 0)
        a_ms_n += int(r["a_ms_n"] or 0)
        b_ms_n += int(r["b_ms_n"] or 0)
    return {
        "both": total,
        "agree": agree,
        "agreement": p.share(agree, total),
        "a_bins": dict(a_bins),
        "b_bins": dict(b_bins),
        "a_ms": a_ms / a_ms_n if a_ms_n else None,
        "b_ms": b_ms / b_ms_n if b_ms_n else None,
        "a_ms_n": a_ms_n,
        "b_ms_n": b_ms_n,
    }


def compare_disagreements(
    *, window: p.Window, a: str, b: str, with_ms: bool, limit: int = DISAGREEMENTS_PAGE, offset: int = 0
) -> tuple[list[dict[str, Any]], bool]:
    """One page of the objects whose top-1 differs between A and B, newest first; the flag: another page follows."""
    cfg = _cfg()
    columns = (
        "a.bucket AS bucket, a.image_name AS image_name, a.generation AS generation, a.top AS a_top, b.top AS b_top"
    )
    sql = (
        _pair_sql(cfg, columns, with_ms=with_ms)
        + " WHERE a.l IS DISTINCT FROM b.l ORDER BY a.processed_at DESC, a.image_name LIMIT @limit OFFSET @offset"
    )
    params = [
        *_pair_params(window, a, b),
        bigquery.param("limit", "INT64", limit + 1),
        bigquery.param("offset", "INT64", offset),
    ]
    rows = bigquery.query(cfg, sql, params)
    return rows[:limit], len(rows) > limit


def compare_reviews(*, window: p.Window, a: str, b: str, with_ms: bool) -> dict[str, Any]:
    """Where a reviewer set the true label (correct or wrong verdicts): how often each model's top-1 matched it,
    over objects classified by both. The verdicts come from Django; one bounded query reads both models' top-1 for
    the reviewed names (a lookup by the clustering column within the window)."""
    reviews = list(
        Review.objects.exclude(true_label="")
        .filter(bucket=_cfg().bucket)
        .order_by("-reviewed_at")
        .values_list("image_name", "generation", "true_label")[:REVIEWS_COMPARED]
    )
    truth = {(name, gen): label for name, gen, label in reviews}
    if not truth:
        return {"reviewed": 0, "a_right": 0, "b_right": 0}
    cfg = _cfg()
    columns = "a.image_name AS image_name, a.generation AS generation, a.l AS a_label, b.l AS b_label"
    sql = _pair_sql(cfg, columns, with_ms=with_ms) + " WHERE a.bucket = @bucket AND a.image_name IN UNNEST(@names)"
    params = [
        *_pair_params(window, a, b),
        bigquery.param("bucket", "STRING", cfg.bucket),
        bigquery.array_param("names", "STRING", sorted({n for n, _ in truth})),
    ]
    reviewed = a_right = b_right = 0
    for r in bigquery.query(cfg, sql, params):
        label = truth.get((r["image_name"], int(r["generation"])))
        if label is None:
            continue
        reviewed += 1
        a_right += r["a_label"] == label
        b_right += r["b_label"] == label
    return {"reviewed": reviewed, "a_right": a_right, "b_right": b_right}


# --- Exports: a page of rows at a time ------------------------------------------------------------------------------

CLASSIFICATION_COLUMNS = (
    "image_name",
    "upload",
    "classifications",
    "bucket",
    "generation",
    "content_type",
    "size_bytes",
    "model",
    "processed_at",
)


def classification_export(*, filters: selectors.ClassificationFilter, cap: int) -> Iterator[dict[str, Any]]:
    """The dashboard's filtered list (its window and filters), newest first, up to `cap` rows, read page by page."""
    cfg = _cfg()
    start, end = filters.window()
    where, params = selectors.classification_where(filters, start, end)
    sql = (
        f"SELECT {', '.join(CLASSIFICATION_COLUMNS)} FROM `{cfg.table_id}` WHERE {' AND '.join(where)} "
        "ORDER BY processed_at DESC, upload DESC LIMIT @cap"
    )
    for page in bigquery.query_pages(cfg, sql, [*params, bigquery.param("cap", "INT64", cap)]):
        yield from page


def failure_export(*, name: str, cap: int) -> Iterator[dict[str, Any]]:
    """The failures list (its 30-day window and name filter), newest first, up to `cap` rows."""
    cfg = _cfg()
    where = "failed_at >= @since"
    params = [bigquery.param("since", "TIMESTAMP", failures.window_start()), bigquery.param("cap", "INT64", cap)]
    if name:
        where += " AND STRPOS(LOWER(image_name), LOWER(@name)) > 0"
        params.append(bigquery.param("name", "STRING", name))
    sql = f"SELECT {failures.COLUMNS} FROM `{cfg.failures_table_id}` WHERE {where} ORDER BY failed_at DESC LIMIT @cap"
    for page in bigquery.query_pages(cfg, sql, params):
        yield from page


REVIEW_COLUMNS = (
    "bucket",
    "image_name",
    "generation",
    "model",
    "predicted_label",
    "predicted_confidence",
    "verdict",
    "true_label",
    "reviewer_name",
    "reviewed_at",
)


def review_export(*, verdict: str = "", model: str = "", label: str = "", cap: int) -> Iterator[dict[str, Any]]:
    """Verdicts, newest first, optionally of one verdict, model or predicted label; read from the database in
    chunks (iterator), up to `cap`."""
    qs = Review.objects.all()
    if verdict:
        qs = qs.filter(verdict=verdict)
    if model:
        qs = qs.filter(model=model)
    if label:
        qs = qs.filter(predicted_label=label)
    yield from qs.order_by("-reviewed_at", "-id").values(*REVIEW_COLUMNS)[:cap].iterator(chunk_size=1000)
