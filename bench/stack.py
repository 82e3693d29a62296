"""What the benches that run the pipeline on a private local stack share: its environment, and a `main` that sets it
up before Django reads its settings, runs the bench and prints its report."""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Names a developer's environment may set that would point a bench at someone else's resources.
FOREIGN = ("BQ_TABLE", "BQ_FAILURES_TABLE", "PUBSUB_TOPIC", "PUBSUB_SUBSCRIPTION", "RQ_QUEUE")


def private_env(data_dir: Path, *, project: str) -> None:
    """Before any settings are read: free loopback ports and a fresh data folder, as the tests do."""
    from devstack.localstack import free_endpoints  # imported late: the caller may not have set its environment yet

    os.environ.update(
        {
            "SIGHTLINE_LOCAL": "1",
            "GCP_PROJECT": project,
            "BUCKET_NAME": f"{project}-images",
            "SIGHTLINE_DATA_DIR": str(data_dir),
            **free_endpoints(),
        }
    )
    for name in FOREIGN:
        os.environ.pop(name, None)


def bench_main(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], dict[str, Any]],
    argv: list[str] | None,
    *,
    workdir_prefix: str,
) -> int:
    """Parse, set up a private stack's environment and Django, run, print the report as JSON. Exit status 0 when
    the report says the contract held (each object ended as exactly one row), 1 otherwise."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    private_env(Path(tempfile.mkdtemp(prefix=workdir_prefix)), project="sightline-load")
    os.environ["DJANGO_SETTINGS_MODULE"] = "controlplane.settings"
    os.environ.setdefault("MODEL", "efficientnet_lite0")
    import django

    django.setup()
    report = run(args)
    print(json.dumps(report, indent=2, default=str))
    return 0 if report["contract_held"] else 1
