"""The labels, label, comparison and export pages: parse and check the request, read (shared across tabs), render.

Reads only, so login_required: every operator may look. An export is audited (see `export`).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from classifier import failures
from classifier.weights import resolve_model_name
from controlplane import livecache
from controlplane import views as dashboard
from controlplane.audit import Actor, audit_record
from controlplane.insight import charts, exports
from controlplane.insight import params as p
from controlplane.insight import selectors as insight
from controlplane.models import AuditLog
from controlplane.review.models import Review

log = logging.getLogger(__name__)

# Aggregates over days change slowly: every tab shares one set of queries per minute.
REFRESH_S = 60.0


def _figure(name: str, key: dict[str, Any], compute: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    """A shared figure: {"value", "age_s", "error"}. A page that cannot reach BigQuery says so in place of it."""
    digest = hashlib.sha256(urlencode(sorted((k, str(v)) for k, v in key.items())).encode()).hexdigest()[:32]
    try:
        value, age = livecache.shared(f"insight:{name}:{digest}", compute, ttl_s=REFRESH_S, **kwargs)
    except Exception as exc:
        log.exception("insight %s failed", name)
        return {"value": None, "age_s": None, "error": f"{exc.__class__.__name__}: {exc}"}
    return {"value": value, "age_s": age, "error": None}


def _refused(request: HttpRequest, reason: str, *, status: int = 400, back: str = "") -> HttpResponse:
    return render(request, "insight/refused.html", {"reason": reason, "back": back or request.path}, status=status)


def _live_model() -> str:
    return resolve_model_name(settings.SIGHTLINE)


def _models(window: p.Window) -> dict[str, Any]:
    return _figure("models", {"window": window.key}, insight.models_in_window, window=window)


def _known(models: dict[str, Any], asked: str | None = None) -> list[str]:
    """The models with rows in the window; while that list cannot be read, the one asked for (once it is a
    well-formed name), so the page shows BigQuery's error instead of refusing the model."""
    if models["error"] and asked:
        return [p.name(asked, what="model", limit=p.MODEL_MAX)]
    return [m["model"] for m in models["value"] or []]


def _list_url(label: str, window: p.Window) -> str:
    """The dashboard's list of classifications with this label over the same window."""
    query = {"label": label, "since": f"{window.start:%Y-%m-%dT%H:%M}"}
    return f"{reverse('dashboard')}?{urlencode(query)}"


# --- Labels ---------------------------------------------------------------------------------------------------------


def _labels_data(*, window: p.Window, model: str) -> dict[str, Any]:
    summary = insight.label_summary(window=window, model=model)
    top = [r["label"] for r in summary if r["top1"]]
    return {"summary": summary, "daily": insight.label_daily(window=window, model=model, labels=top)}


def _low_trend(window: p.Window, daily: dict[Any, dict[str, int]]) -> list[dict[str, Any]]:
    out = []
    for day in window.days():
        got = daily.get(day, {"rows": 0, "low": 0})
        out.append({"day": day, "rows": got["rows"], "low": got["low"], "share": p.share(got["low"], got["rows"])})
    return out


def _confidence(window: p.Window, model: str, threshold: float, label: str = "") -> dict[str, Any]:
    """The histogram of top-1 confidence and the daily share below the threshold, each a shared figure."""
    key = {"window": window.key, "model": model, "label": label}
    hist = _figure("hist", key, insight.confidence_histogram, window=window, model=model, label=label)
    low = _figure(
        "low",
        {**key, "threshold": threshold},
        insight.low_confidence_daily,
        window=window,
        model=model,
        threshold=threshold,
        label=label,
    )
    bins = p.histogram(hist["value"] or {})
    trend = _low_trend(window, low["value"] or {})
    rows = sum(t["rows"] for t in trend)
    below = sum(t["low"] for t in trend)
    return {
        "hist": hist,
        "hist_chart": charts.histogram_chart(bins),
        "low": low,
        "low_chart": charts.share_trend(trend),
        "low_rows": rows,
        "low_below": below,
        "low_share": p.share(below, rows),
    }


def _common(request: HttpRequest) -> tuple[p.Window, float, dict[str, Any], str]:
    """Window, threshold, the models of the window, and the chosen model (refuses with p.Refused)."""
    window = p.window(request.GET.get("window"))
    threshold = p.threshold(request.GET.get("threshold"))
    models = _models(window)
    asked = request.GET.get("model")
    model = p.model(asked, known=_known(models, asked), default=_live_model())
    return window, threshold, models, model


