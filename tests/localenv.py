"""Loaded with `-p tests.localenv`, before Django reads its settings: a private local stack for this run.

Free loopback ports and a fresh data folder, so a test run never touches a developer's `bin/run` stack.
"""

from __future__ import annotations

import os
import tempfile

from devstack.localstack import free_port

_data_dir = tempfile.mkdtemp(prefix="sightline-test-")
os.environ.update(
    {
        "SIGHTLINE_LOCAL": "1",
        "GCP_PROJECT": "sightline-test",
        "BUCKET_NAME": "sightline-test-images",
        "SIGHTLINE_DATA_DIR": _data_dir,
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{free_port()}",
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}",
        "BIGQUERY_EMULATOR_HOST": f"http://127.0.0.1:{free_port()}",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
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
