"""The JSON API: the dashboard's reads and actions for scripts. Same selectors and services as the pages, same rule:
everyone with a login (or a token) may read, only staff may act.

Each view parses input with a serializer, calls one selector or service, and answers JSON.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Model
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import api_view, parser_classes, permission_classes
from rest_framework.exceptions import NotFound as ApiNotFound
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from controlplane import selectors, services
from controlplane.api import serializers as s
from controlplane.api.auth import IsStaff
from controlplane.audit import Actor
from controlplane.deadletters import dead_letter_list
from controlplane.infra import jobs as infra_jobs
from controlplane.infra import selectors as infra_selectors
from controlplane.infra import services as infra
from controlplane.infra.changes import Plan, PlanError
from controlplane.infra.preflight import preflight_run
from controlplane.reconcile import reconcile_run

log = logging.getLogger(__name__)

PAGE_SIZE = 20
FAILURES_PAGE_SIZE = 50
RANGES = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7)}
JSON = {200: OpenApiTypes.OBJECT}


def jsonable(value: Any) -> Any:
    """Selector results hold dataclasses and model rows; DRF's encoder does the datetimes."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Model):
        return value.pk
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _valid(serializer: type[Serializer], data: Any) -> dict[str, Any]:
    checked = serializer(data=data)
    checked.is_valid(raise_exception=True)
    return dict(checked.validated_data)


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value else None


def _by(request: Request) -> dict[str, Any]:
    """Who acts, as the services take it (audited with the client's address, as on the pages)."""
    return {"actor": Actor.of(request.user, request._request)}


def _unavailable(exc: Exception) -> Response:
    log.exception("API read failed")
    return Response({"detail": f"{exc.__class__.__name__}: {exc}"}, status=status.HTTP_503_SERVICE_UNAVAILABLE)


def _read(fn: Callable[..., Any], **kwargs: Any) -> Response:
    """A read whose backend (BigQuery, Redis, Pub/Sub) is down answers 503 with why, like the pages' error boxes."""
    try:
        return Response(jsonable(fn(**kwargs)))
    except Exception as exc:
        return _unavailable(exc)


# --- Reads -----------------------------------------------------------------------------------------------------------


def _health() -> dict[str, Any]:
    from controlplane.alerts import objective

    return {
        "listener": selectors.listener_status(),
        "queue": selectors.queue_status(),
        "throughput": selectors.throughput(minutes=15),
        "open_failures": selectors.failure_count(),
        "objective": objective.objective_status(),
        "pipeline": selectors.pipeline_identity(),
    }


@extend_schema(responses=JSON, summary="Pipeline health: listener, queue, workers, throughput, failures, objective")
@api_view(["GET"])
def health(request: Request) -> Response:
    return _read(_health)


