"""Loaded with `-p tests.localenv`, before Django reads its settings: a private local stack for this run.

Free loopback ports and a fresh data folder, so a test run never touches a developer's `bin/run` stack.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid

import pytest

from devstack.localstack import free_endpoints

_data_dir = tempfile.mkdtemp(prefix="sightline-test-")
os.environ.update(
    {
        "SIGHTLINE_LOCAL": "1",
        "GCP_PROJECT": "sightline-test",
        "BUCKET_NAME": "sightline-test-images",
        "SIGHTLINE_DATA_DIR": _data_dir,
        **free_endpoints(),
        "MODEL": "efficientnet_lite0",
        "DJANGO_SECRET_KEY": "tests-only-not-secret",
    }
)
for name in (
    "TORCH_THREADS",
    "WORKERS",
    "INFERENCE_BACKEND",
    "WORKER_FORK",
    "BQ_TABLE",
    "BQ_FAILURES_TABLE",
    "PUBSUB_TOPIC",
    "PUBSUB_SUBSCRIPTION",
    "MODELS_DIR",
    "RQ_QUEUE",
):
    os.environ.pop(name, None)

# `--gcp` (bin/test --gcp): the same suite against a real project instead. Read here, before Django reads its settings,
# like everything above. Without the project or credentials the run stops at once with one line.
GCP = "--gcp" in sys.argv


def _gcp_env() -> dict[str, str]:
    project = os.environ.get("SIGHTLINE_TEST_PROJECT", "").strip()
    try:
        import google.auth

        google.auth.default()
        has_adc = True
    except Exception:
        has_adc = False
    if not project or not has_adc:
        raise pytest.UsageError(
            "--gcp needs SIGHTLINE_TEST_PROJECT=<a project id> and Application Default Credentials "
            "(gcloud auth application-default login, or GOOGLE_APPLICATION_CREDENTIALS)"
        )
    uid = uuid.uuid4().hex[:8]  # every resource of this run is its own; the stack fixture destroys them afterwards
    dataset = f"{project}.sightline_test_{uid}"
    return {
        "SIGHTLINE_LOCAL": "0",
        "GCP_PROJECT": project,
        "BUCKET_NAME": f"sightline-test-{uid}",
        "PUBSUB_TOPIC": f"sightline-test-{uid}",
        "BQ_TABLE": f"{dataset}.image_classification",
        "BQ_FAILURES_TABLE": f"{dataset}.classification_failures",
    }


if GCP:
    for name in ("STORAGE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST"):
        os.environ.pop(name, None)
    os.environ.update(_gcp_env())