@never_cache
@login_required
@require_GET
def labels(request: HttpRequest) -> HttpResponse:
    try:
        window, threshold, models, model = _common(request)
    except p.Refused as exc:
        return _refused(request, str(exc))
    data = _figure("labels", {"window": window.key, "model": model}, _labels_data, window=window, model=model)
    accuracy = insight.review_accuracy(model=model, since=window.start)
    days = window.days()
    rows = []
    for r in (data["value"] or {}).get("summary", []):
        acc = accuracy.get(r["label"], {"reviewed": 0, "correct": 0, "unclear": 0})
        daily = (data["value"] or {}).get("daily", {}).get(r["label"], {})
        rows.append(
            {
                **r,
                "trend": charts.sparkline(days, daily),
                "reviewed": acc["reviewed"],
                "correct": acc["correct"],
                "accuracy": p.share(acc["correct"], acc["reviewed"]),
                "detail_query": urlencode(
                    {"label": r["label"], "window": window.key, "model": model, "threshold": threshold}
                ),
                "list_url": _list_url(r["label"], window),
            }
        )
    context = {
        **_page(window, threshold, models, model),
        "data": data,
        "rows": rows,
        **_confidence(window, model, threshold),
    }
    return render(request, "insight/labels.html", context)


def _page(window: p.Window, threshold: float, models: dict[str, Any], model: str) -> dict[str, Any]:
    known = _known(models)
    return {
        "window": window,
        "windows": p.WINDOW_NAMES,
        "threshold": threshold,
        "models": models,
        "model_choices": known if model in known else [model, *known],
        "model": model,
        "live_model": _live_model(),
        "bins": p.BINS,
        "refresh_s": int(REFRESH_S),
    }


@never_cache
@login_required
@require_GET
def label_detail(request: HttpRequest) -> HttpResponse:
    try:
        label = p.name(request.GET.get("label"), what="label", limit=p.LABEL_MAX)
        if not label:
            raise p.Refused("label is required")
        window, threshold, models, model = _common(request)
    except p.Refused as exc:
        return _refused(request, str(exc))
    context = {
        **_page(window, threshold, models, model),
        "label": label,
        "list_url": _list_url(label, window),
        "back_query": urlencode({"window": window.key, "model": model, "threshold": threshold}),
        **_confidence(window, model, threshold, label),
    }
    return render(request, "insight/label.html", context)


# --- Compare two models ---------------------------------------------------------------------------------------------


def _compare_data(*, window: p.Window, a: str, b: str) -> dict[str, Any]:
    with_ms = insight.has_inference_ms()
    return {
        "summary": insight.compare_summary(window=window, a=a, b=b, with_ms=with_ms),
        "reviews": insight.compare_reviews(window=window, a=a, b=b, with_ms=with_ms),
        "with_ms": with_ms,
    }


def _disagreements(*, window: p.Window, a: str, b: str, page: int) -> tuple[list[dict[str, Any]], bool]:
    with_ms = insight.has_inference_ms()
    size = insight.DISAGREEMENTS_PAGE
    return insight.compare_disagreements(window=window, a=a, b=b, with_ms=with_ms, offset=(page - 1) * size)


@never_cache
@login_required
@require_GET
def compare(request: HttpRequest) -> HttpResponse:
    try:
        window = p.window(request.GET.get("window"))
        page = p.page(request.GET.get("page"))
        models = _models(window)
        known = _known(models) or [m for m in (request.GET.get("a"), request.GET.get("b")) if m and models["error"]]
        a, b = p.two_models(request.GET, known=known, default=_live_model())
    except p.Refused as exc:
        return _refused(request, str(exc))
    key = {"window": window.key, "a": a, "b": b}
    context: dict[str, Any] = {
        "window": window,
        "windows": p.WINDOW_NAMES,
        "models": models,
        "model_choices": sorted({*_known(models), a, b}),
        "a": a,
        "b": b,
        "refresh_s": int(REFRESH_S),
    }
    if a != b:
        data = _figure("compare", key, _compare_data, window=window, a=a, b=b)
        pairs = _figure("disagree", {**key, "page": page}, _disagreements, window=window, a=a, b=b, page=page)
        summary = (data["value"] or {}).get("summary")
        rows, more = pairs["value"] or ([], False)
        query = {"window": window.key, "a": a, "b": b}
        context.update(
            {
                "data": data,
                "summary": summary,
                "reviews": (data["value"] or {}).get("reviews"),
                "a_chart": charts.histogram_chart(p.histogram(summary["a_bins"])) if summary else None,
                "b_chart": charts.histogram_chart(p.histogram(summary["b_bins"])) if summary else None,
                "pairs": pairs,
                "rows": rows,
                "page": page,
                "prev_query": urlencode({**query, "page": page - 1}) if page > 1 else None,
                "next_query": urlencode({**query, "page": page + 1}) if more else None,
            }
        )
    return render(request, "insight/compare.html", context)


