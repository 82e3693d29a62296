"""Reads for the reprocess page: which models a worker can hold, which have a live worker, the dry run, a run."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.conf import settings
from rq import Worker

from classifier import ledger, reprocess
from classifier.config import Config
from classifier.queue import live_model, queue, queue_name
from classifier.weights import RESNET50_FILES, find_resnet_weights

# The models a worker can load (classifier/model.py), in the order the page offers them.
MODELS = (("efficientnet_lite0", "EfficientNet-Lite0"), ("resnet50", "ResNet50"))


def _cfg() -> Config:
    return settings.SIGHTLINE


def _weights_note(cfg: Config, model: str) -> str:
    """Empty when a worker could load `model` from this machine's files; else what to place where."""
    if model == "resnet50" and find_resnet_weights(cfg.models_dir) is None:
        return (
            f"not in this machine's {cfg.models_dir}: a worker holding it needs {' or '.join(RESNET50_FILES)} in its "
            "MODELS_DIR (manage.py fetchweights)"
        )
    return ""


def live_workers(cfg: Config, model: str) -> int:
    """Workers registered on the model's queue: rq drops a worker that stops beating within its TTL (25 s)."""
    q = queue(cfg, model)
    return sum(1 for w in Worker.all(queue=q) if w.last_heartbeat is not None)


def model_choices() -> list[dict[str, Any]]:
    cfg = _cfg()
    live = live_model(cfg)
    return [
        {
            "id": model,
            "label": label,
            "live": model == live,
            "queue": queue_name(cfg, model),
            "workers": live_workers(cfg, model),
            "weights_note": _weights_note(cfg, model),
            "start_worker": worker_command(cfg, model),
        }
        for model, label in MODELS
    ]


def worker_command(cfg: Config, model: str) -> str:
    """How to start a worker holding `model` on its queue (README: Speed and scaling out)."""
    return (
        f"MODEL={model} .venv/bin/rq worker -w classifier.worker.ClassifierWorker -S rq.serializers.JSONSerializer "
        f"--with-scheduler {queue_name(cfg, model)}"
    )


def reprocess_count(*, selection: reprocess.Selection) -> int:
    return reprocess.count(_cfg(), selection)


def reprocess_get(*, op_id: str | None = None) -> dict[str, Any] | None:
    op = reprocess.get(ledger.connection(_cfg()), op_id)
    if op is not None:
        op["finished_count"] = op["done"] + op["failed"] + op["lost"]
        op["percent"] = round(100 * op["finished_count"] / op["total"]) if op["total"] else 100
    return op


def selection_fields(selection: reprocess.Selection) -> dict[str, Any]:
    return dataclasses.asdict(selection)
