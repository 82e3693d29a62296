"""Helpers of the infrastructure tests: resources of their own on the session stack, and the commands' output."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any
from unittest import mock

import pytest
from django.core.management import call_command

from classifier.config import Config


def isolated(cfg: Config) -> Config:
    """The same project and emulators, resource names of its own: what a test creates and deletes is its own."""
    uid = uuid.uuid4().hex[:8]
    return dataclasses.replace(
        cfg,
        bucket=f"infra-{uid}",
        topic=f"infra-{uid}",
        subscription=f"infra-{uid}-workers",
        dead_letter_topic=f"infra-{uid}-dead-letter",
        dead_letter_subscription=f"infra-{uid}-dead-letter-inspect",
        table_id=f"{cfg.project}.infra_{uid}.image_classification",
        failures_table_id=f"{cfg.project}.infra_{uid}.classification_failures",
    )


def use_isolated(cfg: Config, settings: Any) -> Config:
    mine = isolated(cfg)
    settings.SIGHTLINE = mine  # the commands and views read the settings
    return mine


def run(command: str, *args: str) -> tuple[int, str]:
    """A management command's exit code and its stdout and stderr together."""
    out = mock.MagicMock()
    lines: list[str] = []
    out.write.side_effect = lines.append
    with pytest.raises(SystemExit) as exit_info:
        call_command(command, *args, stdout=out, stderr=out)
    return int(exit_info.value.code or 0), "\n".join(lines)
