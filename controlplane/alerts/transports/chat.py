"""Slack incoming webhooks and Google Chat space webhooks both accept `{"text": "..."}`."""

from __future__ import annotations

from controlplane.alerts.transports import Message
from controlplane.alerts.transports.http import post_json


def send(target: str, message: Message) -> None:
    post_json(target, {"text": message.text})
