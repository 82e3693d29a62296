"""Shared fixtures: one private local stack per test run, real photos, and the app's processes."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from PIL import Image

from classifier import ledger
from classifier.cloud import gcs
from classifier.config import Config
from devstack import localstack
from tests import stacks


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--gcp",
        action="store_true",
        help="run the end-to-end, plan/apply/destroy and delivery tests against SIGHTLINE_TEST_PROJECT",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """After pytest-django put database tests first: tests marked runs_last go to the very end. With --gcp only
    the suite that runs on both stacks, less what asserts the local stack's own answers."""
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)
    if not config.getoption("--gcp"):
        return
    for item in items:
        if not str(item.path).endswith(stacks.GCP_SUITE):
            item.add_marker(pytest.mark.skip(reason="runs on the local stack only"))
        elif item.get_closest_marker("local_only"):
            item.add_marker(pytest.mark.skip(reason="asserts what the local stack provides"))


def _logged_in(django_user_model: Any, username: str, **flags: Any) -> Any:
    from django.test import Client

    client = Client()
    client.force_login(django_user_model.objects.create_user(username, password=f"{username}-pass-1", **flags))
    return client


@pytest.fixture
def staff(db: Any, django_user_model: Any) -> Any:
    """A logged-in test client of a staff operator (may start, stop, requeue, apply, destroy)."""
    return _logged_in(django_user_model, "op-staff", is_staff=True)


@pytest.fixture
def viewer(db: Any, django_user_model: Any) -> Any:
    """A logged-in test client of a viewer (may only look)."""
    return _logged_in(django_user_model, "op-viewer")


@pytest.fixture(scope="session")
def cfg() -> Config:
    return settings.SIGHTLINE


@pytest.fixture(scope="session")
def stack(cfg: Config, request: pytest.FixtureRequest) -> Iterator[localstack.Stack]:
    """The one stack every test runs on: the local emulators, or the real project of `bin/test --gcp`."""
    provision = stacks.real_project if request.config.getoption("--gcp") else stacks.local
    try:
        with provision(cfg) as running:
            ledger.trust(ledger.connection(cfg))  # a fresh data dir: the empty ledger matches the empty tables
            yield running
    except localstack.StackError as exc:
        pytest.skip(f"stack unavailable: {exc}")


@pytest.fixture(scope="session")
def pipeline(cfg: Config, stack: localstack.Stack) -> Iterator[dict[str, localstack.Service]]:
    """The listener and WORKERS workers as real processes, as `bin/run` starts them."""
    env = localstack.app_env(cfg)
    services = {"listener": localstack.listener_service(cfg, env), "worker": localstack.worker_service(cfg, env)}
    for i in range(2, cfg.workers + 1):
        services[f"worker-{i}"] = localstack.worker_service(cfg, env, name=f"worker-{i}")
    for service in services.values():
        service.start()
    yield services
    for service in services.values():
        service.stop()


def _encode(array: Any, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    """Real photos shipped in scikit-image, encoded as an uploader would send them."""
    from skimage import data

    return {
        "chelsea.png": _encode(data.chelsea(), "PNG"),
        "coffee.png": _encode(data.coffee(), "PNG"),
        "rocket.jpg": _encode(data.rocket(), "JPEG"),
    }


@pytest.fixture
def prefix() -> str:
    """A unique folder per test, so tests sharing the stack never see each other's objects."""
    return f"t-{uuid.uuid4().hex[:10]}/"


@pytest.fixture
def upload(cfg: Config, stack: localstack.Stack) -> Callable[..., int]:
    def _upload(name: str, data: bytes, content_type: str | None = None) -> int:
        return gcs.upload(cfg, name=name, data=data, content_type=content_type)

    return _upload


@pytest.fixture(scope="session")
def gcloud(
    cfg: Config, stack: localstack.Stack, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Callable[..., str]:
    """The real `gcloud` CLI, pointed at the local stack as ../shared/STACK.md says (with --gcp: as configured, at
    the real project); skips where it is not installed."""
    import shutil
    import subprocess

    exe = shutil.which("gcloud")
    if exe is None:
        pytest.skip("gcloud is not on PATH (apt-get install google-cloud-cli)")
    home = tmp_path_factory.mktemp("gcloud")
    token = home / "token"
    token.write_text("local-stack-takes-any-token\n")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CLOUDSDK_CONFIG": str(home / "config"),
        "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(token),
        "CLOUDSDK_CORE_PROJECT": cfg.project,
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "BOTO_CONFIG": "/dev/null",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE": f"{cfg.storage_emulator_host}/storage/v1/",
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB": f"http://{cfg.pubsub_emulator_host}/",
    }

    if request.config.getoption("--gcp"):
        env = {**os.environ, "CLOUDSDK_CORE_PROJECT": cfg.project}

    def run(*args: str) -> str:
        done = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"gcloud {' '.join(args)}: {done.stderr}"
        return done.stdout

    return run
