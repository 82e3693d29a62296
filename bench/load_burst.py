"""Delivery under load: upload a burst of images (plus duplicate notifications) and check, object by object, that
every one ends as exactly one row: nothing lost, nothing doubled. Reports the time it took and each process's peak
memory. Runs on a private local stack, like `python -m bench`.

    .venv/bin/python -m bench.load_burst --images 500 [--duplicates 50] [--workers N]

Exit status 0 when the contract held for every object, 1 otherwise. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.load_burst")
CHUNK = 500  # keys per BigQuery query while polling


def _private_env(workdir: Path) -> None:
    from devstack.localstack import free_port

    os.environ.update(
        {
            "SIGHTLINE_LOCAL": "1",
            "GCP_PROJECT": "sightline-load",
            "BUCKET_NAME": "sightline-load-images",
            "SIGHTLINE_DATA_DIR": str(workdir),
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{free_port()}",
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}",
            "BIGQUERY_EMULATOR_HOST": f"http://127.0.0.1:{free_port()}",
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        }
    )
    for name in ("BQ_TABLE", "BQ_FAILURES_TABLE", "PUBSUB_TOPIC", "PUBSUB_SUBSCRIPTION", "RQ_QUEUE"):
        os.environ.pop(name, None)
    os.environ.setdefault("MODEL", "efficientnet_lite0")


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


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench import photos as sample
    from bench.pipeline import apps, peak_rss_mib
    from classifier import ledger
    from classifier.cloud import gcs, pubsub
    from classifier.config import get_config
    from controlplane.reconcile import reconcile_run
    from devstack import localstack

    cfg = get_config()
    others = _others()
    stack = localstack.start(cfg)
    ledger.trust(ledger.connection(cfg))
    photos = list(sample.load().items())
    report: dict[str, Any] = {"images": args.images, "duplicates": args.duplicates, "others_at_start": others}
    overrides = {"WORKERS": str(args.workers)} if args.workers else {}
    workers = args.workers or cfg.workers
    try:
        with apps(cfg, overrides, workers) as services:
            warm = [gcs.upload(cfg, name=f"warm/{n}", data=d) for n, d in photos[:2]]
            warm_keys = [ledger.object_key(cfg.bucket, f"warm/{n}", g) for (n, _), g in zip(photos, warm, strict=False)]
            _wait(cfg, warm_keys, timeout_s=120)
            report["load_before"] = os.getloadavg()[:2]

            started = time.monotonic()
            keys: list[str] = []
            for i in range(args.images):
                name, data = photos[i % len(photos)]
                object_name = f"burst/{i:05d}-{name}"
                generation = gcs.upload(cfg, name=object_name, data=data, content_type=_content_type(name))
                keys.append(ledger.object_key(cfg.bucket, object_name, generation))
            report["upload_s"] = round(time.monotonic() - started, 1)
            # At-least-once delivery: Pub/Sub may redeliver; here we force it, for random objects of the burst.
            for key in random.Random(0).sample(keys, min(args.duplicates, len(keys))):
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
            held = _wait(cfg, keys, timeout_s=args.timeout)
            report["all_settled_s"] = round(time.monotonic() - started, 1)
            report["images_per_s"] = round(args.images / report["all_settled_s"], 2)
            time.sleep(3)  # a doubled row would land right after the first
            held = _outcomes(cfg, keys)
            report["peak_rss_mib"] = {s.name: peak_rss_mib(s.proc.pid) for s in [*stack.services, *services] if s.proc}
            report["peak_rss_mib"]["load_burst (uploads, polling)"] = peak_rss_mib(os.getpid())
            report["workers"] = workers
            listener_log = services[0].log_path.read_text(errors="replace")
            report["listener_duplicates_skipped"] = listener_log.count("duplicate notification")
            check = reconcile_run(cfg=cfg, dry_run=True, page_size=100)
            report["reconcile_dry_run"] = {
                "listed": check.listed,
                "pages": check.pages,
                "bigquery_queries": check.queries,
                "missing": check.missing,
                "seconds": round(check.elapsed_s, 2),
            }
            report["load_after"] = os.getloadavg()[:2]
    finally:
        stack.stop()
    lost = [k for k, v in held.items() if not v]
    doubled = {k: v for k, v in held.items() if len(v) > 1}
    failures = {k: v for k, v in held.items() if len(v) == 1 and v[0] != "row"}
    report["rows"] = sum(1 for v in held.values() if v == ["row"])
    report["lost"], report["doubled"], report["failures"] = lost, doubled, failures
    report["contract_held"] = not lost and not doubled and not failures
    return report


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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    _private_env(Path(tempfile.mkdtemp(prefix="sightline-load-")))
    import django

    django.setup()
    report = run(args)
    print(json.dumps(report, indent=2, default=str))
    return 0 if report["contract_held"] else 1


if __name__ == "__main__":
    sys.exit(main())
