"""A generic webhook: every field, for receivers that route or store alerts themselves."""

from __future__ import annotations

from controlplane.alerts.transports import Message
from controlplane.alerts.transports.http import post_json


def send(target: str, message: Message) -> None:
    post_json(target, {**message.payload, "title": message.title, "text": message.text})
