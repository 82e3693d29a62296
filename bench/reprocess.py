"""Reprocessing with a second model while live uploads continue: every live upload still gets its row, and each
reprocessed object gets exactly one row of the second model. Reports both rates and the load average. Runs on a
private local stack, like `python -m bench.load_burst`.

    .venv/bin/python -m bench.reprocess --images 200 [--live 100] [--live-rate 2] [--model resnet50]

The second model's worker holds ResNet50 (torchvision's architecture with a seeded random initialisation saved as the
weights file: no real ResNet50 weights can be fetched offline; the cost per image is the same) or EfficientNet-Lite0
when the live model is ResNet50. Exit status 0 when the contract held for every object, 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.load_burst import _content_type, _others, _outcomes, _wait
from bench.stack import bench_main

if TYPE_CHECKING:
    from classifier.config import Config
    from devstack.localstack import Service

log = logging.getLogger("bench.reprocess")


def _weights(folder: Path) -> Path:
    import torch
    from torchvision.models import resnet50

    torch.manual_seed(0)
    path = folder / "resnet50-19c8e357.pth"
    torch.save(resnet50().state_dict(), path)
    return folder


def _upload(cfg: Config, photos: list[tuple[str, bytes]], folder: str, n: int, every_s: float = 0.0) -> list[str]:
    from classifier import ledger
    from classifier.cloud import gcs

    keys = []
    for i in range(n):
        name, data = photos[i % len(photos)]
        object_name = f"{folder}{i:05d}-{name}"
        generation = gcs.upload(cfg, name=object_name, data=data, content_type=_content_type(name))
        keys.append(ledger.object_key(cfg.bucket, object_name, generation))
        if every_s:
            time.sleep(every_s)
    return keys


class LiveUploads(threading.Thread):
    """Uploads at a steady rate while the reprocess runs; records when it started and its keys."""

    def __init__(self, cfg: Config, photos: list[tuple[str, bytes]], n: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.cfg, self.photos, self.n, self.every_s = cfg, photos, n, 1.0 / rate
        self.keys: list[str] = []
        self.started = 0.0

    def run(self) -> None:
        self.started = time.monotonic()
        self.keys = _upload(self.cfg, self.photos, "live/", self.n, self.every_s)


def _second_worker(cfg: Config, model: str, models_dir: Path) -> Service:
    from devstack import localstack

    env = {**localstack.app_env(cfg), "MODELS_DIR": str(models_dir)}
    return localstack.worker_service(cfg, env, name=f"worker-{model}", model=model)


def _wait_worker(cfg: Config, service: Service, model: str, timeout_s: float = 600) -> None:
    from classifier.queue import queue
    from controlplane.reprocess.selectors import live_workers

    deadline = time.monotonic() + timeout_s
    while live_workers(cfg, model) < 1:
        if not service.alive():
            raise SystemExit(f"{service.name} exited at start:\n{service.log_tail(30)}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{service.name} not ready after {timeout_s:.0f}s:\n{service.log_tail(30)}")
        time.sleep(0.5)
    log.info("%s serves %s", service.name, queue(cfg, model).name)


def _reprocess(cfg: Config, model: str, images: int, timeout_s: float) -> dict[str, Any]:
    from classifier import ledger, reprocess

    now = datetime.now(UTC)
    sel = reprocess.Selection(
        model=model, bucket=cfg.bucket, since=now - timedelta(hours=1), until=now + timedelta(hours=1), prefix="seed/"
    )
    total = reprocess.count(cfg, sel)
    redis = ledger.connection(cfg)
    started = time.monotonic()
    op_id = reprocess.start(cfg, redis, sel, total=total, user="bench")
    deadline = started + timeout_s
    while True:
        op = reprocess.get(redis, op_id) or {}
        if op.get("state") not in ("running", "cancelling") or time.monotonic() > deadline:
            break
        time.sleep(1)
    elapsed = time.monotonic() - started
    return {
        "dry_run_count": total,
        "state": op.get("state"),
        "enqueued": op.get("enqueued"),
        "rows": op.get("done"),
        "failures": op.get("failed"),
        "lost": op.get("lost"),
        "seconds": round(elapsed, 1),
        "images_per_s": round((op.get("done") or 0) / elapsed, 2),
    }


def _latency(cfg: Config, keys: list[str], since: datetime) -> dict[str, float]:
    """Upload-to-row seconds of the live rows of `keys` (p50, p95, max): whether live uploads waited for the reprocess."""
    from classifier import ledger
    from classifier.cloud import bigquery

    sql = (
        f"SELECT TIMESTAMP_DIFF(processed_at, upload, MILLISECOND) / 1000 AS s FROM `{cfg.table_id}` "
        "WHERE processed_at >= @since AND bucket = @bucket AND image_name IN UNNEST(@names)"
    )
    names = [ledger.parse_key(k)[1] for k in keys]
    params = [
        bigquery.param("since", "TIMESTAMP", since),
        bigquery.param("bucket", "STRING", cfg.bucket),
        bigquery.array_param("names", "STRING", names),
    ]
    seconds = sorted(float(r["s"]) for r in bigquery.query(cfg, sql, params))
    if not seconds:
        return {}
    return {
        "p50": round(seconds[len(seconds) // 2], 2),
        "p95": round(seconds[min(len(seconds) - 1, int(len(seconds) * 0.95))], 2),
        "max": round(seconds[-1], 2),
    }


def _exactly_one_row(held: dict[str, list[str]]) -> dict[str, Any]:
    bad = {k: v for k, v in held.items() if v != ["row"]}
    return {"objects": len(held), "exactly_one_row": len(held) - len(bad), "not_one_row": dict(list(bad.items())[:10])}


def _measure(
    args: argparse.Namespace, cfg: Config, photos: list[tuple[str, bytes]], models_dir: Path
) -> dict[str, Any]:
    from bench.pipeline import apps
    from classifier import ledger

    report: dict[str, Any] = {}
    second = _second_worker(cfg, args.model, models_dir)
    with apps(cfg, {}, cfg.workers) as services:
        second.start()
        try:
            seed = _upload(cfg, photos, "seed/", args.images)
            _wait(cfg, seed, timeout_s=args.timeout)
            _wait_worker(cfg, second, args.model)
            report["load_before"] = os.getloadavg()
            live = LiveUploads(cfg, photos, args.live, args.live_rate)
            live_since = datetime.now(UTC) - timedelta(minutes=5)
            live.start()
            report["reprocess"] = _reprocess(cfg, args.model, args.images, args.timeout)
            report["load_at_reprocess_end"] = os.getloadavg()
            live.join()
            uploading_s = time.monotonic() - live.started
            _wait(cfg, live.keys, timeout_s=args.timeout)
            live_s = time.monotonic() - live.started
            time.sleep(3)  # a doubled row would land right after the first
            report["live"] = {
                "uploads": len(live.keys),
                "upload_rate_per_s": args.live_rate,
                "seconds_uploading": round(uploading_s, 1),
                "seconds_to_last_row": round(live_s, 1),
                "images_per_s": round(len(live.keys) / live_s, 2),
                "upload_to_row_s": _latency(cfg, live.keys, live_since),
                **_exactly_one_row(_outcomes(cfg, live.keys)),
            }
            report["seed_live_model"] = _exactly_one_row(_outcomes(cfg, seed))
            report["seed_second_model"] = _exactly_one_row(
                _outcomes(cfg, [ledger.model_key(k, args.model) for k in seed])
            )
            report["load_after"] = os.getloadavg()
            report["services"] = [s.name for s in [*services, second]]
        finally:
            second.stop()
    report["contract_held"] = all(
        not report[part]["not_one_row"] and report[part]["exactly_one_row"] == report[part]["objects"]
        for part in ("live", "seed_live_model", "seed_second_model")
    )
    return report


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench import photos as sample
    from classifier import ledger
    from classifier.config import get_config
    from classifier.weights import resolve_model_name
    from devstack import localstack

    cfg = get_config()
    if resolve_model_name(cfg) == args.model:
        raise SystemExit(f"--model {args.model} is the live model: choose the other one")
    others = _others()
    models_dir = _weights(Path(tempfile.mkdtemp(prefix="sightline-models-")))
    stack = localstack.start(cfg)
    ledger.trust(ledger.connection(cfg))
    photos = list(sample.load().items())
    report: dict[str, Any] = {
        "images": args.images,
        "live_model": resolve_model_name(cfg),
        "second_model": args.model,
        "workers": cfg.workers,
        "others_at_start": others,
    }
    try:
        report |= _measure(args, cfg, photos, models_dir)
    finally:
        stack.stop()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reprocess", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="objects to reprocess with the second model")
    parser.add_argument("--live", type=int, default=100, help="live uploads while the reprocess runs")
    parser.add_argument("--live-rate", type=float, default=1.0, help="live uploads per second")
    parser.add_argument("--model", default="resnet50", help="the second model")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for each phase")
    return bench_main(parser, run, argv, workdir_prefix="sightline-reprocess-")


if __name__ == "__main__":
    sys.exit(main())
