"""Alert pages: the rules and channels (everyone may look, staff may change), the history, and "send test"."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from controlplane.alerts import evaluate, services
from controlplane.alerts.models import Channel, Notification
from controlplane.alerts.rules import SPECS, rules_ensure
from controlplane.auth import staff_required

HISTORY_SHOWN = 200


def _float(raw: str) -> float | None:
    return float(raw) if raw.strip() else None


def _rule_changes(post: Any, kind: str) -> dict[str, Any]:
    return {
        "enabled": post.get(f"{kind}-enabled") == "on",
        "threshold": _float(post.get(f"{kind}-threshold", "")),
        "for_s": int(post.get(f"{kind}-for_s", "0")),
        "reminder_minutes": int(post.get(f"{kind}-reminder_minutes", "0")),
    }


@never_cache
@login_required
@require_GET
def settings_page(request: HttpRequest) -> HttpResponse:
    rules = [(rule, SPECS[rule.kind]) for rule in rules_ensure()]
    context = {
        "rules": rules,
        "channels": Channel.objects.all(),
        "kinds": Channel.Kind.choices,
        "alerts_every_s": settings.ALERTS_EVERY_S,
    }
    return render(request, "alerts/settings.html", context)


@never_cache
@login_required
@staff_required
@require_POST
def rules_save(request: HttpRequest) -> HttpResponse:
    user, changed = request.user.get_username(), 0
    for rule in rules_ensure():
        try:
            services.rule_update(rule=rule, changes=_rule_changes(request.POST, rule.kind), user=user)
            changed += 1
        except (ValueError, ValidationError) as exc:
            messages.error(request, f"{SPECS[rule.kind].title}: not saved: {exc}")
    messages.success(request, f"Saved {changed} rule{'s' if changed != 1 else ''}.")
    return redirect("alerts:settings")


@never_cache
@login_required
@staff_required
@require_POST
def channel_add(request: HttpRequest) -> HttpResponse:
    try:
        channel = services.channel_create(
            kind=request.POST.get("kind", ""), target=request.POST.get("target", ""), user=request.user.get_username()
        )
    except ValidationError as exc:
        messages.error(request, f"Channel not added: {' '.join(exc.messages)}")
    else:
        messages.success(request, f"Added {channel}.")
    return redirect("alerts:settings")


@never_cache
@login_required
@staff_required
@require_POST
def channel_delete(request: HttpRequest, pk: int) -> HttpResponse:
    channel = get_object_or_404(Channel, pk=pk)
    services.channel_delete(channel=channel, user=request.user.get_username())
    messages.success(request, f"Removed {channel}.")
    return redirect("alerts:settings")


@never_cache
@login_required
@staff_required
@require_POST
def send_test(request: HttpRequest) -> HttpResponse:
    sent = evaluate.notify_test(user=request.user.get_username())
    for n in sent:
        if n.status == Notification.Status.SENT:
            messages.success(request, f"Test sent to {n.channel_label}.")
        elif n.status == Notification.Status.NO_CHANNEL:
            messages.warning(request, "No channel is set: add one below first.")
        else:
            messages.error(request, f"Test to {n.channel_label} failed: {n.error}")
    return redirect("alerts:settings")


@never_cache
@login_required
@require_GET
def history(request: HttpRequest) -> HttpResponse:
    entries = Notification.objects.select_related("rule")[:HISTORY_SHOWN]
    titles = {kind: spec.title for kind, spec in SPECS.items()}
    return render(request, "alerts/history.html", {"entries": entries, "titles": titles, "shown": HISTORY_SHOWN})
