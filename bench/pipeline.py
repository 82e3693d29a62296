"""The pipeline end to end on the local stack: uploads in, rows out, timed from the outside."""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Worker

from classifier import ledger
from classifier.cloud import bigquery, gcs
from classifier.config import Config
from devstack import localstack

log = logging.getLogger("bench")


@dataclass
class Timeline:
    """When each upload returned (client clock) and when its row was written (the row's processed_at)."""

    uploaded: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (started, returned)
    generations: dict[str, int] = field(default_factory=dict)
    rows: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def latencies(self) -> list[float]:
        return [self.rows[n] - self.uploaded[n][1] for n in self.uploaded if n in self.rows]


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM: the most resident memory the process ever had."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its reaped children (forked work horses count too)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(stack: localstack.Stack, services: list[localstack.Service]) -> dict[str, float]:
    out = {s.name: cpu_s(s.proc.pid) for s in [*stack.services, *services] if s.proc is not None}
    out["bench (uploads, polling)"] = cpu_s(os.getpid())
    return out


def cpu_per_image_ms(before: dict[str, float], after: dict[str, float], images: int) -> dict[str, float]:
    """Where the CPU went during a run, in milliseconds per image: the workers' share against everything else."""
    out = {name: round((after[name] - before.get(name, 0.0)) / images * 1000, 1) for name in after}
    out["total"] = round(sum(out.values()), 1)
    return out


EMULATORS = ("redis", "pubsub-emulator", "fake-gcs-server", "bqemulator")


def profile_snapshot(cfg: Config) -> dict[str, dict[str, float]]:
    """Each worker's running per-stage totals (classifier/stages.py: CPU seconds, Redis counts)."""
    from classifier import stages

    redis = ledger.connection(cfg)
    out = {}
    for key in redis.scan_iter(match=stages.PREFIX + "*"):
        name = ledger.text(key)[len(stages.PREFIX) :]
        out[name] = {ledger.text(k): float(v) for k, v in redis.hgetall(key).items()}
    return out


def stage_profile(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], cpu: dict[str, float], images: int
) -> dict[str, Any]:
    """Per image, all workers together: CPU ms by stage, what no stage covers, Redis commands and round trips;
    the emulators' CPU on its own line. `cpu` is the run's CPU ms per image by process (cpu_per_image_ms)."""
    from classifier import stages

    totals: dict[str, float] = {}
    for worker, figures in after.items():
        for name, value in figures.items():
            totals[name] = totals.get(name, 0.0) + value - before.get(worker, {}).get(name, 0.0)
    workers_ms = sum(v for k, v in cpu.items() if k.startswith("worker"))
    ms = {name: round(totals.get(name, 0.0) * 1000 / images, 2) for name in stages.ORDER}
    ms["rq loop, first dequeue, liveness thread, logging (process CPU less the stages)"] = round(
        workers_ms - sum(ms.values()), 2
    )
    return {
        "worker_cpu_ms_per_image": ms,
        "workers_total_ms_per_image": round(workers_ms, 2),
        "redis_commands_per_image": round(totals.get("redis commands", 0.0) / images, 1),
        "redis_round_trips_per_image": round(totals.get("redis round trips", 0.0) / images, 1),
        "emulators_ms_per_image": round(sum(cpu.get(name, 0.0) for name in EMULATORS), 1),
        "listener_ms_per_image": cpu.get("listener"),
    }


def content_type(name: str) -> str:
    return "image/jpeg" if name.endswith(".jpg") else "image/png"


@contextmanager
def apps(cfg: Config, overrides: dict[str, str], workers: int) -> Iterator[list[localstack.Service]]:
    """The listener and the workers as real processes, as `bin/run` starts them."""
    env = {**localstack.app_env(cfg), **overrides}
    services = [localstack.listener_service(cfg, env)]
    services += [localstack.worker_service(cfg, env, name=f"worker-{i + 1}") for i in range(workers)]
    for service in services:
        service.log_path.unlink(missing_ok=True)
        service.start()
    try:
        _wait_ready(cfg, services, workers)
        yield services
    finally:
        for service in services:
            service.stop()


def _wait_ready(cfg: Config, services: list[localstack.Service], workers: int, timeout_s: float = 300) -> None:
    redis = Redis.from_url(cfg.redis_url)
    deadline = time.monotonic() + timeout_s
    restarted: set[str] = set()
    while True:
        for dead in [s for s in services if not s.alive()]:
            code = dead.proc.returncode if dead.proc else None
            if dead.name in restarted:
                raise SystemExit(f"{dead.name} exited at start (status {code}):\n{dead.log_tail(30)}")
            # Seen here: a child forked from this process (gRPC clients live) dying before its exec, with gRPC's
            # "epoll_wait error: Bad file descriptor" in its log. Once is the fork, not the worker: start it again.
            log.warning("%s exited at start (status %s), starting it again:\n%s", dead.name, code, dead.log_tail(5))
            restarted.add(dead.name)
            dead.start()
        live = [w for w in Worker.all(connection=redis) if w.state != "suspended"]
        if len(live) >= workers:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"workers not ready after {timeout_s:.0f}s:\n{services[-1].log_tail(30)}")
        time.sleep(0.5)


