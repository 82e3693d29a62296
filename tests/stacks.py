"""The two stacks the suite runs on, behind the one `stack` fixture: the local emulators (default) or a real project
(`bin/test --gcp`), as the Google client libraries' system tests run against a project of the tester's.

Both yield a devstack Stack (Redis at least) after the pipeline's resources exist, and stop it afterwards; on a real
project the resources are the run's own (unique names, tests.localenv) and are destroyed at the end, data and all.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from classifier.config import Config
from controlplane.infra import apply as runner
from controlplane.infra import spec as s
from controlplane.infra.plan import build_destroy_plan, build_plan
from devstack import localstack

log = logging.getLogger(__name__)

# The tests that run on both stacks; the rest exercise what only the local stack has (emulator restarts, browsers)
# or run at the client boundary anyway.
GCP_SUITE = (
    "tests/test_pipeline.py",
    "tests/test_infra_plan_apply.py",
    "tests/test_infra_destroy.py",
    "tests/test_delivery.py",
)


@contextlib.contextmanager
def local(cfg: Config) -> Iterator[localstack.Stack]:
    running = localstack.start(cfg)  # the emulators create the pipeline's resources as they start
    try:
        yield running
    finally:
        running.stop()


@contextlib.contextmanager
def real_project(cfg: Config) -> Iterator[localstack.Stack]:
    """Redis here (RQ and the ledger run beside the app anywhere), everything else in the project."""
    running = localstack.start_redis(cfg)
    spec = s.stack_spec(cfg=cfg)
    try:
        failed = [st for st in runner.run_changes(spec, build_plan(spec).pending) if st.status != runner.OK]
        if failed:
            raise localstack.StackError(f"could not create {failed[0].change.key}: {failed[0].message}")
        yield running
    finally:
        steps = runner.run_changes(spec, build_destroy_plan(spec).pending, delete_data=True)
        for step in steps:
            if step.status != runner.OK:
                log.error("left behind in %s: %s", cfg.project, step.line)
        running.stop()
