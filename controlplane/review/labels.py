"""The 1000 ImageNet class names the models answer with, for the reviewer's choice of the right label.

Kept as a file beside this module (torchvision's `ResNet50_Weights.IMAGENET1K_V1.meta["categories"]`, in the models'
class order; EfficientNet-Lite0 uses the same order): the web app never imports torch, and the list never changes.
tests/test_review.py checks it against torchvision's.
"""

from __future__ import annotations

import functools
from pathlib import Path

LABELS_FILE = Path(__file__).with_name("imagenet_classes.txt")


@functools.cache
def imagenet_labels() -> tuple[str, ...]:
    labels = tuple(line for line in LABELS_FILE.read_text(encoding="utf-8").splitlines() if line)
    if len(labels) != 1000 or len(set(labels)) != 1000:
        raise RuntimeError(f"{LABELS_FILE} must hold 1000 distinct ImageNet class names, found {len(set(labels))}")
    return labels


@functools.cache
def _by_folded() -> dict[str, str]:
    return {label.casefold(): label for label in imagenet_labels()}


def canonical_label(text: str) -> str | None:
    """The class name `text` names (ignoring case and surrounding spaces), spelled as the models spell it; None
    when it names none of the 1000."""
    return _by_folded().get(" ".join(text.split()).casefold())
