"""One module per kind of channel, each with `send(target, message)`; it raises on failure, with why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Message:
    title: str
    text: str
    payload: dict[str, Any]


Send = Callable[[str, Message], None]


def sender(kind: str) -> Send:
    from controlplane.alerts.transports import chat, email, webhook

    return {"chat": chat.send, "webhook": webhook.send, "email": email.send}[kind]
