"""Fault injection with real processes: after each fault the contract holds, counted object by object.

These tests run on a private local stack of their own (fresh ports, data dir, bucket, queue, Redis), with
their own listener and worker processes, NOT on the session stack: they kill processes, restart emulators
and flush Redis, which would break every other test sharing the session stack, and the session `pipeline`
worker would otherwise steal the jobs whose worker we mean to kill. Cost: about 10 s to start the stack.

The subscription's ack deadline is lowered to 10 s on this stack (a real subscription setting), so a
message whose listener died is redelivered in seconds instead of a minute.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis as redis_lib
from rq import Worker
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from classifier import jobs, ledger, liveness
from classifier import listener as listener_module
from classifier.cloud import bigquery, pubsub
from classifier.config import Config
from classifier.queue import queue
from controlplane import selectors
from controlplane.deadletters import dead_letter_list
from controlplane.reconcile import reconcile_run
from devstack import localstack
from tests import contract
from tests.helpers import private_stack, wait_for

pytestmark = pytest.mark.e2e


@dataclass
class Faulty:
    cfg: Config
    stack: localstack.Stack
    listener: localstack.Service
    worker: localstack.Service
    app_env: dict[str, str] = field(default_factory=dict)

    def service(self, name: str) -> localstack.Service:
        return next(s for s in self.stack.services if s.name == name)

    def up(self) -> None:
        for proc in (self.listener, self.worker):
            if not proc.alive():
                proc.start()

    def settle(self, expected: dict[str, str], timeout: float = 90) -> dict[str, tuple[str, list[str]]]:
        wait_for(lambda: contract.settled(self.cfg, expected), timeout=timeout, every=0.5)
        time.sleep(1)  # a doubled row would land right after the first
        return contract.violations(self.cfg, expected)


@pytest.fixture(scope="module")
def faulty(stack, photos) -> Iterator[Faulty]:  # `stack`: the session stack starts first, this one beside it
    private = private_stack("faults", ack_deadline_s=10)
    cfg, running, app_env = private.cfg, private.stack, private.app_env
    # The tests read each job's final status after the last one settles, up to SETTLED_S later: keep finished jobs
    # that long (the default, 60 s, is sized for Redis memory, not for this reading).
    app_env["JOB_RESULT_TTL_S"] = str(SETTLED_S * 4)
    faults = Faulty(
        cfg=cfg,
        stack=running,
        listener=localstack.listener_service(cfg, app_env),
        worker=localstack.worker_service(cfg, app_env),
        app_env=app_env,
    )
    faults.up()
    yield faults
    for proc in (faults.listener, faults.worker):
        proc.stop()
    running.stop()


def _upload_batch(f: Faulty, photos: dict[str, bytes], prefix: str, n: int) -> dict[str, str]:
    blobs = list(photos.items())
    expected = {}
    for i in range(n):
        name, blob = blobs[i % len(blobs)]
        expected[contract.upload(f.cfg, f"{prefix}{i:02d}-{name}", blob, "image/png")] = "row"
    return expected


def _started(f: Faulty) -> list[str]:
    return StartedJobRegistry(name=f.cfg.queue_name, connection=ledger.connection(f.cfg)).get_job_ids()


def _taken(f: Faulty) -> list[str]:
    """Jobs a worker took off the queue and has not finished: started, or held in rq's intermediate list."""
    return _started(f) + queue(f.cfg).intermediate_queue.get_job_ids()


def _as_if_rq_timeouts_passed(f: Faulty) -> int:
    """What RQ does on its own once the dead worker's timeouts ran out, done now (nothing else runs a job now).

    Its job's heartbeat expires after 90 s and the next maintenance pass (WORKER maintenance interval) hands it
    back for a retry; its scheduler lock expires after 61 s, and a live worker takes the scheduler over."""
    redis = ledger.connection(f.cfg)
    StartedJobRegistry(name=f.cfg.queue_name, connection=redis).cleanup(timestamp=time.time() + 3600)
    redis.delete(f"rq:scheduler-lock:{f.cfg.queue_name}")
    # Jobs it had taken off the queue without starting them (a batching worker holds several) sit in rq's
    # intermediate list; maintenance retries those it saw there a minute earlier.
    q = queue(f.cfg)
    held = q.intermediate_queue.get_job_ids()
    for job_id in held:
        redis.set(q.intermediate_queue.get_first_seen_key(job_id), time.time() - 120)
    q.intermediate_queue.cleanup(Worker([q], connection=redis, serializer=JSONSerializer), q)
    return len(held)