def poll_rows(cfg: Config, timeline: Timeline, prefix: str) -> None:
    pattern = bigquery.param("pattern", "STRING", prefix + "%")
    for row in bigquery.query(
        cfg, f"SELECT image_name, processed_at FROM `{cfg.table_id}` WHERE image_name LIKE @pattern", [pattern]
    ):
        timeline.rows.setdefault(row["image_name"], row["processed_at"].timestamp())
    for row in bigquery.query(
        cfg, f"SELECT image_name, reason_code FROM `{cfg.failures_table_id}` WHERE image_name LIKE @pattern", [pattern]
    ):
        timeline.failures.setdefault(row["image_name"], row["reason_code"])


def wait_rows(
    cfg: Config,
    timeline: Timeline,
    prefix: str,
    services: list[localstack.Service],
    *,
    timeout_s: float,
    every_s: float = 0.2,
) -> bool:
    """Waits on the workers' Redis ledger (an outcome per object: cheap to read), then reads BigQuery once.

    Polling BigQuery instead would make the emulator run a query or two every second on the cores being measured;
    the latencies do not depend on when we look, since each row carries its own processed_at."""
    redis = ledger.connection(cfg)
    keys = [ledger.object_key(cfg.bucket, name, gen) for name, gen in timeline.generations.items()]
    deadline = time.monotonic() + timeout_s
    settled = False
    while not settled:
        settled = all(v is not None for v in ledger.outcome_get_many(redis, keys).values())
        if not settled and time.monotonic() > deadline:
            break
        if not settled:
            _alive_or_exit(services)
            time.sleep(every_s)
    for _ in range(10):  # the ledger is written after the row: a short wait at most
        poll_rows(cfg, timeline, prefix)
        done = len(timeline.rows) + len(timeline.failures)
        if done >= len(timeline.uploaded):
            break
        time.sleep(0.5)
    if done < len(timeline.uploaded):
        log.error("%d of %d rows (ledger settled: %s)", done, len(timeline.uploaded), settled)
        return False
    return True


def _alive_or_exit(services: list[localstack.Service]) -> None:
    """A listener or worker that died mid-run ends the benchmark with its log, instead of a long wait for rows."""
    for service in services:
        if not service.alive():
            raise SystemExit(f"{service.name} died during the run:\n{service.log_tail(30)}")


def upload(cfg: Config, timeline: Timeline, name: str, data: bytes) -> None:
    started = time.time()
    timeline.generations[name] = gcs.upload(cfg, name=name, data=data, content_type=content_type(name))
    timeline.uploaded[name] = (started, time.time())


def _named(prefix: str, photos: dict[str, bytes], count: int) -> Iterator[tuple[str, bytes]]:
    items = list(photos.items())
    for i in range(count):
        photo, data = items[i % len(items)]
        yield f"{prefix}{i:05d}-{photo}", data


def upload_and_wait(
    cfg: Config,
    photos: dict[str, bytes],
    prefix: str,
    count: int,
    services: list[localstack.Service],
    *,
    timeout_s: float,
    rate_per_s: float | None = None,
) -> Timeline:
    """Upload `count` photos, back to back (a burst) or paced at `rate_per_s`, then wait for every row."""
    timeline = Timeline()
    start = time.monotonic()
    for i, (name, data) in enumerate(_named(prefix, photos, count)):
        if rate_per_s:
            time.sleep(max(0.0, start + i / rate_per_s - time.monotonic()))
        upload(cfg, timeline, name, data)
    wait_rows(cfg, timeline, prefix, services, timeout_s=timeout_s)
    return timeline


def summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p95": None, "max": None}
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 3),
        "max": round(ordered[-1], 3),
    }


def burst_report(timeline: Timeline) -> dict[str, Any]:
    first = min(started for started, _ in timeline.uploaded.values())
    uploads_done = max(returned for _, returned in timeline.uploaded.values())
    last = max(timeline.rows.values(), default=first)
    done = len(timeline.rows)
    # While the harness uploads, its client, fake-gcs-server and the notifications' publishing take ~11 CPU ms per
    # image from the same cores: the rate after the last upload returned shows the pipeline without them.
    drained = [t for t in timeline.rows.values() if t > uploads_done]
    return {
        "images": len(timeline.uploaded),
        "rows": done,
        "failures": dict(sorted(timeline.failures.items())),
        "upload_s": round(uploads_done - first, 2),
        "uploads_per_s": round(len(timeline.uploaded) / max(uploads_done - first, 1e-9), 2),
        "wall_s": round(last - first, 2),
        "images_per_s": round(done / max(last - first, 1e-9), 2),
        "after_uploads_images_per_s": round(len(drained) / (last - uploads_done), 2) if len(drained) > 1 else None,
        "latency_s": summary(timeline.latencies()),
        "row_times_s": sorted(round(t - first, 3) for t in timeline.rows.values()),
        "latencies_s": sorted(round(v, 3) for v in timeline.latencies()),
    }


def rss_report(stack: localstack.Stack, services: list[localstack.Service]) -> dict[str, float | None]:
    out = {s.name: peak_rss_mib(s.proc.pid) for s in [*stack.services, *services] if s.proc is not None}
    out["bench"] = peak_rss_mib(os.getpid())
    return out
