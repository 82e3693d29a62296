"""The audit log's writes: every operator action, who, when, what and how it ended (controlplane.models.AuditLog).

Services record their own actions through `audited`; failed logins come from Django's `user_login_failed` signal
(with django-axes installed or not). A read, such as a plan shown on a page, is not an action.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.http import HttpRequest

from controlplane.models import AuditLog

SUMMARY_MAX = 300


@dataclass(frozen=True)
class Actor:
    name: str
    user: User | None = None
    source: str = ""

    @classmethod
    def cli(cls) -> Actor:
        return cls(name=f"cli:{getpass.getuser()}")

    @classmethod
    def of(cls, user: AbstractBaseUser | AnonymousUser, request: HttpRequest | None = None) -> Actor:
        source = client_address(request)
        if not isinstance(user, User) or not user.is_authenticated:  # the project uses Django's own User model
            return cls(name="anonymous", source=source)
        return cls(name=user.get_username(), user=user, source=source)


def client_address(request: HttpRequest | None) -> str:
    """The client's address as django-axes counts it (DJANGO_TRUSTED_PROXY_HOPS, controlplane.security)."""
    if request is None:
        return ""
    return str(settings.AXES_CLIENT_IP_CALLABLE(request) or "")[:64]


def audit_record(*, actor: Actor, action: str, outcome: str, summary: str, error: str = "", **fields: Any) -> AuditLog:
    return AuditLog.objects.create(
        actor=actor.name[:150],
        user=actor.user,
        source=actor.source,
        action=action,
        outcome=outcome,
        summary=summary[:SUMMARY_MAX],
        error=error,
        **fields,
    )


@dataclass
class Note:
    """What an audited action did, filled in as it goes (e.g. how many it requeued)."""

    summary: str


@contextmanager
def audited(*, actor: Actor, action: str, summary: str, refusals: tuple[type[Exception], ...] = ()) -> Iterator[Note]:
    """Record the action when it ends: succeeded; refused (one of `refusals`, nothing done); or failed."""
    note = Note(summary)
    try:
        yield note
    except refusals as exc:
        audit_record(actor=actor, action=action, outcome=AuditLog.Outcome.REFUSED, summary=note.summary, error=str(exc))
        raise
    except Exception as exc:
        error = f"{exc.__class__.__name__}: {exc}"
        audit_record(actor=actor, action=action, outcome=AuditLog.Outcome.FAILED, summary=note.summary, error=error)
        raise
    audit_record(actor=actor, action=action, outcome=AuditLog.Outcome.SUCCEEDED, summary=note.summary)


def login_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any) -> None:
    """Receiver of django.contrib.auth's user_login_failed (connected in apps.py); Django has masked the password."""
    username = str(credentials.get("username", ""))
    actor = Actor(name=username or "(no user name)", source=client_address(request))
    path = request.path if request is not None else "?"
    audit_record(
        actor=actor,
        action=AuditLog.Action.LOGIN_FAILED,
        outcome=AuditLog.Outcome.FAILED,
        summary=f"failed login as {username[:150]!r} on {path[:100]}",
    )
