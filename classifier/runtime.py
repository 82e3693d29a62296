"""The one classifier of this process, loaded once and reused by every job."""

from __future__ import annotations

import logging

import torch

from classifier import model
from classifier.config import Config, get_config

log = logging.getLogger(__name__)

_classifier: model.Classifier | None = None


def load_and_warm(cfg: Config) -> model.Classifier:
    """Load the weights and run one forward pass single-threaded.

    A forked child hangs on its first forward pass if the parent ran a multi-threaded one (the OpenMP
    pool does not survive fork), so the parent warms up with one thread and each child raises it.
    """
    global _classifier
    if _classifier is None:
        torch.set_num_threads(1)
        _classifier = model.load(cfg)
        _classifier.predict([torch.zeros(3, model.CROP, model.CROP)])
    return _classifier


def get_classifier() -> model.Classifier:
    """For a job: the classifier loaded before the fork, or loaded now when run in-process (tests)."""
    cfg = get_config()
    clf = load_and_warm(cfg)
    if torch.get_num_threads() != cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    return clf
