"""What the web app refuses in production, whose address a login attempt counts against, and what an error page hides."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.views.debug import SafeExceptionReporterFilter

MIN_SECRET_KEY_LENGTH = 50  # Django's own deploy check asks for 50 characters, 5 of them different
MIN_SECRET_KEY_CHARS = 5


def refuse_insecure_production(*, debug: bool, allowed_hosts: list[str], secret_key: str) -> None:
    """With SIGHTLINE_LOCAL off, a setting that only suits a developer's machine stops start-up, naming it."""
    if debug:
        raise ImproperlyConfigured(
            "DJANGO_DEBUG=1 is refused when SIGHTLINE_LOCAL is off: its error pages show code and settings to anyone"
        )
    if not allowed_hosts or "*" in allowed_hosts:
        raise ImproperlyConfigured(
            "DJANGO_ALLOWED_HOSTS must list the site's host names when SIGHTLINE_LOCAL is off, not '*'"
        )
    weak = (
        len(secret_key) < MIN_SECRET_KEY_LENGTH
        or len(set(secret_key)) < MIN_SECRET_KEY_CHARS
        or secret_key.startswith("django-insecure-")
    )
    if weak:
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} random characters when SIGHTLINE_LOCAL "
            "is off (python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )


def origins(raw: str, *, local: bool) -> list[str]:
    """DJANGO_CSRF_TRUSTED_ORIGINS: scheme://host entries; only https:// outside the local stack."""
    found = [o.strip() for o in raw.split(",") if o.strip()]
    schemes = ("http://", "https://") if local else ("https://",)
    for origin in found:
        if not origin.startswith(schemes):
            raise ImproperlyConfigured(f"DJANGO_CSRF_TRUSTED_ORIGINS={origin!r} must start with {' or '.join(schemes)}")
    return found


class ClientAddress:
    """The client's address for django-axes: REMOTE_ADDR, or behind `hops` proxies the entry they vouch for.

    Each proxy appends the address it saw to X-Forwarded-For, so only the last `hops` entries are trustworthy:
    anything further left the client wrote itself, and counting failures against it would let a guesser
    pick a fresh address for every attempt.
    """

    def __init__(self, hops: int) -> None:
        self.hops = hops

    def __call__(self, request: HttpRequest) -> str | None:
        if self.hops == 0:
            return request.META.get("REMOTE_ADDR")
        chain = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        return chain[-self.hops] if len(chain) >= self.hops else request.META.get("REMOTE_ADDR")


_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^@\s]+@")


class SettingsFilter(SafeExceptionReporterFilter):
    """Django's debug page hides API|TOKEN|KEY|SECRET|PASS|SIGNATURE; ours also hides URLs (REDIS_URL holds a
    password), the Sightline configuration (its repr names the Redis URL and the metrics token), credentials,
    local variables with such names, and the password of any URL in a local variable."""

    hidden_settings = re.compile(
        "API|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|AUTHORIZATION|URL|REDIS|RQ|SIGHTLINE|CREDENTIAL|DSN",
        flags=re.IGNORECASE,
    )

    def get_traceback_frame_variables(self, request: HttpRequest | None, tb_frame: Any) -> Any:
        return [
            (name, self._cleansed(name, value))
            for name, value in super().get_traceback_frame_variables(request, tb_frame)
        ]

    def _cleansed(self, name: str, value: Any) -> Any:
        if self.hidden_settings.search(name):
            return self.cleansed_substitute
        return _URL_PASSWORD.sub(rf"\1{self.cleansed_substitute}@", value) if isinstance(value, str) else value
