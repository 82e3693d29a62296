"""Audited writes of the reprocess page: start a run, cancel one."""

from __future__ import annotations

import logging

from django.conf import settings

from classifier import ledger, reprocess
from classifier.config import Config
from classifier.logsafe import shown
from controlplane.audit import Actor, audited
from controlplane.models import AuditLog

log = logging.getLogger(__name__)


class CountChanged(Exception):
    """The selection's count is not the one the operator saw in the dry run."""


class NotRunning(Exception):
    pass


def _cfg() -> Config:
    return settings.SIGHTLINE


def _describe(sel: reprocess.Selection) -> str:
    parts = [f"{sel.since:%Y-%m-%d %H:%M} to {sel.until:%Y-%m-%d %H:%M} UTC"]
    if sel.prefix:
        parts.append(f"names starting {shown(sel.prefix)!r}")
    if sel.label:
        parts.append(f"top-1 {shown(sel.label)!r}")
    return ", ".join(parts)


def reprocess_start(*, selection: reprocess.Selection, expected: int, actor: Actor) -> str:
    """Start a run of the selection with its model; refused when the count is no longer what the operator saw.
    Returns the run's id."""
    summary = f"reprocess {expected} objects with {selection.model}: {_describe(selection)}"
    with audited(actor=actor, action=AuditLog.Action.REPROCESS, summary=summary, refusals=(CountChanged,)) as note:
        cfg = _cfg()
        now = reprocess.count(cfg, selection)
        if now != expected:
            raise CountChanged(f"the selection holds {now} objects now, not {expected}")
        op_id = reprocess.start(cfg, ledger.connection(cfg), selection, total=now, user=actor.name)
        note.summary = f"{summary}: started as {op_id}"
    log.info("reprocess %s of %d objects with %s started by %s", op_id, now, selection.model, shown(actor.name))
    return op_id


def reprocess_cancel(*, op_id: str, actor: Actor) -> None:
    with audited(
        actor=actor,
        action=AuditLog.Action.REPROCESS_CANCEL,
        summary=f"cancel reprocess {op_id}",
        refusals=(NotRunning,),
    ):
        if not reprocess.cancel(ledger.connection(_cfg()), op_id):
            raise NotRunning(f"reprocess {op_id} is not running")
