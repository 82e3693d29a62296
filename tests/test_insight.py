"""The labels, label, comparison and export pages on the local stack, checked against direct queries of the table.

Rows go straight into the BigQuery emulator, each test under two model names of its own, so tests sharing the
stack never see each other's rows. The expected figures are computed here in Python from a plain SELECT of those
rows, not with the page's SQL.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bench import bqaudit
from classifier.cloud import bigquery
from classifier.config import Config
from controlplane import livecache
from controlplane.insight import params
from controlplane.models import AuditLog
from controlplane.review.models import Review
from tests.helpers import insert_failure

LABELS = ("tabby", "lynx", "tiger cat", "Egyptian cat")


def ensure_inference_ms(cfg: Config) -> None:
    """The `inference_ms` column the per-model work adds to the schema; added here where this branch lacks it."""
    schema = bigquery.table_schema(cfg, cfg.table_id) or []
    if any(f.name == "inference_ms" for f in schema):
        return
    # bqemulator keeps the DuckDB table and the table's metadata apart: a schema update alone changes only the
    # metadata, the DDL only the DuckDB table, and an insert needs both to agree.
    bigquery.query(cfg, f"ALTER TABLE `{cfg.table_id}` ADD COLUMN inference_ms FLOAT64")
    bigquery.table_schema_update(cfg, cfg.table_id, [*schema, bigquery.SchemaField("inference_ms", "FLOAT")])


@dataclass
class Fill:
    a: str
    b: str
    prefix: str
    objects: list[tuple[str, int]] = field(default_factory=list)


def _row(cfg: Config, name: str, gen: int, model: str, top: list[tuple[str, float]], when: datetime, ms: float | None):
    row: dict[str, Any] = {
        "image_name": name,
        "upload": (when - timedelta(seconds=2)).isoformat(),
        "classifications": [{"classification": label, "confidence": c} for label, c in top],
        "bucket": cfg.bucket,
        "generation": gen,
        "content_type": "image/png",
        "size_bytes": 10,
        "model": model,
        "processed_at": when.isoformat(),
    }
    if ms is not None:
        row["inference_ms"] = ms
    return row


def fill(
    cfg: Config,
    *,
    n: int = 12,
    with_ms: bool = True,
    models: tuple[str, str] | None = None,
    make_object: Callable[[int, str], int] | None = None,
) -> Fill:
    """`n` objects classified by model A over the 3 days before the last 2 hours, the first n-2 also by model B,
    which disagrees on every third; confidences spread over the bins; A at 10+i ms per image, B at 30 ms where recorded.
    `make_object(i, name)` stores the object and returns its generation (for pages that show thumbnails)."""
    uid = uuid.uuid4().hex[:8]
    a, b = models or (f"insight-a-{uid}", f"insight-b-{uid}")
    f = Fill(a=a, b=b, prefix=f"ins-{uid}/")
    now = datetime.now(UTC)
    rows = []
    for i in range(n):
        name = f"{f.prefix}{i:02d}.png"
        gen = make_object(i, name) if make_object else 1_000_000 + i
        f.objects.append((name, gen))
        # Two hours back at the newest: the review queue's tests count the models of the last hour.
        when = now - timedelta(days=i % 3, hours=2, minutes=i)
        first = LABELS[i % len(LABELS)]
        conf = round(0.04 + i * (0.95 / n), 4)
        top_a = [(first, conf), ("lynx" if first != "lynx" else "tabby", round(conf / 3, 4)), ("wallaby", 0.001)]
        rows.append(_row(cfg, name, gen, f.a, top_a, when, 10.0 + i if with_ms else None))
        if i < n - 2:
            b_first = "wallaby" if i % 3 == 0 else first
            top_b = [(b_first, round(1 - conf, 4)), (first, round(conf / 4, 4))]
            rows.append(_row(cfg, name, gen, f.b, top_b, when + timedelta(seconds=5), 30.0 if with_ms else None))
    bigquery.insert_rows(cfg, cfg.table_id, rows, row_ids=[uuid.uuid4().hex for _ in rows])
    livecache.forget_all()
    return f


def direct_rows(cfg: Config, model: str, days: int = 7) -> list[dict[str, Any]]:
    sql = f"SELECT * FROM `{cfg.table_id}` WHERE processed_at >= @since AND model = @model"
    since = datetime.now(UTC) - timedelta(days=days)
    return bigquery.query(
        cfg, sql, [bigquery.param("since", "TIMESTAMP", since), bigquery.param("model", "STRING", model)]
    )


# --- Labels ---------------------------------------------------------------------------------------------------------


def test_the_labels_page_counts_what_a_direct_query_counts(staff: Client, cfg: Config, stack: Any) -> None:
    f = fill(cfg)
    page = staff.get(reverse("insight:labels"), {"window": "7d", "model": f.a, "threshold": "0.3"})
    assert page.status_code == 200, page.content[:500]
    rows = direct_rows(cfg, f.a)
    top1 = Counter(r["classifications"][0]["classification"] for r in rows)
    top5 = Counter(c["classification"] for r in rows for c in r["classifications"][:5])
    shown = {r["label"]: r for r in page.context["rows"]}
    assert {k: v["top1"] for k, v in shown.items() if v["top1"]} == dict(top1)
    assert {k: v["top5"] for k, v in shown.items()} == dict(top5)
    for label, n in top1.items():
        confs = [
            r["classifications"][0]["confidence"] for r in rows if r["classifications"][0]["classification"] == label
        ]
        assert shown[label]["mean_top1"] == pytest.approx(sum(confs) / n)
        assert sum(b["h"] > 0 for b in shown[label]["trend"]["bars"]) == len(
            {r["processed_at"].date() for r in rows if r["classifications"][0]["classification"] == label}
        )
    # The overall histogram and the share below the operator's threshold.
    expected_bins = Counter(params.bin_of(r["classifications"][0]["confidence"]) for r in rows)
    assert page.context["hist"]["value"] == dict(expected_bins)
    below = sum(r["classifications"][0]["confidence"] < 0.3 for r in rows)
    assert (page.context["low_below"], page.context["low_rows"]) == (below, len(rows))
    html = page.content.decode()
    assert f'data-label="tabby" data-top1="{top1["tabby"]}"' in html
    assert f"{below} of {len(rows)}" in html and "as of" in html
    # A label's link opens the dashboard's list filtered by it, over the same window.
    assert "/?label=tabby&amp;since=" in html


def test_a_label_page_shows_its_own_histogram_and_trend(staff: Client, cfg: Config, stack: Any) -> None:
    f = fill(cfg)
    page = staff.get(reverse("insight:label"), {"label": "tabby", "window": "7d", "model": f.a, "threshold": "0.5"})
    assert page.status_code == 200
    rows = [r for r in direct_rows(cfg, f.a) if r["classifications"][0]["classification"] == "tabby"]
    assert page.context["hist"]["value"] == dict(
        Counter(params.bin_of(r["classifications"][0]["confidence"]) for r in rows)
    )
    assert page.context["low_rows"] == len(rows)
    assert page.context["low_below"] == sum(r["classifications"][0]["confidence"] < 0.5 for r in rows)
    assert 'id="label-images"' in page.content.decode()


def _review(name: str, gen: int, model: str, label: str, verdict: str, truth: str, bucket: str) -> Review:
    return Review.objects.create(
        bucket=bucket,
        image_name=name,
        generation=gen,
        model=model,
        predicted_label=label,
        predicted_confidence=0.5,
        verdict=verdict,
        true_label=truth,
        reviewer_name="op",
        reviewed_at=timezone.now(),
    )


def test_accuracy_per_label_counts_the_verdicts(staff: Client, cfg: Config, stack: Any) -> None:
    f = fill(cfg)
    (n0, g0), (n4, g4), (n8, g8), (n1, g1) = f.objects[0], f.objects[4], f.objects[8], f.objects[1]
    _review(n0, g0, f.a, "tabby", "correct", "tabby", cfg.bucket)
    _review(n4, g4, f.a, "tabby", "wrong", "lynx", cfg.bucket)
    _review(n8, g8, f.a, "tabby", "unclear", "", cfg.bucket)
    _review(n1, g1, f.a, "lynx", "correct", "lynx", cfg.bucket)
    page = staff.get(reverse("insight:labels"), {"window": "7d", "model": f.a})
    shown = {r["label"]: r for r in page.context["rows"]}
    assert (shown["tabby"]["reviewed"], shown["tabby"]["correct"]) == (2, 1)
    assert (shown["lynx"]["reviewed"], shown["lynx"]["correct"]) == (1, 1)
    assert shown["tiger cat"]["reviewed"] == 0 and shown["tiger cat"]["accuracy"] is None
    assert 'data-reviewed="2" data-correct="1"' in page.content.decode()


def test_many_tabs_cost_one_set_of_queries_per_refresh(staff: Client, cfg: Config, stack: Any) -> None:
    f = fill(cfg)
    query = {"window": "7d", "model": f.a}
    with bqaudit.recording() as first:
        staff.get(reverse("insight:labels"), query)
    with bqaudit.recording() as again:
        page = staff.get(reverse("insight:labels"), query)
    assert len([q for q in first if q.tables(cfg.table_id)]) >= 4
    assert [q.sql for q in again if q.tables(cfg.table_id)] == []
    assert page.context["data"]["age_s"] > 0 and "as of" in page.content.decode()


# --- Compare --------------------------------------------------------------------------------------------------------


def _pairs(cfg: Config, f: Fill) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    a = {(r["image_name"], r["generation"]): r for r in direct_rows(cfg, f.a)}
    b = {(r["image_name"], r["generation"]): r for r in direct_rows(cfg, f.b)}
    return [(a[k], b[k]) for k in a if k in b]


def test_compare_counts_agreement_disagreements_speed_and_reviews(staff: Client, cfg: Config, stack: Any) -> None:
    ensure_inference_ms(cfg)
    f = fill(cfg, n=30)
    both = _pairs(cfg, f)
    differ = [
        (a, b)
        for a, b in both
        if a["classifications"][0]["classification"] != b["classifications"][0]["classification"]
    ]
    # Reviews: A right on one, B right on another.
    (a0, _b0), (a1, b1) = differ[0], both[1]
    _review(
        a0["image_name"], a0["generation"], f.a, "x", "correct", a0["classifications"][0]["classification"], cfg.bucket
    )
    _review(a1["image_name"], a1["generation"], f.a, "x", "wrong", "wallaby", cfg.bucket)
    page = staff.get(reverse("insight:compare"), {"window": "7d", "a": f.a, "b": f.b})
    assert page.status_code == 200, page.content[:400]
    summary = page.context["summary"]
    assert summary["both"] == len(both) and summary["agree"] == len(both) - len(differ)
    assert summary["a_ms"] == pytest.approx(sum(a["inference_ms"] for a, _ in both) / len(both))
    assert summary["b_ms"] == pytest.approx(30.0)
    assert summary["a_bins"] == dict(Counter(params.bin_of(a["classifications"][0]["confidence"]) for a, _ in both))
    assert summary["b_bins"] == dict(Counter(params.bin_of(b["classifications"][0]["confidence"]) for _, b in both))
    a_right = 1 + (a1["classifications"][0]["classification"] == "wallaby")
    b_right = (b1["classifications"][0]["classification"] == "wallaby") + (
        differ[0][1]["classifications"][0]["classification"] == a0["classifications"][0]["classification"]
    )
    assert page.context["reviews"] == {"reviewed": 2, "a_right": a_right, "b_right": b_right}
    # The disagreements, newest first, paged; each with its thumbnail and both top-5s.
    seen = [(r["image_name"], r["generation"]) for r in page.context["rows"]]
    if page.context["next_query"]:
        more = staff.get(reverse("insight:compare") + "?" + page.context["next_query"])
        seen += [(r["image_name"], r["generation"]) for r in more.context["rows"]]
    newest = sorted(differ, key=lambda p: (p[0]["processed_at"], p[0]["image_name"]), reverse=True)
    assert sorted(seen) == sorted((a["image_name"], a["generation"]) for a, _ in newest)
    html = page.content.decode()
    assert "size=thumb" in html and html.count('class="disagreement"') == len(page.context["rows"])
    assert f'data-agree="{summary["agree"]}"' in html and "not recorded" not in html


def test_compare_says_not_recorded_where_rows_carry_no_speed(staff: Client, cfg: Config, stack: Any) -> None:
    f = fill(cfg, with_ms=False)
    page = staff.get(reverse("insight:compare"), {"window": "1d", "a": f.a, "b": f.b})
    assert page.status_code == 200
    assert page.context["summary"]["a_ms"] is None and "not recorded" in page.content.decode()


def test_a_model_compared_with_itself_is_refused(staff: Client, cfg: Config, stack: Any) -> None:
    f = fill(cfg, n=4)
    page = staff.get(reverse("insight:compare"), {"window": "7d", "a": f.a, "b": f.a})
    assert page.status_code == 400 and "two different models" in page.content.decode()


# --- Hostile inputs -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "query", "reason"),
    [
        ("insight:labels", {"window": "3650d"}, "window must be one of"),
        ("insight:labels", {"window": "7d' OR 1=1 --"}, "window must be one of"),
        ("insight:labels", {"threshold": "2"}, "between 0 and 1"),
        ("insight:labels", {"threshold": "nan"}, "between 0 and 1"),
        ("insight:labels", {"threshold": "1e400"}, "between 0 and 1"),
        ("insight:labels", {"threshold": "abc"}, "must be a number"),
        ("insight:labels", {"model": "resnet50'; DROP TABLE x; --"}, "has characters"),
        ("insight:labels", {"model": "no-such-model"}, "has no rows in this window"),
        ("insight:labels", {"model": "m" * 65}, "longer than 64"),
        ("insight:label", {}, "label is required"),
        ("insight:label", {"label": "tabby\x00<script>"}, "has characters"),
        ("insight:compare", {"page": "0"}, "page must be"),
        ("insight:compare", {"page": "99999999999"}, "page must be"),
    ],
)
def test_hostile_parameters_are_refused_with_a_reason(
    staff: Client, stack: Any, url: str, query: dict[str, str], reason: str
) -> None:
    page = staff.get(reverse(url), query)
    assert page.status_code == 400
    assert reason in page.content.decode()


def test_the_pages_and_exports_need_a_login(client: Client, db: Any) -> None:
    for url in (
        reverse("insight:labels"),
        reverse("insight:label") + "?label=tabby",
        reverse("insight:compare"),
        reverse("insight:export_page"),
        reverse("insight:export", args=["classifications"]) + "?format=csv",
    ):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"], url


# --- Exports --------------------------------------------------------------------------------------------------------


def _body(response: Any) -> str:
    assert response.streaming, "an export is streamed"
    return b"".join(response.streaming_content).decode()


def test_the_classification_export_holds_what_a_direct_query_finds_in_both_formats(
    staff: Client, cfg: Config, stack: Any, settings: Any
) -> None:
    f = fill(cfg)
    since = f"{datetime.now(UTC) - timedelta(days=7):%Y-%m-%dT%H:%M}"
    query = {"name": f.prefix, "since": since}
    sql = (
        f"SELECT * FROM `{cfg.table_id}` WHERE processed_at >= @since AND STARTS_WITH(image_name, @prefix) "
        "ORDER BY processed_at DESC, upload DESC"
    )
    expected = bigquery.query(
        cfg,
        sql,
        [
            bigquery.param("since", "TIMESTAMP", datetime.fromisoformat(since).replace(tzinfo=UTC)),
            bigquery.param("prefix", "STRING", f.prefix),
        ],
    )
    url = reverse("insight:export", args=["classifications"])
    response = staff.get(url, {**query, "format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(_body(response))))
    assert [(r["image_name"], r["model"], r["label_1"]) for r in table] == [
        (r["image_name"], r["model"], r["classifications"][0]["classification"]) for r in expected
    ]
    assert float(table[0]["confidence_1"]) == pytest.approx(expected[0]["classifications"][0]["confidence"])

    lines = _body(staff.get(url, {**query, "format": "jsonl"})).splitlines()
    parsed = [json.loads(line) for line in lines]
    assert [(r["image_name"], r["generation"], r["classifications"]) for r in parsed] == [
        (r["image_name"], r["generation"], r["classifications"]) for r in expected
    ]
    # The cap from the setting, stated on the page.
    settings.EXPORT_MAX_ROWS = 5
    capped = _body(staff.get(url, {**query, "format": "jsonl"})).splitlines()
    assert [json.loads(x)["image_name"] for x in capped] == [r["image_name"] for r in expected[:5]]
    assert "At most 5 rows per download" in staff.get(reverse("insight:export_page")).content.decode()
    entry = AuditLog.objects.filter(action=AuditLog.Action.EXPORT).first()
    assert entry is not None and entry.actor == "op-staff" and "classifications" in entry.summary


def test_failure_and_review_exports(staff: Client, cfg: Config, stack: Any) -> None:
    prefix = f"ins-f-{uuid.uuid4().hex[:8]}/"
    made = [insert_failure(cfg, f"{prefix}{i}.txt") for i in range(3)]
    body = _body(staff.get(reverse("insight:export", args=["failures"]), {"name": prefix, "format": "csv"}))
    table = list(csv.DictReader(io.StringIO(body)))
    assert sorted(r["image_name"] for r in table) == sorted(m["image_name"] for m in made)
    assert {r["reason_code"] for r in table} == {"not_an_image"}

    _review(f"{prefix}r.png", 7, "resnet50", "tabby", "wrong", "lynx", cfg.bucket)
    _review(f"{prefix}s.png", 8, "resnet50", "lynx", "correct", "lynx", cfg.bucket)
    lines = _body(staff.get(reverse("insight:export", args=["reviews"]), {"verdict": "wrong", "format": "jsonl"}))
    got = [json.loads(x) for x in lines.splitlines()]
    expected = list(Review.objects.filter(verdict="wrong").values_list("image_name", flat=True))
    assert [g["image_name"] for g in got] == expected and got[0]["true_label"] == "lynx"


def test_a_formula_in_an_object_name_is_not_a_formula_in_the_csv(staff: Client, cfg: Config, stack: Any) -> None:
    uid = uuid.uuid4().hex[:8]
    name = f'=HYPERLINK("http://evil","x")-{uid}.png'
    row = _row(cfg, name, 5, "insight-csv", [("@SUM(1)", 0.9)], datetime.now(UTC), None)
    bigquery.insert_rows(cfg, cfg.table_id, [row], row_ids=[uuid.uuid4().hex])
    body = _body(staff.get(reverse("insight:export", args=["classifications"]), {"name": uid, "format": "csv"}))
    table = list(csv.DictReader(io.StringIO(body)))
    assert [r["image_name"] for r in table] == ["'" + name]
    assert table[0]["label_1"] == "'@SUM(1)"


@pytest.mark.parametrize(
    ("kind", "query", "status", "reason"),
    [
        ("classifications", {"format": "xlsx"}, 400, "format must be one of"),
        ("classifications", {}, 400, "format must be one of"),
        ("reviews", {"format": "csv", "verdict": "maybe"}, 400, "verdict must be one of"),
        ("reviews", {"format": "csv", "label": "x\x07"}, 400, "has characters"),
        ("secrets", {"format": "csv"}, 404, "nothing to export"),
    ],
)
def test_bad_export_requests_are_refused(
    staff: Client, stack: Any, kind: str, query: dict[str, str], status: int, reason: str
) -> None:
    response = staff.get(reverse("insight:export", args=[kind]), query)
    assert response.status_code == status and reason in response.content.decode()
    assert not AuditLog.objects.filter(action=AuditLog.Action.EXPORT).exists()


def test_the_lists_link_their_export_with_their_filters(staff: Client, stack: Any) -> None:
    page = staff.get(reverse("dashboard"), {"label": "tabby", "name": "x/"}).content.decode()
    assert 'id="export-list" href="/insight/export/?label=tabby&amp;name=x%2F"' in page
    form = staff.get(reverse("insight:export_page"), {"label": "tabby", "name": "x/"}).content.decode()
    assert 'name="label" value="tabby"' in form and 'name="name" value="x/"' in form
    failures = staff.get(reverse("failures"), {"name": "a b"}).content.decode()
    assert "/insight/export/?failure_name=a%20b#export-failures" in failures


def test_the_paged_read_runs_one_capped_job_and_reads_its_result_a_page_at_a_time(cfg: Config, stack: Any) -> None:
    f = fill(cfg)  # 22 rows under the prefix
    sql = (
        f"SELECT image_name FROM `{cfg.table_id}` WHERE processed_at >= @since AND STARTS_WITH(image_name, @prefix) "
        "ORDER BY image_name LIMIT 100"
    )
    since = datetime.now(UTC) - timedelta(days=7)
    query = [bigquery.param("since", "TIMESTAMP", since), bigquery.param("prefix", "STRING", f.prefix)]
    with bqaudit.recording() as seen:
        pages = bigquery.query_pages(cfg, sql, query, page_rows=5)
        first = next(pages)
        rest = list(pages)
    assert [len(p) for p in [first, *rest]] == [5, 5, 5, 5, 2]
    assert [q.max_bytes for q in seen] == [cfg.max_bytes_billed]
    assert [r["image_name"] for p in [first, *rest] for r in p] == sorted(
        r["image_name"] for r in direct_rows(cfg, f.a) + direct_rows(cfg, f.b) if r["image_name"].startswith(f.prefix)
    )


def test_a_bigquery_that_cannot_be_read_is_said_on_the_page_not_a_crash(staff: Client, stack: Any) -> None:
    from unittest import mock

    from google.api_core import exceptions as gexc
    from google.cloud import bigquery as gbq

    livecache.forget_all()
    with mock.patch.object(gbq.Client, "query", autospec=True, side_effect=gexc.BadRequest("no table here")):
        labels = staff.get(reverse("insight:labels"), {"model": "resnet50"})
        compare = staff.get(reverse("insight:compare"), {"a": "resnet50", "b": "efficientnet_lite0"})
        export = staff.get(reverse("insight:export", args=["classifications"]), {"format": "csv"})
    assert labels.status_code == 200 and "BigQuery could not be read" in labels.content.decode()
    assert compare.status_code == 200 and "BigQuery could not be read" in compare.content.decode()
    assert export.status_code == 503 and "could not be read" in export.content.decode()
