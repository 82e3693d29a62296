"""How the API knows who calls: `Authorization: Bearer <token>` or the dashboard's session (with its CSRF check)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from controlplane.api.models import ApiToken, token_digest

# Writing last_used_at on every request would turn each read into a write; once a minute is enough to see use.
LAST_USED_EVERY = timedelta(minutes=1)


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        token = ApiToken.objects.select_related("user").filter(digest=token_digest(header[7:].strip())).first()
        if token is None or not token.user.is_active:
            raise AuthenticationFailed("invalid or revoked token")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_EVERY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="sightline-api"'


def is_staff(user: Any) -> bool:
    return bool(user and user.is_authenticated and (user.is_staff or user.is_superuser))


class IsStaff(BasePermission):
    """The pages' rule (controlplane.auth.staff_required): staff or a superuser may act; anyone else gets 403."""

    message = "only staff can do this"

    def has_permission(self, request: Request, view: Any) -> bool:
        return is_staff(request.user)


class StaffWrites(BasePermission):
    """Everyone logged in may read; only staff may write."""

    message = "only staff can do this"

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in ("GET", "HEAD", "OPTIONS") or is_staff(request.user)


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Describes the token to the OpenAPI document (drf-spectacular finds it by the class path)."""

    target_class = "controlplane.api.auth.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A token from your account page."}
