"""Operator views: parse input, call one selector or service, render.

Everyone who can log in may look; only staff may act (listener control, requeue, dismiss, upload): others get 403.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import io
import json
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails
from PIL import Image

from classifier import failures as failure_ops
from classifier import images, ledger
from classifier.cloud import gcs
from classifier.images import BadImage
from classifier.logsafe import shown
from controlplane import charts, deadletters, livecache, metrics, selectors, services
from controlplane.alerts import objective
from controlplane.alerts.models import Rule
from controlplane.audit import Actor
from controlplane.auth import staff_required
from controlplane.deadletters import dead_letter_list
from controlplane.fraction import fraction
from controlplane.insight.params import Refused
from controlplane.reconcile import reconcile_run

log = logging.getLogger(__name__)

PAGE_SIZE = 20
FAILURES_PAGE_SIZE = 50
DEAD_LETTERS_SHOWN = 50
DEAD_LETTERS_REFRESH_S = 15.0
REQUEUE_ALL_SHOWN = 20
# Cloud Monitoring's figure for the subscription's backlog: shared by every tab, read at most every 15 s.
BACKLOG_REFRESH_S = 15.0
RECONCILE_SHOWN = 20
HEALTH_MINUTES = 15
THUMB_PX = 112
RANGES = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
# Served inline only as these types; anything else is a download, so an uploaded HTML file never runs as our page.
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"}


class HtmxHttpRequest(HttpRequest):
    """What django-htmx's middleware adds to every request (its documented way to type `request.htmx`)."""

    htmx: HtmxDetails


