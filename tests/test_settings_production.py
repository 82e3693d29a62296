"""Production settings (SIGHTLINE_LOCAL=0): what start-up refuses, what `check --deploy` finds, what error pages hide."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import RequestFactory
from django.views.debug import technical_500_response

ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz"
REDIS_PASSWORD = "hunter2-redis-password"
METRICS_TOKEN = "metrics-token-0123456789abcdef"


def _manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.endswith("_EMULATOR_HOST") and not k.startswith("DJANGO_")}
    base.update(
        SIGHTLINE_LOCAL="0",
        SIGHTLINE_DATA_DIR=str(tmp_path),
        DJANGO_SECRET_KEY=GOOD_KEY,
        DJANGO_ALLOWED_HOSTS="sightline.example.com",
    )
    base.update(env)
    argv = [sys.executable, str(ROOT / "manage.py"), *args]
    return subprocess.run(argv, env=base, capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DJANGO_DEBUG": "1"}, "DJANGO_DEBUG"),
        ({"DJANGO_ALLOWED_HOSTS": "*"}, "DJANGO_ALLOWED_HOSTS"),
        ({"DJANGO_ALLOWED_HOSTS": "sightline.example.com,*"}, "DJANGO_ALLOWED_HOSTS"),
        ({"DJANGO_SECRET_KEY": "short-but-set"}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_SECRET_KEY": "a" * 60}, "DJANGO_SECRET_KEY"),
        ({"DJANGO_CSRF_TRUSTED_ORIGINS": "http://sightline.example.com"}, "DJANGO_CSRF_TRUSTED_ORIGINS"),
    ],
)
def test_production_start_up_refuses_developer_settings(tmp_path: Path, env: dict[str, str], variable: str) -> None:
    """Before: each of these started, and DEBUG showed settings and code to anyone who caused an error."""
    out = _manage(tmp_path, "check", **env)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"configuration error: {variable}") and "Traceback" not in out.stderr


def test_production_settings_pass_djangos_deploy_check(tmp_path: Path) -> None:
    out = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING")
    assert out.returncode == 0, out.stderr


def test_https_settings_for_a_load_balancer() -> None:
    from controlplane import settings as production

    assert production.SECURE_PROXY_SSL_HEADER is None  # the test run is local
    source = (ROOT / "controlplane" / "settings.py").read_text()
    for name in ("SECURE_PROXY_SSL_HEADER", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "CSRF_COOKIE_SECURE"):
        assert f"{name} = " in source


def test_the_debug_page_hides_the_redis_url_and_the_metrics_token(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: SIGHTLINE (its Redis URL with the password, the metrics token), RQ_QUEUES and REDIS_URL were shown."""
    redis_url = f"redis://:{REDIS_PASSWORD}@10.0.0.5:6379/0"
    cfg = dataclasses.replace(settings.SIGHTLINE, redis_url=redis_url, metrics_token=METRICS_TOKEN)
    settings.SIGHTLINE = cfg
    settings.RQ_QUEUES = {"classify": {"URL": redis_url}}
    settings.DEBUG = True
    request = RequestFactory().get("/boom", REDIS_URL=redis_url, METRICS_TOKEN=METRICS_TOKEN)
    try:
        raise RuntimeError(f"failed while using {cfg!r}")
    except RuntimeError:
        page = technical_500_response(request, *sys.exc_info()).content.decode()
    assert "RuntimeError" in page and "SIGHTLINE" in page
    assert REDIS_PASSWORD not in page and METRICS_TOKEN not in page