@extend_schema(
    parameters=[s.ClassificationQuery],
    responses=JSON,
    summary="Classifications of one time window, newest first, 20 a page",
)
@api_view(["GET"])
def classifications(request: Request) -> Response:
    q = _valid(s.ClassificationQuery, request.query_params)
    since, until = _utc(q.get("since")), _utc(q.get("until"))
    if q.get("range"):
        since, until = datetime.now(UTC) - RANGES[q["range"]], None
    filters = selectors.ClassificationFilter(
        label=q.get("label", ""), name=q.get("name", ""), since=since, until=until, before=_utc(q.get("before"))
    )
    page = q["page"]
    try:
        rows, more, (start, end) = selectors.classification_list(
            filters=filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
    except Exception as exc:
        return _unavailable(exc)
    # One window of processed_at at a time (a bounded scan); `before=<window_start>` reads the one before it.
    window = {"start": start, "end": end}
    return Response({"page": page, "more": more, "window": window, "results": jsonable(rows)})


@extend_schema(parameters=[s.FailureQuery], responses=JSON, summary="Open failure records, newest first, 50 a page")
@api_view(["GET"])
def failures(request: Request) -> Response:
    q = _valid(s.FailureQuery, request.query_params)
    page = q["page"]
    try:
        rows, more = selectors.failure_list(
            name=q.get("name", ""), limit=FAILURES_PAGE_SIZE, offset=(page - 1) * FAILURES_PAGE_SIZE
        )
    except Exception as exc:
        return _unavailable(exc)
    return Response({"page": page, "more": more, "results": jsonable(rows)})


@extend_schema(responses=JSON, summary="Notifications in the dead-letter topic (read without consuming them)")
@api_view(["GET"])
def dead_letters(request: Request) -> Response:
    return _read(dead_letter_list, cfg=settings.SIGHTLINE, limit=50)


@extend_schema(parameters=[s.ObjectQuery], responses=JSON, summary="One object's story: every generation")
@api_view(["GET"])
def object_story(request: Request) -> Response:
    name = _valid(s.ObjectQuery, request.query_params)["name"].strip()
    try:
        known = None
        if name.startswith("classify-"):
            found = selectors.object_for_job(job_id=name)
            if found:
                name, known = found[1], (found[0], found[2])
        return Response(jsonable(selectors.object_story(name=name, known=known)))
    except Exception as exc:
        return _unavailable(exc)


# --- Listener, upload, failures, reconcile -----------------------------------------------------------------------------


@extend_schema(
    request=None,
    responses=JSON,
    parameters=[OpenApiParameter("action", str, OpenApiParameter.PATH, enum=["start", "stop"])],
    summary="Stop (pause) or start the listener; the desired state survives restarts",
)
@api_view(["POST"])
@permission_classes([IsStaff])
def listener_control(request: Request, action: str) -> Response:
    state = {"start": "running", "stop": "paused"}.get(action)
    if state is None:
        raise ApiNotFound("unknown action: use start or stop")
    services.listener_desired_set(state=state, **_by(request))
    return Response({"desired": state})


@extend_schema(request={"multipart/form-data": s.UploadInput}, responses=JSON, summary="Upload images to the bucket")
@api_view(["POST"])
@permission_classes([IsStaff])
@parser_classes([MultiPartParser, FormParser])
def upload(request: Request) -> Response:
    files = request.FILES.getlist("images")
    folder = _valid(s.UploadInput, {"images": files, "folder": request.POST.get("folder", "")})["folder"]
    done, errors = [], []
    for f in files:
        try:
            if f.size is not None and f.size > settings.SIGHTLINE.max_image_bytes:
                raise services.BadUpload(f"{f.name} is {f.size} bytes, over MAX_IMAGE_BYTES")
            name, generation = services.image_upload(
                folder=folder, filename=f.name or "", data=f.read(), content_type=f.content_type, **_by(request)
            )
            done.append({"name": name, "generation": generation})
        except services.BadUpload as exc:
            errors.append({"file": f.name, "error": str(exc)})
    return Response({"uploaded": done, "errors": errors}, status=201 if done else 400)


@extend_schema(request=s.ObjectRef, responses=JSON, summary="Requeue one failed object (a forced job)")
@api_view(["POST"])
@permission_classes([IsStaff])
def failure_requeue(request: Request) -> Response:
    ref = _valid(s.ObjectRef, request.data)
    try:
        job_id = services.failure_requeue(**ref, **_by(request))
    except services.NotFound as exc:
        raise ApiNotFound(str(exc)) from None
    return Response({"job_id": job_id})


@extend_schema(request=s.RequeueAll, responses=JSON, summary="Requeue every open failure (409 if the count changed)")
@api_view(["POST"])
@permission_classes([IsStaff])
def failure_requeue_all(request: Request) -> Response:
    expected = _valid(s.RequeueAll, request.data)["expected"]
    try:
        count = services.failure_requeue_all(expected=expected, **_by(request))
    except services.CountChanged as exc:
        return Response({"detail": str(exc), "now": exc.now}, status=status.HTTP_409_CONFLICT)
    return Response({"requeued": count})


@extend_schema(request=s.ObjectRef, responses=JSON, summary="Dismiss one failure: its records and outcome go")
@api_view(["POST"])
@permission_classes([IsStaff])
def failure_dismiss(request: Request) -> Response:
    ref = _valid(s.ObjectRef, request.data)
    try:
        services.failure_dismiss(**ref, **_by(request))
    except services.NotFound as exc:
        raise ApiNotFound(str(exc)) from None
    return Response({"dismissed": ref})


@extend_schema(
    methods=["GET"], parameters=[s.ReconcileInput], responses=JSON, summary="Reconcile, dry run: what would be enqueued"
)
@extend_schema(methods=["POST"], request=s.ReconcileInput, responses=JSON, summary="Reconcile: enqueue what is missing")
@api_view(["GET", "POST"])
@permission_classes([IsStaff])
def reconcile(request: Request) -> Response:
    source = request.data if request.method == "POST" else request.query_params
    since = _utc(_valid(s.ReconcileInput, source).get("since"))
    if request.method == "POST":  # audited, as the page's
        return _read(services.reconcile_enqueue, since=since, **_by(request))
    return _read(reconcile_run, cfg=settings.SIGHTLINE, since=since, dry_run=True)


# --- Infrastructure ----------------------------------------------------------------------------------------------------


def _plan(plan: Plan) -> dict[str, Any]:
    return {"mode": plan.mode, "checksum": plan.checksum, "summary": plan.summary, "changes": plan.as_list()}


def _result(result: infra.Result) -> dict[str, Any]:
    steps = [{"change": st.change.as_dict(), "status": st.status, "message": st.message} for st in result.steps]
    return {"ok": result.ok, "plan": _plan(result.plan), "steps": steps, "audit_id": getattr(result.audit, "pk", None)}


def _refused(exc: infra.Refused) -> Response:
    fresh = _plan(exc.fresh) if isinstance(exc, infra.StalePlan) else None
    return Response({"detail": str(exc), "fresh_plan": fresh}, status=status.HTTP_409_CONFLICT)


@extend_schema(responses=JSON, summary="The plan: what apply would change, with its checksum")
@api_view(["GET"])
def infra_plan(request: Request) -> Response:
    return _read(lambda: _plan(infra.stack_plan(spec=infra.default_spec())))


@extend_schema(request=s.ApplyInput, responses=JSON, summary="Apply the plan with this checksum (409 if it changed)")
@api_view(["POST"])
@permission_classes([IsStaff])
def infra_apply(request: Request) -> Response:
    checksum = _valid(s.ApplyInput, request.data)["checksum"]
    try:
        result = infra.stack_apply(spec=infra.default_spec(), checksum=checksum, actor=infra.Actor.of(request.user))
    except infra.Refused as exc:
        return _refused(exc)
    except PlanError as exc:
        return _unavailable(exc)
    return Response(_result(result), status=200 if result.ok else 502)


@extend_schema(methods=["GET"], responses=JSON, summary="The destroy plan, with its checksum")
@extend_schema(
    methods=["POST"],
    request=s.DestroyInput,
    responses={202: OpenApiTypes.OBJECT},
    summary="Queue a destroy with the typed confirmation (202: follow its run)",
)
@api_view(["GET", "POST"])
@permission_classes([IsStaff])
def infra_destroy(request: Request) -> Response:
    spec, actor = infra.default_spec(), infra.Actor.of(request.user)
    if request.method != "POST":
        return _read(lambda: _plan(infra.stack_destroy_plan(spec=spec)))
    data = _valid(s.DestroyInput, request.data)
    try:
        run_id = infra_jobs.destroy_enqueue(actor=actor, **data)
    except infra.Refused as exc:
        return _refused(exc)
    except PlanError as exc:
        return _unavailable(exc)
    url = reverse("api:infra_run", kwargs={"run_id": run_id})
    return Response({"run_id": run_id, "run": url}, status=status.HTTP_202_ACCEPTED, headers={"Location": url})


@extend_schema(responses=JSON, summary="A queued destroy's progress: status, steps, and the result when done")
@api_view(["GET"])
@permission_classes([IsStaff])
def infra_run(request: Request, run_id: str) -> Response:
    def state() -> dict[str, Any]:
        run = infra_jobs.run_state(infra.default_spec().cfg, run_id)
        return {**jsonable(run), "done": run.done}

    return _read(state)


@extend_schema(responses=JSON, summary="Preflight: what the credentials may do, which APIs are on, the settings")
@api_view(["GET"])
def infra_preflight(request: Request) -> Response:
    return _read(lambda: preflight_run(infra.default_spec().cfg))


@extend_schema(responses=JSON, summary="The infrastructure audit log, newest first")
@api_view(["GET"])
def infra_audit(request: Request) -> Response:
    q = request.query_params
    filters = infra_selectors.AuditFilter(
        action=q.get("action", ""), outcome=q.get("outcome", ""), actor=q.get("actor", "")
    )
    entries = infra_selectors.audit_page(filters=filters, page=q.get("page", 1), per_page=100)
    fields = ("id", "created_at", "actor", "source", "action", "outcome", "summary", "checksum", "changes", "error")
    return Response([{f: getattr(e, f) for f in fields} for e in entries])
