"""Destroy from the dashboard runs as an RQ job on its own queue, outside the web request.

Why RQ and not the request (or a thread in it): deleting a large bucket takes as long as it takes, far past any WSGI
server's request timeout, and a web process that is restarted or scaled down would stop it midway. A job on a queue
of its own (never the classify queue: its workers are Django-free and busy with uploads) is picked up by
`manage.py runinfra` on any machine, survives the web app, records its end in rq and in the audit log, and has a
deterministic id, so a double submit of the same plan is one run. Progress (each step, each batch of deletes) goes to
a Redis list that the run's page polls; the infra lock is renewed on each of them (services._renewing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from classifier import ledger
from classifier.config import Config
from controlplane.infra import apply as runner
from controlplane.infra.services import Actor, default_spec, destroy_precheck, stack_destroy

INFRA_QUEUE = "sightline-infra"
RUN_TTL_S = 7 * 24 * 3600
# A bucket of millions of objects: hours, not minutes. rq's own default (3 minutes) would kill it midway.
DESTROY_TIMEOUT_S = 12 * 3600


def queue(cfg: Config) -> Queue:
    return Queue(INFRA_QUEUE, connection=ledger.connection(cfg), serializer=JSONSerializer)


def worker(cfg: Config) -> SimpleWorker:
    """In-process jobs: nothing to fork, and the job's Django connection is the worker's."""
    return SimpleWorker([queue(cfg)], connection=ledger.connection(cfg), serializer=JSONSerializer)


def _progress_key(run_id: str) -> str:
    return f"sightline:infra:run:{run_id}:steps"


def destroy_enqueue(*, checksum: str, confirmation: str, delete_data: bool, actor: Actor) -> str:
    """Check what can be checked now (protection, confirmation, data, a stale plan), then queue the run; its id.

    A refusal is raised (and recorded) here, so the operator sees it on the form; the job checks again under the
    lock, as the CLI does."""
    spec = default_spec()
    destroy_precheck(spec=spec, checksum=checksum, confirmation=confirmation, delete_data=delete_data, actor=actor)
    run_id = f"destroy-{checksum[:24]}"
    try:
        if Job.fetch(run_id, connection=ledger.connection(spec.cfg), serializer=JSONSerializer).get_status() in (
            "queued",
            "started",
        ):
            return run_id  # the same plan submitted twice: one run
    except NoSuchJobError:
        pass
    ledger.connection(spec.cfg).delete(_progress_key(run_id))
    queue(spec.cfg).enqueue(
        destroy_run,
        kwargs={
            "run_id": run_id,
            "checksum": checksum,
            "confirmation": confirmation,
            "delete_data": delete_data,
            "actor": actor.name,
            "user_id": actor.user.pk if actor.user is not None else None,
        },
        job_id=run_id,
        job_timeout=DESTROY_TIMEOUT_S,
        result_ttl=RUN_TTL_S,
        failure_ttl=RUN_TTL_S,
    )
    return run_id


def destroy_run(
    *, run_id: str, checksum: str, confirmation: str, delete_data: bool, actor: str, user_id: int | None
) -> dict[str, Any]:
    """The job: the same stack_destroy as the CLI, each step and progress line pushed for the run's page."""
    spec = default_spec()
    redis = ledger.connection(spec.cfg)
    user = get_user_model().objects.filter(pk=user_id).first() if user_id is not None else None

    def record(step: runner.Step) -> None:
        redis.rpush(_progress_key(run_id), json.dumps(step.as_dict()))
        redis.expire(_progress_key(run_id), RUN_TTL_S)

    result = stack_destroy(
        spec=spec,
        checksum=checksum,
        confirmation=confirmation,
        delete_data=delete_data,
        actor=Actor(name=actor, user=user),
        on_step=record,
    )
    return {"ok": result.ok, "audit_id": result.audit.pk if result.audit else None}


@dataclass(frozen=True)
class RunState:
    run_id: str
    status: str  # rq's: queued, started, finished, failed; "unknown" when the run has expired
    steps: list[dict[str, Any]]  # the latest line per step: a finished step replaces its progress lines
    result: dict[str, Any] | None
    error: str = ""

    @property
    def done(self) -> bool:
        return self.status in ("finished", "failed", "unknown")


def run_state(cfg: Config, run_id: str) -> RunState:
    redis = ledger.connection(cfg)
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in redis.lrange(_progress_key(run_id), 0, -1):
        line = json.loads(raw)
        latest[(line["kind"], line["name"])] = line
    try:
        job = Job.fetch(run_id, connection=redis, serializer=JSONSerializer)
    except NoSuchJobError:
        return RunState(run_id, "unknown", list(latest.values()), None)
    status = job.get_status().value
    latest_result = job.latest_result() if status == "failed" else None
    lines = (latest_result.exc_string or "").strip().splitlines() if latest_result else []
    error = lines[-1] if lines else ""
    return RunState(run_id, status, list(latest.values()), job.return_value() if status == "finished" else None, error)
