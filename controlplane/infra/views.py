"""Infrastructure pages: the plan (everyone logged in), apply and destroy (staff only), the audit log.

Views parse input, call one service, render. A destructive action shows its confirmation on GET and acts on POST.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from controlplane.auth import staff_required
from controlplane.infra import jobs, selectors
from controlplane.infra.changes import Plan, PlanError
from controlplane.infra.preflight import preflight_run
from controlplane.infra.services import (
    Actor,
    Refused,
    Result,
    StalePlan,
    default_spec,
    stack_apply,
    stack_destroy_plan,
    stack_plan,
)
from controlplane.models import AuditLog


def _plan_page(request: HttpRequest, plan: Plan | None, error: str = "", status: int = 200) -> HttpResponse:
    context = {"plan": plan, "error": error, "spec": default_spec()}
    return render(request, "controlplane/infra/plan.html", context, status=status)


@never_cache
@login_required
@require_GET
def plan(request: HttpRequest) -> HttpResponse:
    try:
        return _plan_page(request, stack_plan(spec=default_spec(), actor=Actor.of(request.user)))
    except PlanError as exc:
        return _plan_page(request, None, str(exc), status=503)


def _result_page(request: HttpRequest, action: str, result: Result) -> HttpResponse:
    return render(request, "controlplane/infra/result.html", {"action": action, "result": result})


@never_cache
@login_required
@staff_required
@require_POST
def apply(request: HttpRequest) -> HttpResponse:
    actor = Actor.of(request.user)
    try:
        result = stack_apply(spec=default_spec(), checksum=request.POST.get("checksum", ""), actor=actor)
    except StalePlan as exc:
        messages.error(request, f"Not applied: {exc}.")
        return _plan_page(request, exc.fresh, status=409)
    except Refused as exc:
        messages.error(request, f"Not applied: {exc}.")
        return _plan_page(request, None, status=409)
    except PlanError as exc:
        return _plan_page(request, None, str(exc), status=503)
    return _result_page(request, "apply", result)


DESTROY_TEMPLATE = "controlplane/infra/destroy.html"


def _destroy_page(
    request: HttpRequest, plan: Plan | None, template: str, context: dict[str, Any], error: str = "", status: int = 200
) -> HttpResponse:
    context = {**context, "plan": plan, "error": error, "spec": default_spec(), "form_action": request.path}
    return render(request, template, context, status=status)


def destroy_view(
    request: HttpRequest, template: str = DESTROY_TEMPLATE, context: dict[str, Any] | None = None
) -> HttpResponse:
    """Shared by the dashboard page and the admin's teardown page (which brings its own template)."""
    spec, actor, context = default_spec(), Actor.of(request.user), context or {}
    try:
        if request.method != "POST":
            return _destroy_page(request, stack_destroy_plan(spec=spec, actor=actor), template, context)
        run_id = jobs.destroy_enqueue(
            checksum=request.POST.get("checksum", ""),
            confirmation=request.POST.get("confirmation", ""),
            delete_data=request.POST.get("delete_data") == "on",
            actor=actor,
        )
    except Refused as exc:
        messages.error(request, f"Not destroyed: {exc}.")
        fresh = exc.fresh if isinstance(exc, StalePlan) else stack_destroy_plan(spec=spec, actor=actor)
        return _destroy_page(request, fresh, template, context, status=400)
    except PlanError as exc:
        return _destroy_page(request, None, template, context, str(exc), status=503)
    messages.info(request, "Destroy queued: it runs outside this page, which shows its progress.")
    return redirect("infra:run", run_id=run_id)


destroy = never_cache(login_required(staff_required(require_http_methods(["GET", "POST"])(destroy_view))))


@never_cache
@login_required
@require_GET
def audit(request: HttpRequest) -> HttpResponse:
    return render(request, "controlplane/infra/audit.html", {"entries": selectors.audit_list_recent(limit=100)})


@never_cache
@login_required
@require_GET
def preflight(request: HttpRequest) -> HttpResponse:
    """The Infrastructure page's preflight panel, loaded after the page (it asks every API once)."""
    try:
        report, error = preflight_run(default_spec().cfg), ""
    except Exception as exc:  # the panel says so; the plan above it stands on its own
        report, error = None, f"{exc.__class__.__name__}: {exc}"
    return render(request, "controlplane/infra/_preflight.html", {"report": report, "error": error})


@never_cache
@login_required
@staff_required
@require_GET
def run(request: HttpRequest, run_id: str) -> HttpResponse:
    """A queued destroy's progress: each step and batch of deletes as it happens; the partial alone for htmx."""
    state = jobs.run_state(default_spec().cfg, run_id)
    audit = None
    if state.result and state.result.get("audit_id"):
        audit = AuditLog.objects.filter(pk=state.result["audit_id"]).first()
    context = {"state": state, "audit": audit}
    template = "controlplane/infra/_run.html" if request.headers.get("HX-Request") else "controlplane/infra/run.html"
    return render(request, template, context)
