"""Who may act: one rule for the dashboard, the infrastructure pages and the admin's teardown."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

View = Callable[..., HttpResponse]


def staff_required(view: View) -> View:
    """Staff (or a superuser, who holds every permission) may act; anyone else logged in gets a 403, not a redirect to
    the login page: they are logged in, just not allowed. Put it under `login_required` for anonymous users."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not (request.user.is_staff or request.user.is_superuser):
            raise PermissionDenied("only staff can do this")
        return view(request, *args, **kwargs)

    return wrapper
