"""The plan's vocabulary: one Change per thing apply (or destroy) would do, and the Plan the operator reviews.

Pure data: nothing here reads or changes a resource.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

CREATE = "create"
UPDATE = "update"
DELETE = "delete"
REPLACE = "replace"  # destructive: never carried out by apply
NOOP = "no-op"
PROVIDED = "provided"

SYMBOLS = {CREATE: "+", UPDATE: "~", DELETE: "-", REPLACE: "-/+", NOOP: "=", PROVIDED: "="}


class PlanError(RuntimeError):
    """Live state could not be read; the message names the resource."""


@dataclass(frozen=True)
class Change:
    action: str
    kind: str
    name: str
    reason: str
    details: tuple[str, ...] = ()
    target: str = ""  # what exactly to act on when it is not the resource itself (a notification config's id)
    data_count: int = 0  # destroy: objects or rows that go with the resource
    data_noun: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.action]

    @property
    def pending(self) -> bool:
        return self.action in (CREATE, UPDATE, DELETE, REPLACE)

    @property
    def data_label(self) -> str:
        return f"{self.data_count} {self.data_noun}" if self.data_count else ""

    def fingerprint(self) -> dict[str, Any]:
        """What the operator agreed to. Data counts move while uploads go on; whether there is data at all does not."""
        data = {k: v for k, v in asdict(self).items() if k not in ("data_count", "data_noun")}
        data["has_data"] = self.data_count > 0
        return data

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "details": list(self.details), "symbol": self.symbol}


@dataclass(frozen=True)
class Plan:
    mode: str  # "apply" or "destroy"
    changes: tuple[Change, ...] = field(default_factory=tuple)

    @property
    def checksum(self) -> str:
        body = json.dumps({"mode": self.mode, "changes": [c.fingerprint() for c in self.changes]}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()

    def count(self, *actions: str) -> int:
        return sum(1 for c in self.changes if c.action in actions)

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.pending]

    @property
    def has_changes(self) -> bool:
        return bool(self.pending)

    @property
    def destructive(self) -> list[Change]:
        return [c for c in self.changes if c.action == REPLACE]

    @property
    def data_at_risk(self) -> list[Change]:
        return [c for c in self.changes if c.action == DELETE and c.data_count]

    @property
    def summary(self) -> str:
        line = (
            f"Plan: {self.count(CREATE)} to create, {self.count(UPDATE, REPLACE)} to change, "
            f"{self.count(DELETE)} to destroy."
        )
        if self.destructive:
            line += f" {len(self.destructive)} change(s) need a destructive replacement: apply will not do them."
        return line

    def as_list(self) -> list[dict[str, Any]]:
        return [c.as_dict() for c in self.changes]
