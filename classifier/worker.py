"""The RQ worker class: `rq worker -w classifier.worker.ClassifierWorker ...`.

rq forks a work horse per job; the model is loaded (and warmed single-threaded) in the parent here,
before the first fork, so every job reuses it instead of paying the load again.
"""

from __future__ import annotations

import logging
from typing import Any

from rq import Worker
from rq.serializers import JSONSerializer

from classifier import runtime
from classifier.config import get_config

log = logging.getLogger(__name__)


def _log_like_rq() -> None:
    """rq configures only its own logger; give the classifier's lines the same timestamps in the worker log."""
    logger = logging.getLogger("classifier")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


class ClassifierWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["serializer"] = JSONSerializer  # rq's docs warn that pickle is not safe
        super().__init__(*args, **kwargs)
        _log_like_rq()
        cfg = get_config()
        clf = runtime.load_and_warm(cfg)
        self.log.info("classifier ready: %s on %s, %d threads per job", clf.name, clf.device, cfg.torch_threads)
