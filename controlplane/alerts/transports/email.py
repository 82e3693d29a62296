"""E-mail through Django's mail settings (EMAIL_* in .env.example)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail

from controlplane.alerts.transports import Message


def recipients(target: str) -> list[str]:
    return [a.strip() for a in target.replace(";", ",").split(",") if a.strip()]


def send(target: str, message: Message) -> None:
    send_mail(message.title, message.text, settings.DEFAULT_FROM_EMAIL, recipients(target), fail_silently=False)
