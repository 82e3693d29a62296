"""The review queue's pages: the queue with the current candidate, and the verdict.

Everyone logged in may look at the queue (it shows what the dashboard already shows them: rows, labels, images);
only staff give verdicts, because a verdict is a write that becomes the ground truth of accuracy per label, like
every other write in this app (controlplane/auth.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.middleware import HtmxDetails

from controlplane.audit import Actor
from controlplane.auth import staff_required
from controlplane.review import selectors, services
from controlplane.review.labels import imagenet_labels
from controlplane.review.rules import Thresholds, live_model_of

log = logging.getLogger(__name__)

PAGE_SIZE = 20
MAX_AT = 100_000
QUEUE_FIELDS = ("model", "range", "confidence_below", "margin_below")


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


@dataclass(frozen=True)
class QueueView:
    """The queue a request asks for, its query string, and what in it was refused (shown, defaults used)."""

    spec: selectors.QueueSpec
    at: int
    raw: dict[str, str]
    problems: list[str]

    def query(self, **changes: Any) -> str:
        return urlencode({**{k: v for k, v in self.raw.items() if v}, "at": self.at, **changes})


def _at(value: str) -> int:
    try:
        return min(max(int(value), 0), MAX_AT)
    except ValueError:
        return 0


def _queue_view(data: QueryDict) -> QueueView:
    raw = {k: data.get(k, "").strip()[:64] for k in QUEUE_FIELDS}
    problems = []
    configured: Thresholds = settings.REVIEW_THRESHOLDS
    try:
        thresholds = configured.narrowed(confidence_below=raw["confidence_below"], margin_below=raw["margin_below"])
    except ValueError as exc:
        problems.append(f"{exc}; the settings' thresholds are used")
        thresholds = configured
        raw["confidence_below"] = raw["margin_below"] = ""
    if raw["range"] and raw["range"] not in selectors.RANGES:
        problems.append(f"range={raw['range']!r} is not one of {', '.join(selectors.RANGES)}; the last day is shown")
        raw["range"] = ""
    range_ = raw["range"] or selectors.DEFAULT_RANGE
    if not raw["model"]:
        # Resolved once, then carried by every link and form of the page: a verdict judges the model shown.
        spec = selectors.QueueSpec.of(model="", range_=range_, thresholds=thresholds)
        models, _ = _read(selectors.models_in_window, [], start=spec.start, end=spec.end)
        raw["model"] = live_model_of(models, selectors.live_model())
    spec = selectors.QueueSpec.of(model=raw["model"], range_=range_, thresholds=thresholds)
    return QueueView(spec=spec, at=_at(data.get("at", "0")), raw=raw, problems=problems)


def _read(fn: Any, default: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """A queue that cannot reach BigQuery says so instead of failing whole."""
    try:
        return fn(**kwargs), None
    except Exception as exc:
        log.exception("%s failed", getattr(fn, "__name__", fn))
        return default, f"{exc.__class__.__name__}: {exc}"


def _panel_context(view: QueueView, *, notice: str = "", refused: str = "") -> dict[str, Any]:
    offset = view.at // PAGE_SIZE * PAGE_SIZE
    (page, age), error = _read(
        selectors.review_queue,
        (selectors.QueuePage([], 0, offset, 0, False), None),
        spec=view.spec,
        limit=PAGE_SIZE,
        offset=offset,
    )
    at = view.at
    if page.rows:
        at = min(max(at, page.offset), page.offset + len(page.rows) - 1)
    view = QueueView(view.spec, at, view.raw, view.problems)
    current = page.rows[at - page.offset] if page.rows else None
    # After this verdict the next one shows: its image is fetched meanwhile.
    following = page.rows[at - page.offset + 1] if page.rows and at - page.offset + 1 < len(page.rows) else None
    return {
        "q": view,
        "page": page,
        "age_s": age,
        "error": error,
        "current": current,
        "following": following,
        "at": at,
        "position": at + 1,
        "list_first": page.offset + 1,
        "list_last": page.offset + len(page.rows),
        "prev_query": view.query(at=at - 1) if at > 0 else None,
        "next_query": view.query(at=at + 1) if at + 1 < page.pending else None,
        "entries": [
            {"row": r, "at": page.offset + i, "query": view.query(at=page.offset + i)} for i, r in enumerate(page.rows)
        ],
        "notice": notice,
        "refused": refused,
        "queue_url": reverse("review:queue"),
    }


@never_cache
@login_required
@require_GET
def queue(request: HtmxHttpRequest) -> HttpResponse:
    view = _queue_view(request.GET)
    context = _panel_context(view)
    if request.htmx and not request.htmx.history_restore_request:  # a restore from history wants the whole page
        return render(request, "review/_panel.html", context)
    models, models_error = _read(selectors.models_in_window, [], start=view.spec.start, end=view.spec.end)
    names = [m["model"] for m in models]
    if view.spec.model not in names:
        models = [{"model": view.spec.model, "rows": None}, *models]
    context |= {
        "models": models,
        "models_error": models_error,
        "ranges": list(selectors.RANGES),
        "range": view.raw["range"] or selectors.DEFAULT_RANGE,
        "configured": settings.REVIEW_THRESHOLDS,
        "labels": list(imagenet_labels()),
        "problems": view.problems,
    }
    return render(request, "review/queue.html", context)


@never_cache
@login_required
@staff_required
@require_POST
def verdict(request: HtmxHttpRequest) -> HttpResponse:
    view = _queue_view(request.POST)
    post = request.POST
    name = post.get("name", "")[: services.MAX_NAME + 1]
    try:
        generation = int(post.get("generation", ""))
    except ValueError:
        generation = 0
    notice = refused = ""
    try:
        review = services.review_record(
            bucket=post.get("bucket", "")[:222],
            name=name,
            generation=generation,
            model=post.get("verdict_model", "")[: services.MAX_MODEL + 1],
            verdict=post.get("verdict", "")[:20],
            true_label=post.get("true_label", "")[:200],
            actor=Actor.of(request.user, request),
        )
    except services.ReviewRefused as exc:
        refused = f"Not recorded: {exc}"
    else:
        said = f"wrong, really {review.true_label}" if review.verdict == "wrong" else review.verdict
        notice = f"Recorded {review.image_name}: {said}."
    if request.htmx:
        return render(request, "review/_panel.html", _panel_context(view, notice=notice, refused=refused))
    if refused:
        messages.error(request, refused)
    else:
        messages.success(request, notice)
    return redirect(f"{reverse('review:queue')}?{view.query()}")