def test_worker_sigkilled_mid_job(faulty, photos, prefix):
    f = faulty
    f.up()
    wait_for(lambda: ledger.connection(f.cfg).ping(), timeout=5)
    expected = _upload_batch(f, photos, prefix, 8)
    # A batching worker classifies its batch and writes the rows in one insert before it starts the first job:
    # the kill may land then (jobs held in rq's intermediate list, claims, markers or rows written) or mid-job.
    assert wait_for(lambda: _taken(f), timeout=60, every=0.01), "no job was ever taken"
    f.worker.kill(signal.SIGKILL)
    abandoned = _started(f)
    held = _as_if_rq_timeouts_passed(f)
    assert abandoned or held, "the kill did not land mid-batch"
    f.worker.start()
    assert f.settle(expected) == {}
    print(f"FAULT worker SIGKILL: {len(abandoned)} job(s) killed mid-run, {held} taken but not started; all retried")


# Jobs a dead worker had taken are handed back within liveness.ALIVE_TTL_S + liveness.REAP_S (30 s) of its death;
# the bound leaves room to finish them on a slow, shared machine. Before: ~6 minutes, and only if another upload came.
SETTLED_S = 75


def _rq_workers(f: Faulty) -> dict[int, str]:
    """pid -> name of each worker rq has registered on this stack's queue."""
    return {w.pid: w.name for w in Worker.all(queue=queue(f.cfg))}


def _fetch(f: Faulty, job_ids: list[str]) -> list[Job]:
    return Job.fetch_many(job_ids, connection=ledger.connection(f.cfg), serializer=JSONSerializer)


def test_a_dead_workers_batch_is_retried_within_a_minute_on_an_idle_pipeline(faulty, photos, prefix, settings):
    """SIGKILL a worker while it holds a batch, with a second worker idle, then upload nothing more: with no new
    traffic and no rq timer faked, every job still finishes within SETTLED_S of the death, and meanwhile the dashboard
    shows the dead worker as dead and its jobs as still to do (not "0 waiting, 0 running")."""
    f = faulty
    f.up()
    settings.SIGHTLINE = f.cfg  # the dashboard's selectors read this stack
    idle = localstack.worker_service(f.cfg, f.app_env, name="worker-b")
    idle.start()
    try:
        pids = (f.worker.proc.pid, idle.proc.pid)
        assert wait_for(lambda: set(pids) <= _rq_workers(f).keys(), timeout=120), "two workers did not start"
        victim = _rq_workers(f)[f.worker.proc.pid]
        intermediate = queue(f.cfg).intermediate_queue
        # Frozen while the burst arrives, so the batch in rq's intermediate list is surely the victim's.
        idle.kill(signal.SIGSTOP)
        try:
            expected = _upload_batch(f, photos, prefix, 16)
            assert wait_for(lambda: len(intermediate.get_job_ids()) >= 2, timeout=60, every=0.005), "no batch taken"
            f.worker.kill(signal.SIGKILL)
        finally:
            idle.kill(signal.SIGCONT)
        killed_at = time.monotonic()
        held = len(intermediate.get_job_ids()) + len(_started(f))

        def shown_dead() -> dict | None:
            status = selectors.queue_status()
            return status if any(w["name"] == victim and w["state"] == "dead" for w in status["workers"]) else None

        status = wait_for(shown_dead, timeout=liveness.ALIVE_TTL_S + 5)
        # Every job finished, not only every row written: the batch may have written its rows before the kill.
        job_ids = [jobs.job_id(*ledger.parse_key(k)) for k in expected]
        finished = lambda: all(j.get_status() == JobStatus.FINISHED for j in _fetch(f, job_ids))  # noqa: E731
        settled = wait_for(finished, timeout=SETTLED_S, every=0.5)
        settled_s = time.monotonic() - killed_at
        assert settled, f"the dead worker's {held} jobs were not retried and finished within {SETTLED_S} s"
        assert f.settle(expected) == {}
        assert status, "the dashboard did not show the dead worker as dead"
        assert status["workers_dead"] == 1 and status["depth"] + status["taken"] + status["started"] > 0, status
    finally:
        idle.stop()
        f.up()
    print(f"FAULT worker SIGKILL, idle pipeline: the {held} job(s) it held all finished {settled_s:.0f} s after")


