"""The reprocess page: choose a model and a selection, see the count (a dry run), start; progress and cancel.

Everyone logged in may look; only staff may start or cancel (controlplane.auth.staff_required).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
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

from classifier import reprocess
from controlplane.audit import Actor
from controlplane.auth import staff_required
from controlplane.reprocess import selectors, services

log = logging.getLogger(__name__)

FIELDS = ("model", "since", "until", "prefix", "label")
PREFIX_MAX = 1024  # a Cloud Storage name's length
LABEL_MAX = 100
DEFAULT_WINDOW = timedelta(days=1)


class Invalid(ValueError):
    pass


def _when(value: str, name: str) -> datetime:
    """`datetime-local` input (YYYY-MM-DDTHH:MM), read as UTC like every time on these pages."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        raise Invalid(f"{name}: not a date and time (expected YYYY-MM-DDTHH:MM, UTC)") from None


def _text(value: str, name: str, limit: int) -> str:
    if len(value) > limit or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise Invalid(f"{name}: at most {limit} characters, no control characters")
    return value


def _selection(source: QueryDict) -> reprocess.Selection:
    """The form's selection, checked; Invalid says which field and why."""
    raw = {k: source.get(k, "").strip() for k in FIELDS}
    if raw["model"] not in {m for m, _ in selectors.MODELS}:
        raise Invalid("model: choose one of the models listed")
    try:
        return reprocess.Selection(
            model=raw["model"],
            bucket=settings.SIGHTLINE.bucket,
            since=_when(raw["since"][:40], "from"),
            until=_when(raw["until"][:40], "to"),
            prefix=_text(raw["prefix"], "name prefix", PREFIX_MAX),
            label=_text(raw["label"], "label", LABEL_MAX),
        )
    except Invalid:
        raise
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def _form(source: QueryDict) -> dict[str, str]:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    defaults = {
        "model": "",
        "since": (now - DEFAULT_WINDOW).strftime("%Y-%m-%dT%H:%M"),
        "until": (now + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M"),
        "prefix": "",
        "label": "",
    }
    return {k: source.get(k, defaults[k]).strip()[:PREFIX_MAX] for k in FIELDS}


def _run_context(op_id: str | None = None) -> dict[str, Any]:
    try:
        return {"run": selectors.reprocess_get(op_id=op_id), "run_error": None}
    except Exception as exc:
        log.exception("reading the reprocess run failed")
        return {"run": None, "run_error": f"{exc.__class__.__name__}: {exc}"}


@never_cache
@login_required
@require_GET
def page(request: HttpRequest) -> HttpResponse:
    """The form; with `dry_run` in the query, the count of the selection too."""
    form = _form(request.GET)
    context: dict[str, Any] = {"form": form, "count": None, "error": None, **_run_context()}
    try:
        context["models"] = selectors.model_choices()
    except Exception as exc:
        log.exception("reading the models' workers failed")
        context["models"], context["error"] = [], f"Redis could not be read: {exc.__class__.__name__}: {exc}"
    context["chosen"] = next((m for m in context["models"] if m["id"] == form["model"]), None)
    if "dry_run" in request.GET:
        try:
            context["count"] = selectors.reprocess_count(selection=_selection(request.GET))
        except Invalid as exc:
            context["error"] = str(exc)
        except Exception as exc:
            log.exception("reprocess dry run failed")
            context["error"] = f"The dry run failed: {exc.__class__.__name__}: {exc}"
    context["max_objects"] = reprocess.MAX_OBJECTS
    context["max_days"] = reprocess.MAX_WINDOW_DAYS
    return render(request, "reprocess/page.html", context)


@never_cache
@login_required
@require_GET
def progress(request: HttpRequest) -> HttpResponse:
    return render(request, "reprocess/_progress.html", _run_context(request.GET.get("run", "")[:40] or None))


def _back(form: dict[str, str]) -> str:
    return f"{reverse('reprocess:page')}?{urlencode(form)}"


@never_cache
@login_required
@staff_required
@require_POST
def start(request: HttpRequest) -> HttpResponse:
    form = _form(request.POST)
    try:
        selection = _selection(request.POST)
        expected = int(request.POST.get("expected", ""))
    except (Invalid, ValueError) as exc:
        messages.error(request, f"Not started: {exc}")
        return redirect(_back(form))
    try:
        op_id = services.reprocess_start(selection=selection, expected=expected, actor=Actor.of(request.user, request))
    except services.CountChanged as exc:
        messages.warning(request, f"Not started: {exc}. Check the count again.")
        return redirect(_back(form) + "&dry_run=1")
    except Exception as exc:
        log.exception("reprocess start failed")
        messages.error(request, f"Not started: {exc.__class__.__name__}: {exc}")
        return redirect(_back(form))
    messages.success(
        request, f"Reprocessing {expected} object{'s' if expected != 1 else ''} with {selection.model}: run {op_id}."
    )
    return redirect(_back(form))


@never_cache
@login_required
@staff_required
@require_POST
def cancel(request: HttpRequest) -> HttpResponse:
    op_id = request.POST.get("run", "")[:40]
    try:
        services.reprocess_cancel(op_id=op_id, actor=Actor.of(request.user, request))
        messages.success(request, f"Run {op_id} is being cancelled: jobs still queued are taken back.")
    except services.NotRunning as exc:
        messages.warning(request, f"Nothing cancelled: {exc}.")
    return redirect("reprocess:page")