def _read(fn: Callable[..., Any], default: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """A page that cannot reach BigQuery, Redis or GCS says so instead of failing whole."""
    try:
        return fn(**kwargs), None
    except Exception as exc:
        log.exception("%s failed", fn.__name__)
        return default, f"{exc.__class__.__name__}: {exc}"


def _int(value: str | None, default: int, *, lo: int, hi: int) -> int:
    try:
        return min(max(int(value or default), lo), hi)
    except ValueError:
        return default


def _when(value: str) -> datetime | None:
    """`datetime-local` input (YYYY-MM-DDTHH:MM), read as UTC like every time on these pages."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None
    except ValueError:
        return None


FILTER_FIELDS = ("label", "name", "min_confidence", "max_confidence", "range", "since", "until", "before")


def _confidence(raw: str, what: str) -> float | None:
    """A top-1 confidence bound as typed: empty (no bound) or a number from 0 to 1; anything else is refused."""
    return fraction(
        raw,
        not_number=f"{what} confidence must be a number from 0 to 1, not {{raw!r}}.",
        out_of_range=f"{what} confidence must be from 0 to 1; {{raw!r}} is not.",
        refuse=FilterRefused,
    )


class FilterRefused(Refused):
    """Filters the list will not run (a confidence outside 0..1, min above max); the message says which and why.
    A `Refused` of the insight pages, so the export of the list refuses them the same way."""


def _filters(request: HttpRequest) -> tuple[selectors.ClassificationFilter, dict[str, str]]:
    """The list's filters and the raw values for the form; raises FilterRefused (nothing is queried then)."""
    raw = {k: request.GET.get(k, "").strip()[:200] for k in FILTER_FIELDS}
    since, until = _when(raw["since"]), _when(raw["until"])
    if raw["range"] in RANGES:
        since, until = datetime.now(UTC) - RANGES[raw["range"]], None
    low = _confidence(raw["min_confidence"], "The minimum")
    high = _confidence(raw["max_confidence"], "The maximum")
    if low is not None and high is not None and low > high:
        raise FilterRefused(f"The minimum confidence ({low:g}) is above the maximum ({high:g}).")
    filters = selectors.ClassificationFilter(
        label=raw["label"],
        name=raw["name"],
        since=since,
        until=until,
        before=_when(raw["before"]),
        min_confidence=low,
        max_confidence=high,
    )
    return filters, raw


def _filters_or_refusal(request: HttpRequest) -> tuple[selectors.ClassificationFilter, dict[str, str], str | None]:
    """As `_filters`, with a refusal as its reason and no filter at all (the form keeps what was typed)."""
    try:
        return (*_filters(request), None)
    except FilterRefused as exc:
        raw = {k: request.GET.get(k, "").strip()[:200] for k in FILTER_FIELDS}
        return selectors.ClassificationFilter(), raw, str(exc)


def _shared_key(prefix: str, params: dict[str, Any]) -> str:
    return prefix + hashlib.sha256(urlencode(sorted(params.items())).encode()).hexdigest()[:32]


def _listing(
    filters: selectors.ClassificationFilter, query: dict[str, str], page: int
) -> tuple[tuple[list[dict[str, Any]], bool, tuple[datetime, datetime]], float | None, str, str | None]:
    """(rows, more, window), their age, where they came from, and an error: page 1 of the unfiltered live window
    from what the workers recorded in Redis (no BigQuery query per refresh); anything else from BigQuery."""
    if page == 1 and not filters.active and not filters.before:
        live, _ = _read(selectors.classification_live_page, None, limit=PAGE_SIZE)
        if live is not None:
            return live, 0.0, "redis", None
    # Every tab showing the same listing shares one query per refresh interval.
    (listing, age), error = _read(
        livecache.shared,
        (([], False, filters.window()), None),
        key=_shared_key("recent:", {**query, "page": page}),
        compute=selectors.classification_list,
        filters=filters,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    return listing, age, "bigquery", error


def _recent_context(request: HttpRequest) -> dict[str, Any]:
    filters, raw, refused = _filters_or_refusal(request)
    page = _int(request.GET.get("page"), 1, lo=1, hi=10_000)
    query = {k: v for k, v in raw.items() if v}
    empty: list[dict[str, Any]] = []
    if refused:  # nothing is queried with filters that were refused
        listing, age, source, error = (empty, False, filters.window()), None, "", None
    else:
        listing, age, source, error = _listing(filters, query, page)
    rows, more, (start, end) = listing
    explicit = bool(filters.since or filters.until)
    older = {k: v for k, v in query.items() if k not in ("before", "page")}
    return {
        "rows": rows,
        "error": error,
        "page": page,
        "prev_query": urlencode({**query, "page": page - 1}) if page > 1 else None,
        "next_query": urlencode({**query, "page": page + 1}) if more else None,
        "older_query": None if explicit or refused else urlencode({**older, "before": f"{start:%Y-%m-%dT%H:%M}"}),
        "window_start": start,
        "window_end": end,
        "rows_age_s": age,
        "rows_source": source,
        "refused": refused,
        "query": urlencode(query),
        "filters": raw,
        "filtering": filters.active or bool(refused),
        "live": page == 1 and not filters.before and not filters.until,
        "ranges": list(RANGES),
    }


# The figures of a page are independent reads (Redis; BigQuery for the open-failure count and a filtered list): a
# cold request waits for the slowest, not for their sum. Shared by the requests of a process; no task waits on another.
_READS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="page-read")


def _health_context() -> dict[str, Any]:
    def shared(**kwargs: Any) -> Future[tuple[Any, str | None]]:
        return _READS.submit(_read, livecache.shared, (None, None), **kwargs)

    # Slow to compute (BigQuery, Cloud Monitoring, ~1,000 Redis hashes) and read no Django database: with a tab open,
    # no request waits for their next value (stale_ok); the page shows each one's age.
    def slow(**kwargs: Any) -> Future[tuple[Any, str | None]]:
        return shared(stale_ok=True, **kwargs)

    reads = {
        "listener": _READS.submit(_read, selectors.listener_status, {"state": "unknown", "desired": "running"}),
        "queue": _READS.submit(_read, selectors.queue_status, None),
        "tp": shared(key="health:throughput", compute=selectors.throughput, minutes=HEALTH_MINUTES),
        "failures": slow(
            key=livecache.FAILURE_COUNT_KEY, compute=selectors.failure_count, ttl_s=livecache.FAILURE_COUNT_S
        ),
        "backlog": slow(key="health:backlog", compute=selectors.pubsub_backlog, ttl_s=BACKLOG_REFRESH_S),
        "memory": _READS.submit(_read, selectors.redis_memory, None),
        # The objective (Redis counters): shared by every web process, once a minute, not once per process.
        "slo": slow(
            key="health:objective",
            compute=objective.objective_status,
            ttl_s=objective.CACHE_S,
            fresh=True,  # this is the cache: the process's own copy would add up to a minute more
        ),
    }
    got = {name: future.result() for name, future in reads.items()}
    listener, listener_error = got["listener"]
    queue, queue_error = got["queue"]
    (tp, tp_age), tp_error = got["tp"]
    (failures, failures_age), failures_error = got["failures"]
    (backlog, _backlog_age), backlog_error = got["backlog"]
    memory, memory_error = got["memory"]
    (slo, _slo_age), slo_error = got["slo"]
    return {
        "listener": listener,
        "queue": queue,
        "tp": tp,
        "tp_age_s": tp_age,
        "chart": charts.throughput_chart(tp["series"]) if tp else None,
        "failure_total": failures,
        "failures_age_s": failures_age,
        "backlog": backlog,
        "memory": memory,
        "objective": slo,
        "alerts_firing": Rule.objects.filter(enabled=True, firing=True).count(),
        "health_errors": [
            e
            for e in (listener_error, queue_error, tp_error, failures_error, backlog_error, memory_error, slo_error)
            if e
        ],
        "now": datetime.now(UTC),
    }


@never_cache
@login_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    recent = _READS.submit(_recent_context, request)  # the list's read beside the health figures'
    health = _health_context()
    context = {**recent.result(), **health, "upload_max_bytes": settings.SIGHTLINE.max_image_bytes}
    return render(request, "controlplane/dashboard.html", context)


@never_cache
@login_required
@require_GET
def recent_partial(request: HttpRequest) -> HttpResponse:
    return render(request, "controlplane/_recent.html", _recent_context(request))


@never_cache
@login_required
@require_GET
def health_partial(request: HttpRequest) -> HttpResponse:
    return render(request, "controlplane/_health.html", _health_context())


@never_cache
@login_required
@staff_required
@require_POST
def listener_control(request: HtmxHttpRequest, action: str) -> HttpResponse:
    state = {"start": "running", "stop": "paused"}.get(action)
    if state is None:
        raise Http404("unknown action")
    services.listener_desired_set(state=state, actor=Actor.of(request.user, request))
    if request.htmx:
        return render(request, "controlplane/_health.html", _health_context())
    messages.success(request, "Listener resuming." if state == "running" else "Listener pausing: it drains and stops.")
    return redirect("dashboard")


@never_cache
@login_required
@staff_required
@require_POST
def upload(request: HttpRequest) -> HttpResponse:
    files = request.FILES.getlist("images")
    folder = request.POST.get("folder", "")
    if not files:
        messages.error(request, "Choose or drop at least one file.")
        return redirect("dashboard")
    done, actor = [], Actor.of(request.user, request)
    limit = settings.SIGHTLINE.max_image_bytes
    for f in files:
        if f.size is not None and f.size > limit:  # refused before reading it into memory
            reason = f"{f.name} is {f.size} bytes, over MAX_IMAGE_BYTES={limit}"
            services.image_upload_refused(filename=f.name or "", size=f.size, reason=reason, actor=actor)
            messages.error(request, f"Not uploaded: {reason}")
            continue
        try:
            name, _generation = services.image_upload(
                folder=folder, filename=f.name or "", data=f.read(), content_type=f.content_type, actor=actor
            )
            done.append(name)
        except services.BadUpload as exc:
            messages.error(request, f"Not uploaded: {exc}")
        except Exception as exc:
            log.exception("upload of %s failed", shown(f.name))
            messages.error(request, f"Upload of {f.name} failed: {exc.__class__.__name__}: {exc}")
    if done:
        messages.success(request, f"Uploaded {len(done)}: {', '.join(done)}. Rows appear below as workers finish.")
    return redirect("dashboard")


def _back(request: HttpRequest, name: str) -> HttpResponse:
    """After an action: back to the object's story when it started there, else to the failures."""
    if request.POST.get("back") == "object":
        return redirect(f"{reverse('object_find')}?{urlencode({'name': name})}")
    return redirect("failures")


def _object_ref(data: Any) -> tuple[str, str, int]:
    try:
        return data["bucket"], data["name"], int(data["generation"])
    except (KeyError, ValueError):
        raise Http404("bucket, name and generation are required") from None


DEAD_LETTERS_KEY = "failures:dead-letters"


def _dead_letters_context(shared: tuple[Any, float] | None, error: str | None = None) -> dict[str, Any]:
    messages_, age = shared if shared is not None else (None, None)
    return {
        # Attributes as sorted pairs: a template looks up `.items` as a key first, and these keys are the sender's.
        "dead_letters": None
        if messages_ is None
        else [{**m, "attributes": sorted(m["attributes"].items())} for m in messages_],
        "dead_letters_age_s": age,
        "dead_letters_error": error,
        "dead_letters_shown": DEAD_LETTERS_SHOWN,
        "dead_letter_preview": deadletters.PREVIEW_CHARS,
        "dead_letter_subscription": settings.SIGHTLINE.dead_letter_subscription,
    }


def _dead_letters_part(request: HttpRequest) -> HttpResponse:
    """The dead letters alone: read from Pub/Sub at most once per DEAD_LETTERS_REFRESH_S, shared by every tab."""
    shared, error = _read(
        livecache.shared,
        ([], None),
        key=DEAD_LETTERS_KEY,
        compute=dead_letter_list,
        ttl_s=DEAD_LETTERS_REFRESH_S,
        cfg=settings.SIGHTLINE,
        limit=DEAD_LETTERS_SHOWN,
    )
    context = {**_dead_letters_context(shared, error), "dead_letters_stale": False}
    return render(request, "controlplane/_dead_letters.html", context)


@never_cache
@login_required
@require_GET
def failures(request: HttpRequest) -> HttpResponse:
    if request.GET.get("part") == "dead-letters":
        return _dead_letters_part(request)
    name = request.GET.get("name", "").strip()[:200]
    page = _int(request.GET.get("page"), 1, lo=1, hi=10_000)
    (rows, more), error = _read(
        selectors.failure_list, ([], False), name=name, limit=FAILURES_PAGE_SIZE, offset=(page - 1) * FAILURES_PAGE_SIZE
    )
    (total, total_age), _ = _read(
        livecache.shared,
        (None, None),
        key=livecache.FAILURE_COUNT_KEY,
        compute=selectors.failure_count,
        ttl_s=livecache.FAILURE_COUNT_S,
    )
    operation, _ = _read(failure_ops.op_get, None, redis=ledger.connection(settings.SIGHTLINE))
    # The dead letters come from a Pub/Sub pull, which waits for its answer (about a second when the subscription is
    # empty): the page never waits for it. It shows the shared copy when there is one, and when that is missing or
    # older than DEAD_LETTERS_REFRESH_S, the browser fetches the fresh list separately (`?part=dead-letters`).
    cached = livecache.peek(DEAD_LETTERS_KEY)
    query = {"name": name} if name else {}
    context = {
        **_dead_letters_context(cached),
        "dead_letters_stale": cached is None or cached[1] >= DEAD_LETTERS_REFRESH_S,
        "rows": rows,
        "error": error,
        "name": name,
        "total": total,
        "total_age_s": total_age,
        "operation": operation,
        "page": page,
        "prev_query": urlencode({**query, "page": page - 1}) if page > 1 else None,
        "next_query": urlencode({**query, "page": page + 1}) if more else None,
    }
    return render(request, "controlplane/failures.html", context)


@never_cache
@login_required
@staff_required
@require_POST
def failure_requeue(request: HttpRequest) -> HttpResponse:
    bucket, name, generation = _object_ref(request.POST)
    try:
        job_id = services.failure_requeue(
            bucket=bucket, name=name, generation=generation, actor=Actor.of(request.user, request)
        )
    except services.NotFound as exc:
        messages.warning(request, str(exc))
    else:
        messages.success(request, f"Requeued {name} (generation {generation}) as job {job_id}.")
    return _back(request, name)


@never_cache
@login_required
@staff_required
def failure_dismiss(request: HttpRequest) -> HttpResponse:
    source = request.POST if request.method == "POST" else request.GET
    bucket, name, generation = _object_ref(source)
    if request.method != "POST":
        rows, error = _read(selectors.failure_get, [], bucket=bucket, name=name, generation=generation)
        context = {"bucket": bucket, "name": name, "generation": generation, "rows": rows, "error": error}
        return render(request, "controlplane/failure_dismiss.html", context)
    try:
        actor = Actor.of(request.user, request)
        services.failure_dismiss(bucket=bucket, name=name, generation=generation, actor=actor)
    except services.NotFound as exc:
        messages.warning(request, str(exc))
    else:
        messages.success(request, f"Dismissed the failure of {name} (generation {generation}).")
    return _back(request, name)


@never_cache
@login_required
@staff_required
def failure_requeue_all(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        expected = _int(request.POST.get("expected"), -1, lo=-1, hi=10_000)
        try:
            services.failure_requeue_all(expected=expected, actor=Actor.of(request.user, request))
        except services.CountChanged as exc:
            messages.warning(request, f"The failures changed since you confirmed ({expected}); {exc}. Check again.")
            return redirect("failure_requeue_all")
        livecache.forget(livecache.FAILURE_COUNT_KEY)
        messages.success(
            request,
            f"Requeueing {expected} failed object{'s' if expected != 1 else ''} in the background: "
            "progress is shown on this page.",
        )
        return redirect("failures")
    (count, rows), error = _read(selectors.failure_requeue_preview, (0, []), shown=REQUEUE_ALL_SHOWN)
    return render(request, "controlplane/failure_requeue_all.html", {"rows": rows, "count": count, "error": error})


@never_cache
@login_required
@staff_required
@require_http_methods(["GET", "HEAD", "POST"])
def reconcile(request: HttpRequest) -> HttpResponse:
    """GET: a dry run to confirm (what would be enqueued); POST: enqueue every object with neither row nor failure."""
    source = request.POST if request.method == "POST" else request.GET
    since_raw = source.get("since", "").strip()[:40]
    since = _when(since_raw)
    if since_raw and since is None:
        messages.error(request, f"Not a date and time: {since_raw!r} (expected YYYY-MM-DDTHH:MM, UTC).")
        return redirect("reconcile")
    cfg = settings.SIGHTLINE
    if request.method == "POST":
        try:
            report = services.reconcile_enqueue(since=since, actor=Actor.of(request.user, request))
        except Exception as exc:
            log.exception("reconcile failed")
            messages.error(request, f"Reconcile failed: {exc.__class__.__name__}: {exc}")
            return redirect(f"{reverse('reconcile')}?{urlencode({'since': since_raw})}" if since_raw else "reconcile")
        scope = f" (objects created since {since:%Y-%m-%d %H:%M} UTC)" if since else ""
        messages.success(
            request,
            f"Reconcile{scope}: listed {report.listed} object{'s' if report.listed != 1 else ''}, "
            f"{report.done} with a row or failure, {report.missing} with neither; "
            f"enqueued {report.enqueued}, {report.in_flight} already queued or running.",
        )
        return redirect("dashboard")
    report, error = _read(reconcile_run, None, cfg=cfg, since=since, dry_run=True)
    context = {
        "report": report,
        "error": error,
        "since": since_raw,
        "missing_shown": report.missing_keys[:RECONCILE_SHOWN] if report else [],
    }
    return render(request, "controlplane/reconcile.html", context)


@never_cache
@login_required
@require_GET
def object_find(request: HttpRequest) -> HttpResponse:
    name = request.GET.get("name", "").strip()[:1024]
    known = None
    if name.startswith("classify-"):  # a job id: find its object
        found, _ = _read(selectors.object_for_job, None, job_id=name)
        if found:
            bucket, name, generation = found
            known = (bucket, generation)
    context: dict[str, Any] = {"name": name}
    if name:
        context["story"], context["error"] = _read(selectors.object_story, None, name=name, known=known)
        story = context["story"]
        if story is not None and not story["generations"]:
            context["suggestions"], _ = _read(selectors.object_names_like, [], text=name)
    return render(request, "controlplane/object.html", context)


@functools.cache
def _placeholder() -> bytes:
    """A plain grey square: the thumbnail of an object that is no image, or too large to show."""
    out = io.BytesIO()
    Image.new("RGB", (THUMB_PX * 2, THUMB_PX * 2), (221, 221, 221)).save(out, "JPEG", quality=60)
    return out.getvalue()


def _thumbnail(bucket: str, name: str, generation: int) -> bytes:
    """Decoded at a cost bounded by the thumbnail's size; the result, a picture or the placeholder, is cached."""
    size = THUMB_PX * 2  # 2x for sharp thumbnails on dense screens
    key = "thumb:" + hashlib.sha256(json.dumps([bucket, name, generation, size]).encode()).hexdigest()
    cached = cache.get(key)
    if cached is not None:
        return cached
    try:
        blob = gcs.download(settings.SIGHTLINE, bucket=bucket, name=name, generation=generation)
        thumb = images.thumbnail_rgb(blob.data, side=size, max_pixels=settings.SIGHTLINE.max_image_pixels)
    except (gcs.TooLarge, BadImage) as exc:
        log.info("thumbnail of %s#%d is a placeholder: %s", bucket, generation, exc)
        data = _placeholder()
    else:
        out = io.BytesIO()
        thumb.save(out, "JPEG", quality=82)
        data = out.getvalue()
    cache.set(key, data, 3600)
    return data


@login_required
@require_GET
def object_image(request: HttpRequest) -> HttpResponseBase:
    """One generation of an object of the pipeline's bucket, through this app: the bucket stays private."""
    bucket, name, generation = _object_ref(request.GET)
    if bucket != settings.SIGHTLINE.bucket:
        raise Http404("not the pipeline's bucket")
    # A generation never changes, so browsers may keep it; `private`: only this user's browser.
    cache_control = "private, max-age=86400, immutable"
    response: HttpResponseBase
    try:
        if request.GET.get("size") == "thumb":
            response = HttpResponse(_thumbnail(bucket, name, generation), content_type="image/jpeg")
        else:
            info, chunks = gcs.object_read(settings.SIGHTLINE, bucket=bucket, name=name, generation=generation)
            inline = info.content_type in INLINE_TYPES
            response = StreamingHttpResponse(
                chunks, content_type=info.content_type if inline else "application/octet-stream"
            )
            if info.size is not None:
                response["Content-Length"] = str(info.size)
            if info.content_encoding:  # the stored bytes as they are: the browser inflates them
                response["Content-Encoding"] = info.content_encoding
            filename = name.rsplit("/", 1)[-1] or "object"
            response["Content-Disposition"] = content_disposition_header(not inline, filename) or "inline"
    except (gcs.ObjectGone, gcs.TooLarge) as exc:
        raise Http404(str(exc)) from None
    response["Cache-Control"] = cache_control
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@never_cache
@require_GET
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """404 while METRICS_TOKEN is unset (the endpoint does not exist); 401 without the right bearer token."""
    token = settings.SIGHTLINE.metrics_token
    if not token:
        raise Http404("metrics are off: set METRICS_TOKEN")
    sent = request.headers.get("Authorization", "")
    if not sent.startswith("Bearer ") or not hmac.compare_digest(sent[7:].strip().encode(), token.encode()):
        response = HttpResponse("bearer token required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="sightline-metrics"'
        return response
    try:
        body = metrics.exposition()
    except Exception as exc:
        log.exception("metrics scrape failed")
        return HttpResponse(f"# scrape failed: {exc.__class__.__name__}\n", status=503, content_type="text/plain")
    return HttpResponse(body, content_type="text/plain; version=0.0.4; charset=utf-8")
