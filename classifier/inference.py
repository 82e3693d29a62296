"""The one classifier of this process, loaded once and reused by every job."""

from __future__ import annotations

import torch

from classifier import model
from classifier.config import Config, get_config

_classifier: model.Classifier | None = None  # heavy state loaded once per process, never a batch's


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
