"""Stands for what an intruder who can write to Redis would name in a job: importing this module leaves a mark."""

from __future__ import annotations

import os
from pathlib import Path

Path(os.environ["SIGHTLINE_FORGED_MARKER"]).write_text("imported")


def run(**kwargs: object) -> None:
    Path(os.environ["SIGHTLINE_FORGED_MARKER"]).write_text("ran")
