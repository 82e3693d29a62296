"""The one classifier of this process, loaded once and reused by every job."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import NamedTuple

import torch

from classifier import ledger, model
from classifier.cloud import gcs
from classifier.config import Config, get_config

log = logging.getLogger(__name__)

_classifier: model.Classifier | None = None


def load_and_warm(cfg: Config) -> model.Classifier:
    """Load the weights and run one forward pass, so the first job pays no first-call costs.

    With forking workers (WORKER_FORK=1) the parent warms up single-threaded: a forked child hangs on its
    first forward pass if the parent ran a multi-threaded one (the OpenMP pool does not survive fork), so
    each child raises the thread count itself. In-process workers use their threads from the start.
    """
    global _classifier
    if _classifier is None:
        torch.set_num_threads(1 if cfg.worker_fork else cfg.torch_threads)
        _classifier = model.load(cfg)
        _classifier.predict([torch.zeros(3, model.CROP, model.CROP)])
    return _classifier


def get_classifier() -> model.Classifier:
    """For a job: the classifier loaded at worker start (or now, on first use in-process)."""
    cfg = get_config()
    clf = load_and_warm(cfg)
    if torch.get_num_threads() != cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    return clf


# Objects a batching worker fetched and classified together before running their jobs one by one; only the
# current batch is kept. A job takes its entry or, when there is none, does the work itself.
_prefetched: dict[str, tuple[gcs.Blob, list[model.Prediction] | None]] = {}


class Target(NamedTuple):
    """One job's object: the notified generation, and its event time when the notification had one."""

    bucket: str
    name: str
    generation: int
    event_time: str | None = None


def prefetch(objects: Sequence[Target]) -> int:
    """Download and preprocess each object, then run one forward pass for all of them.

    Anything that goes wrong for one object is left for its own job to meet and record (per-image failure
    isolation): this only caches what succeeded. Returns how many predictions are ready.
    """
    cfg = get_config()
    clf = get_classifier()
    redis = ledger.connection(cfg)
    _prefetched.clear()
    blobs: dict[str, gcs.Blob] = {}
    tensors: dict[str, torch.Tensor] = {}
    for bucket, name, generation, event_time in objects:
        key = ledger.object_key(bucket, name, generation)
        try:
            if ledger.outcome_get(redis, key) is not None:
                continue
            blobs[key] = gcs.download(cfg, bucket=bucket, name=name, generation=generation, created=event_time is None)
            tensors[key] = clf.preprocess(blobs[key].data)
        except Exception as exc:  # its job meets the same error and records it
            log.debug("prefetch of %s left to its job: %s", key, exc)
    predictions: list[list[model.Prediction]] | list[None] = [None] * len(tensors)
    if tensors:
        try:
            predictions = clf.predict(list(tensors.values()))
        except Exception:
            log.exception("batched inference failed; each job classifies its own image")
    by_key = dict(zip(tensors, predictions, strict=True))
    for key, blob in blobs.items():
        _prefetched[key] = (blob, by_key.get(key))
    return sum(1 for _, p in _prefetched.values() if p is not None)


def prefetched(key: str) -> tuple[gcs.Blob | None, list[model.Prediction] | None]:
    """The batch's blob and predictions for this key; None where it has none."""
    return _prefetched.get(key, (None, None))


def forget(key: str) -> None:
    _prefetched.pop(key, None)


def download(cfg: Config, *, bucket: str, name: str, generation: int, created: bool = False) -> gcs.Blob:
    """The prefetched blob of this generation, or a fresh download (`created`: with its creation time)."""
    entry = _prefetched.get(ledger.object_key(bucket, name, generation))
    if entry is not None:
        return entry[0]
    return gcs.download(cfg, bucket=bucket, name=name, generation=generation, created=created)


def classify(clf: model.Classifier, blob: gcs.Blob) -> list[model.Prediction]:
    """The batch's predictions for this very blob, or one forward pass of its own."""
    for key, (cached, predictions) in list(_prefetched.items()):
        if cached is blob and predictions is not None:
            del _prefetched[key]
            return predictions
    return clf.classify(blob.data)