def _listener_ready(f: Faulty) -> bool:
    raw = ledger.connection(f.cfg).get(listener_module.HEARTBEAT_KEY)
    beat = json.loads(raw) if raw else {}
    return bool(f.listener.proc) and beat.get("pid") == f.listener.proc.pid and beat.get("state") == "running"


@contextlib.contextmanager
def _slow_redis(f: Faulty, step_s: float = 0.5) -> Iterator[None]:
    """Redis answers every command up to `step_s` late (back-to-back DEBUG SLEEPs): the listener's enqueue of a
    pulled message takes seconds, so it holds messages pulled and not yet acked for a while."""
    stop = threading.Event()
    sleeper = redis_lib.Redis.from_url(f.cfg.redis_url)

    def loop() -> None:
        while not stop.is_set():
            sleeper.execute_command("DEBUG", "SLEEP", step_s)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def test_listener_sigkilled_after_pull_before_ack(faulty, photos, prefix):
    """The listener dies holding notifications it pulled and has not acked: Pub/Sub redelivers them after the
    ack deadline to the next listener, and enqueueing again is idempotent."""
    f = faulty
    f.up()
    expected: dict[str, str] = {}
    for attempt in range(3):
        assert wait_for(lambda: _listener_ready(f), timeout=60), "the listener did not start"
        log_start = f.listener.log_path.stat().st_size
        with _slow_redis(f):
            batch = _upload_batch(f, photos, f"{prefix}{attempt}-", 3)
            time.sleep(2.5)
            f.listener.kill(signal.SIGKILL)
        expected |= batch
        acked = f.listener.log_path.read_bytes()[log_start:].decode(errors="replace").count("enqueued ")
        # Leased messages are invisible to another pull: what this pull sees had not been pulled (it nacks them).
        visible = len(pubsub.peek(f.cfg, f.cfg.subscription, limit=10, timeout_s=1))
        f.listener.start()
        held = len(batch) - acked - visible
        if held > 0:
            break
    else:
        pytest.fail("the listener never held a pulled, unacked notification when it was killed")
    assert f.settle(expected) == {}
    print(f"FAULT listener SIGKILL: {held} of {len(batch)} pulled and unacked at the kill ({acked} acked), redelivered")


def test_pubsub_emulator_restart(faulty, photos, prefix):
    """The emulator keeps nothing: messages not yet delivered die with it. Topics and subscriptions come back
    with it (after_start); the listener reconnects by itself; reconcile finds what was lost."""
    f = faulty
    f.up()
    emulator = f.service("pubsub-emulator")
    probe = f"probe-{prefix.strip('/')}"
    pubsub.subscription_ensure(f.cfg, probe, f.cfg.topic)
    # Paused, the live listener has no pull in flight (a SIGSTOP could freeze one whose answer already holds the
    # messages): notifications now wait in the emulator only, and the listener must reconnect after its restart.
    redis = ledger.connection(f.cfg)
    listener_module.desired_set(redis, "paused")
    try:
        paused = lambda: json.loads(redis.get(listener_module.HEARTBEAT_KEY) or "{}").get("state") == "paused"  # noqa: E731
        assert wait_for(paused, timeout=20), "the listener did not pause"
        lost = _upload_batch(f, photos, f"{prefix}lost-", 2)
        names = {ledger.parse_key(k)[1] for k in lost}
        published = lambda: names <= {m.attributes.get("objectId") for m in pubsub.peek(f.cfg, probe, limit=20)}  # noqa: E731
        assert wait_for(published, timeout=20), "fake-gcs-server did not publish the notifications"
        emulator.stop()
        emulator.start()
    finally:
        listener_module.desired_set(redis, "running")
    after = _upload_batch(f, photos, f"{prefix}after-", 3)
    assert f.settle(after, timeout=60) == {}  # the listener reconnected by itself
    reached = [k for k, v in contract.found(f.cfg, lost).items() if v]
    report = reconcile_run(cfg=f.cfg, dry_run=False, prefix=prefix)
    assert not reached and report.missing == len(lost) and report.enqueued == report.missing
    assert f.settle(lost | after) == {}
    print(
        f"FAULT pubsub restart: {len(lost) - len(reached)} of {len(lost)} notifications lost; reconcile enqueued them"
    )


