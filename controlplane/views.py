"""Operator views: parse input, call one selector or service, render."""

from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from controlplane import selectors

log = logging.getLogger(__name__)

PAGE_SIZE = 50


def _bigquery_read(fn, **kwargs):  # type: ignore[no-untyped-def]
    """A dashboard that cannot reach BigQuery says so instead of failing the whole page."""
    try:
        return fn(**kwargs), None
    except Exception as exc:
        log.exception("BigQuery read failed")
        return [], f"BigQuery could not be read: {exc.__class__.__name__}: {exc}"


@never_cache
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    rows, error = _bigquery_read(selectors.classification_list_recent, limit=PAGE_SIZE)
    failures, failures_error = _bigquery_read(selectors.failure_list_recent, limit=10)
    context = {"rows": rows, "error": error, "failures": failures, "failures_error": failures_error}
    template = "controlplane/_recent.html" if request.htmx else "controlplane/dashboard.html"
    return render(request, template, context)