# --- Export ---------------------------------------------------------------------------------------------------------

KINDS = ("classifications", "failures", "reviews")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}


@never_cache
@login_required
@require_GET
def export_page(request: HttpRequest) -> HttpResponse:
    """The three lists' download forms, filled from the query (the dashboard and failures pages link here with
    their filters), with the row cap stated beside the links."""
    get = request.GET
    context = {
        "cap": settings.EXPORT_MAX_ROWS,
        "f": {k: get.get(k, "")[:200] for k in ("label", "name", "range", "since", "until", "before")},
        "failure_name": get.get("failure_name", "")[:200],
        "ranges": list(dashboard.RANGES),
        "verdicts": Review.Verdict.choices,
    }
    return render(request, "insight/export.html", context)


def _export_rows(kind: str, get: QueryDict, request: HttpRequest, cap: int) -> tuple[Iterator[dict[str, Any]], str]:
    """The rows of one list with that list's own filters, and a summary of them for the audit log."""
    if kind == "classifications":
        filters, raw = dashboard._filters(request)  # the list's own parsing: the file holds what the list shows
        shown = {k: v for k, v in raw.items() if v}
        return insight.classification_export(filters=filters, cap=cap), f"filters {shown or 'none'}"
    if kind == "failures":
        name = get.get("name", "").strip()[:200]
        return insight.failure_export(name=name, cap=cap), f"name {name!r}" if name else "all open"
    verdict = get.get("verdict", "").strip()
    if verdict and verdict not in Review.Verdict.values:
        raise p.Refused(f"verdict must be one of {', '.join(Review.Verdict.values)}")
    model = p.name(get.get("model"), what="model", limit=p.MODEL_MAX)
    label = p.name(get.get("label"), what="label", limit=p.LABEL_MAX)
    shown = {k: v for k, v in (("verdict", verdict), ("model", model), ("label", label)) if v}
    return insight.review_export(verdict=verdict, model=model, label=label, cap=cap), f"filters {shown or 'none'}"


def _lines(kind: str, fmt: str, rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    if fmt == "jsonl":
        return exports.jsonl_lines(rows)
    if kind == "classifications":
        columns = exports.classification_columns(insight.CLASSIFICATION_COLUMNS)
        return exports.csv_lines(columns, (exports.flat_classification(r) for r in rows))
    if kind == "failures":
        return exports.csv_lines([c.strip() for c in failures.COLUMNS.split(",")], rows)
    return exports.csv_lines(insight.REVIEW_COLUMNS, rows)


@never_cache
@login_required
@require_GET
def export(request: HttpRequest, kind: str) -> HttpResponseBase:
    """A list as CSV or JSON Lines, streamed a page at a time, at most EXPORT_MAX_ROWS rows.

    Audited although it is a read: a page shows 20 rows to one screen, an export copies up to the whole table off
    the system in one request, and "who took a copy of the data, when, with which filters" is what an audit of
    a leak asks first. One record per download, written before the first byte."""
    back = reverse("insight:export_page")
    if kind not in KINDS:
        return _refused(
            request, f"nothing to export called {kind[:40]!r} (choose {', '.join(KINDS)})", status=404, back=back
        )
    cap = settings.EXPORT_MAX_ROWS
    try:
        fmt = p.export_format(request.GET.get("format"))
        rows, summary = _export_rows(kind, request.GET, request, cap)
        source = iter(exports.capped(rows, cap))
        first = list(itertools.islice(source, 1))  # the query runs here: a failure is a page, not a cut-off file
    except p.Refused as exc:
        return _refused(request, str(exc), back=back)
    except Exception as exc:
        log.exception("export of %s failed", kind)
        reason = f"the export could not be read: {exc.__class__.__name__}: {exc}"
        return _refused(request, reason, status=503, back=back)
    audit_record(
        actor=Actor.of(request.user, request),
        action=AuditLog.Action.EXPORT,
        outcome=AuditLog.Outcome.SUCCEEDED,
        summary=f"export of {kind} as {fmt} (at most {cap} rows), {summary}",
    )
    response = StreamingHttpResponse(_lines(kind, fmt, itertools.chain(first, source)), content_type=CONTENT_TYPES[fmt])
    filename = f"sightline-{kind}-{datetime.now(UTC):%Y%m%d-%H%M%S}.{fmt}"
    response["Content-Disposition"] = content_disposition_header(True, filename) or "attachment"
    response["X-Export-Row-Cap"] = str(cap)
    return response