def test_redis_flushed_mid_run_then_reconcile(faulty, photos, prefix):
    """Queued jobs, the ledger and its epoch are lost; a redelivered notification of a done object must not
    double it; reconcile enqueues exactly what has neither row nor failure and restores the ledger."""
    f = faulty
    f.up()
    redis = ledger.connection(f.cfg)
    done = _upload_batch(f, photos, f"{prefix}done-", 3)
    assert f.settle(done) == {}
    f.worker.kill(signal.SIGSTOP)
    try:
        pending = _upload_batch(f, photos, f"{prefix}pending-", 5)
        job_keys = [f"rq:job:{jobs.job_id(*ledger.parse_key(k))}" for k in pending]
        assert wait_for(lambda: redis.exists(*job_keys) == len(pending), timeout=30), "the listener did not enqueue"
        redis.flushall()
    finally:
        f.worker.kill(signal.SIGCONT)
    bucket, name, generation = ledger.parse_key(next(iter(done)))
    attributes = {"eventType": "OBJECT_FINALIZE", "bucketId": bucket, "objectId": name}
    pubsub.publish(f.cfg, f.cfg.topic, b"{}", **attributes, objectGeneration=str(generation))
    report = reconcile_run(cfg=f.cfg, dry_run=False, prefix=prefix)
    assert (report.missing, report.enqueued) == (len(pending), len(pending))
    assert f.settle(done | pending) == {}
    assert all(ledger.outcome_get(redis, k) == "row" for k in done)
    print(f"FAULT redis flush: {len(pending)} queued jobs lost; reconcile: {report.summary()}")


def test_bigquery_down_for_a_while(faulty, photos, prefix):
    """Inserts fail (connection refused) for longer than one attempt's write timeout: RQ retries with backoff."""
    f = faulty
    f.up()
    bq = f.service("bqemulator")
    log_start = f.worker.log_path.stat().st_size
    bq.stop()
    try:
        expected = _upload_batch(f, photos, prefix, 3)
        time.sleep(bigquery.WRITE_TIMEOUT_S + 4)  # the first attempts give up and are scheduled for a retry
    finally:
        bq.start()
    assert f.settle(expected, timeout=120) == {}
    log = f.worker.log_path.read_bytes()[log_start:].decode(errors="replace")
    retried = sum(1 for line in log.splitlines() if "retries left" in line)
    assert retried
    print(f"FAULT bigquery down: {retried} attempt(s) failed and were retried with backoff")


def test_unparseable_notifications_are_dead_lettered_and_listed(faulty):
    f = faulty
    f.up()
    marker = f"garbage-{time.time_ns()}"
    pubsub.publish(f.cfg, f.cfg.topic, b"\x00\xffnot json", objectId=marker)  # no eventType
    pubsub.publish(f.cfg, f.cfg.topic, b"{}", eventType="OBJECT_FINALIZE", objectId=marker, bucketId="b")
    listed = wait_for(
        lambda: len([m for m in dead_letter_list(f.cfg, 100) if m["object"] == marker]) == 2, timeout=30, every=0.5
    )
    found = sorted(m["error"] for m in dead_letter_list(f.cfg, 100) if m["object"] == marker)
    assert listed, found
    assert found == ["missing attribute objectGeneration", "no eventType attribute: not a Cloud Storage notification"]
    assert f.listener.alive() and f.worker.alive()


def test_redis_down_for_a_few_seconds(faulty, photos, prefix):
    """Redis restarts (its append-only file keeps queue and ledger): notifications that arrive meanwhile must not
    be burnt through Pub/Sub's 5 delivery attempts into the dead-letter topic."""
    f = faulty
    f.up()
    assert wait_for(lambda: _listener_ready(f), timeout=60), "the listener did not start"
    redis_service = f.service("redis")
    pids = (f.listener.proc.pid, f.worker.proc.pid)
    redis_service.stop()
    try:
        expected = _upload_batch(f, photos, prefix, 3)
        time.sleep(4)
    finally:
        redis_service.start()
    assert f.settle(expected, timeout=120) == {}
    names = {ledger.parse_key(k)[1] for k in expected}
    assert not [m for m in dead_letter_list(f.cfg, 100) if m["object"] in names]
    assert pids == (f.listener.proc.pid, f.worker.proc.pid), "a process died of the Redis restart"
    print("FAULT redis restart: listener and worker rode it out; nothing dead-lettered")
