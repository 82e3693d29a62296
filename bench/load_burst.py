"""Delivery under load: upload a burst of images (plus duplicate notifications) and check, object by object, that
every one ends as exactly one row: nothing lost, nothing doubled. Reports the time it took and each process's peak
memory. Runs on a private local stack, like `python -m bench`.

    .venv/bin/python -m bench.load_burst --images 500 [--duplicates 50] [--workers N]

Exit status 0 when the contract held for every object, 1 otherwise. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from bench.stack import bench_main

if TYPE_CHECKING:
    from classifier.config import Config
    from devstack.localstack import Service, Stack

log = logging.getLogger("bench.load_burst")
CHUNK = 500  # keys per BigQuery query while polling


def _outcomes(cfg: Any, keys: list[str]) -> dict[str, list[str]]:
    from classifier import outcomes

    held: dict[str, list[str]] = {}
    for i in range(0, len(keys), CHUNK):
        held |= outcomes.find(cfg, keys[i : i + CHUNK])
    return {k: sorted(held.get(k, [])) for k in keys}


def _others() -> list[str]:
    """What else was using the CPU when the run started (top 8 by CPU, excluding this process)."""
    out = subprocess.run(["ps", "-eo", "pid,pcpu,rss,comm", "--sort=-pcpu"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines()[1:9] if str(os.getpid()) not in line.split()[:1]]


def _warm_up(cfg: Config, photos: list[tuple[str, bytes]]) -> None:
    from classifier import ledger
    from classifier.cloud import gcs

    warm = [gcs.upload(cfg, name=f"warm/{n}", data=d) for n, d in photos[:2]]
    warm_keys = [ledger.object_key(cfg.bucket, f"warm/{n}", g) for (n, _), g in zip(photos, warm, strict=False)]
    _wait(cfg, warm_keys, timeout_s=120)


def _upload_burst(cfg: Config, photos: list[tuple[str, bytes]], images: int) -> list[str]:
    from classifier import ledger
    from classifier.cloud import gcs

    keys: list[str] = []
    for i in range(images):
        name, data = photos[i % len(photos)]
        object_name = f"burst/{i:05d}-{name}"
        generation = gcs.upload(cfg, name=object_name, data=data, content_type=_content_type(name))
        keys.append(ledger.object_key(cfg.bucket, object_name, generation))
    return keys


def _redeliver(cfg: Config, keys: list[str], duplicates: int) -> None:
    """At-least-once delivery: Pub/Sub may redeliver; here we force it, for random objects of the burst."""
    from classifier import ledger
    from classifier.cloud import pubsub

    for key in random.Random(0).sample(keys, min(duplicates, len(keys))):
        bucket, name, generation = ledger.parse_key(key)
        pubsub.publish(
            cfg,
            cfg.topic,
            b"{}",
            eventType="OBJECT_FINALIZE",
            bucketId=bucket,
            objectId=name,
            objectGeneration=str(generation),
        )


def _peak_rss(stack: Stack, services: list[Service]) -> dict[str, float | None]:
    from bench.pipeline import peak_rss_mib

    peaks = {s.name: peak_rss_mib(s.proc.pid) for s in [*stack.services, *services] if s.proc}
    peaks["load_burst (uploads, polling)"] = peak_rss_mib(os.getpid())
    return peaks


def _reconcile_dry_run(cfg: Config) -> dict[str, Any]:
    from controlplane.reconcile import reconcile_run

    check = reconcile_run(cfg=cfg, dry_run=True, page_size=100)
    return {
        "listed": check.listed,
        "pages": check.pages,
        "bigquery_queries": check.queries,
        "missing": check.missing,
        "seconds": round(check.elapsed_s, 2),
    }


def _afterwards(cfg: Config, stack: Stack, services: list[Service], workers: int) -> dict[str, Any]:
    peaks = _peak_rss(stack, services)
    listener_log = services[0].log_path.read_text(errors="replace")
    return {
        "peak_rss_mib": peaks,
        "workers": workers,
        "listener_duplicates_skipped": listener_log.count("duplicate notification"),
        "reconcile_dry_run": _reconcile_dry_run(cfg),
        "load_after": os.getloadavg()[:2],
    }


def _burst(args: argparse.Namespace, cfg: Config, photos: list[tuple[str, bytes]], report: dict[str, Any]) -> list[str]:
    """Upload the burst, add the duplicates, wait for every outcome; the timings go into `report`."""
    started = time.monotonic()
    keys = _upload_burst(cfg, photos, args.images)
    report["upload_s"] = round(time.monotonic() - started, 1)
    _redeliver(cfg, keys, args.duplicates)
    _wait(cfg, keys, timeout_s=args.timeout)
    report["all_settled_s"] = round(time.monotonic() - started, 1)
    report["images_per_s"] = round(args.images / report["all_settled_s"], 2)
    return keys


def _verdict(held: dict[str, list[str]]) -> dict[str, Any]:
    lost = [k for k, v in held.items() if not v]
    doubled = {k: v for k, v in held.items() if len(v) > 1}
    failures = {k: v for k, v in held.items() if len(v) == 1 and v[0] != "row"}
    rows = sum(1 for v in held.values() if v == ["row"])
    contract_held = not lost and not doubled and not failures
    return {"rows": rows, "lost": lost, "doubled": doubled, "failures": failures, "contract_held": contract_held}


def _measure(
    args: argparse.Namespace, cfg: Config, stack: Stack, photos: list[tuple[str, bytes]], report: dict[str, Any]
) -> dict[str, list[str]]:
    from bench.pipeline import apps

    overrides = {"WORKERS": str(args.workers)} if args.workers else {}
    workers = args.workers or cfg.workers
    with apps(cfg, overrides, workers) as services:
        _warm_up(cfg, photos)
        report["load_before"] = os.getloadavg()[:2]
        sampler = RedisSampler(cfg)
        sampler.start()
        keys = _burst(args, cfg, photos, report)
        time.sleep(3)  # a doubled row would land right after the first
        held = _outcomes(cfg, keys)
        report["redis"] = sampler.report()
        report |= _afterwards(cfg, stack, services, workers)
    return held


def run(args: argparse.Namespace) -> dict[str, Any]:
    # Imported before the stack starts, though used later: a broken import fails at once, and their memory counts
    # in this process's peak RSS, which is measured before the reconcile check runs.
    from bench import photos as sample
    from bench import pipeline  # noqa: F401
    from classifier import ledger
    from classifier.config import get_config
    from controlplane import reconcile  # noqa: F401
    from devstack import localstack

    cfg = get_config()
    others = _others()
    stack = localstack.start(cfg)
    ledger.trust(ledger.connection(cfg))
    photos = list(sample.load().items())
    report: dict[str, Any] = {"images": args.images, "duplicates": args.duplicates, "others_at_start": others}
    try:
        held = _measure(args, cfg, stack, photos, report)
    finally:
        stack.stop()
    return report | _verdict(held)


class RedisSampler(threading.Thread):
    """Redis' used memory and the queue's length every half second: the peaks a burst reaches."""

    def __init__(self, cfg: Config) -> None:
        super().__init__(daemon=True)
        from classifier import ledger
        from classifier.queue import queue

        self.redis, self.q = ledger.connection(cfg), queue(cfg)
        self.idle = int(self.redis.info("memory")["used_memory"])
        self.peak, self.deepest = self.idle, 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            used = int(self.redis.info("memory")["used_memory"])
            waiting = self.redis.llen(self.q.key) + self.redis.llen(self.q.intermediate_queue_key)
            self.peak, self.deepest = max(self.peak, used), max(self.deepest, waiting)

    def report(self) -> dict[str, Any]:
        self.stop.set()
        after = int(self.redis.info("memory")["used_memory"])
        mb = 1024 * 1024
        return {
            "idle_mib": round(self.idle / mb, 1),
            "peak_above_idle_mib": round((self.peak - self.idle) / mb, 1),
            "after_above_idle_mib": round((after - self.idle) / mb, 1),
            "deepest_queue": self.deepest,
            "keys_after": self.redis.dbsize(),
        }


def _content_type(name: str) -> str:
    return "image/jpeg" if name.endswith(".jpg") else "image/png"


def _wait(cfg: Any, keys: list[str], *, timeout_s: float) -> dict[str, list[str]]:
    deadline = time.monotonic() + timeout_s
    while True:
        held = _outcomes(cfg, keys)
        missing = sum(1 for v in held.values() if not v)
        if not missing or time.monotonic() > deadline:
            return held
        log.info("%d of %d settled", len(keys) - missing, len(keys))
        time.sleep(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load_burst", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--duplicates", type=int, default=50, help="extra notifications for objects of the burst")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: WORKERS)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the last outcome")
    return bench_main(parser, run, argv, workdir_prefix="sightline-load-")


if __name__ == "__main__":
    sys.exit(main())
