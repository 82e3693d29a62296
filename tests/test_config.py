"""A bad setting stops manage.py and the rq worker with one line naming it (parsing itself: tests/fast/test_config.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE = {"GCP_PROJECT": "my-project-1", "BUCKET_NAME": "my-images"}
ROOT = Path(__file__).resolve().parent.parent


def test_manage_py_stops_with_one_line_naming_the_variable():
    env = {k: v for k, v in os.environ.items() if k != "BUCKET_NAME"}
    out = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2
    assert out.stderr.startswith("configuration error: BUCKET_NAME is required")
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"BUCKET_NAME": None}, "BUCKET_NAME is required"),
        ({"MODEL": "resnet50", "MODELS_DIR": "/nonexistent"}, "fetchweights"),
    ],
)
def test_rq_worker_stops_with_one_line_naming_the_problem(cfg, stack, change, expected):
    env = {k: v for k, v in os.environ.items() if change.get(k, "") is not None}
    env.update({k: v for k, v in change.items() if v is not None})
    rq = str(Path(sys.executable).with_name("rq"))
    argv = [rq, "worker", "-w", "classifier.worker.ClassifierWorker", "--url", cfg.redis_url, "--burst", "x-none"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("sightline worker cannot start:")
    assert expected in out.stderr and "Traceback" not in out.stderr


def test_bin_test_gcp_without_a_project_stops_at_once_with_one_line():
    """`bin/test --gcp` runs the suite on a real project; without one it must not start anything."""
    env = {k: v for k, v in os.environ.items() if k != "SIGHTLINE_TEST_PROJECT"}
    argv = [sys.executable, "-m", "pytest", "--gcp", "-q", "-p", "no:cacheprovider", "tests/test_pipeline.py"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    lines = [line for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    assert out.returncode != 0
    assert len(lines) == 1 and "SIGHTLINE_TEST_PROJECT" in lines[0] and "Application Default Credentials" in lines[0]
