"""Shared fixtures: one private local stack per test run, real photos, and the app's processes."""

from __future__ import annotations

import io
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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """After pytest-django put database tests first: tests marked runs_last go to the very end."""
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)


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
def stack(cfg: Config) -> Iterator[localstack.Stack]:
    try:
        running = localstack.start(cfg)
    except localstack.StackError as exc:
        pytest.skip(f"local stack unavailable: {exc}")
    ledger.trust(ledger.connection(cfg))  # a fresh data dir: the empty ledger matches the empty tables
    yield running
    running.stop()


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
