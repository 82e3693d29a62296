"""Which model a process will run, decided from settings and the files present: no torch needed.

Kept apart from `model` so the web app and the listener (which only enqueue and display) never import torch.
"""

from __future__ import annotations

from pathlib import Path

from classifier.config import Config

RESNET50_FILES = ("resnet50-19c8e357.pth", "resnet50-0676ba61.pth")
RESNET50_URL = "https://download.pytorch.org/models/resnet50-19c8e357.pth"


def find_resnet_weights(models_dir: Path) -> Path | None:
    for name in RESNET50_FILES:
        path = models_dir / name
        if path.is_file():
            return path
    return None


def resolve_model_name(cfg: Config) -> str:
    if cfg.model != "auto":
        return cfg.model
    return "resnet50" if find_resnet_weights(cfg.models_dir) else "efficientnet_lite0"
