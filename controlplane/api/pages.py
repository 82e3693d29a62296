"""The user's page: their API tokens. A new token is shown once, right after it is made."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from controlplane.api.models import ApiToken, token_create

NEW_TOKEN_KEY = "api:new-token"


def _user(request: HttpRequest) -> User:
    """The logged-in user (login_required ran first); tokens belong to a real account, never to AnonymousUser."""
    if not isinstance(request.user, User):
        raise PermissionDenied("log in first")
    return request.user


@never_cache
@login_required
@require_GET
def account(request: HttpRequest) -> HttpResponse:
    # Popped: a reload or the back button never shows the raw token again.
    new_token = request.session.pop(NEW_TOKEN_KEY, None)
    context = {"tokens": ApiToken.objects.filter(user=_user(request)), "new_token": new_token}
    return render(request, "api/account.html", context)


@never_cache
@login_required
@require_POST
def token_new(request: HttpRequest) -> HttpResponse:
    token, raw = token_create(user=_user(request), name=request.POST.get("name", ""))
    request.session[NEW_TOKEN_KEY] = {"name": token.name, "value": raw}
    return redirect("account")


@never_cache
@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=_user(request))
    token.delete()
    messages.success(request, f"Revoked the token {token.name} ({token.hint}…).")
    return redirect("account")
