"""The local stack names what is missing and how to install it; the listener stops cleanly on SIGTERM."""

from __future__ import annotations

import signal

import pytest

from devstack import localstack
from tests.conftest import wait_for


def test_missing_pubsub_emulator_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("CLOUDSDK_ROOT_DIR", str(tmp_path))
    with pytest.raises(localstack.StackError, match="gcloud components install pubsub-emulator"):
        localstack.pubsub_emulator_script()


def test_missing_gcloud_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(localstack.StackError, match=r"gcloud is not on PATH.*pubsub-emulator"):
        localstack.pubsub_emulator_script()


def test_a_busy_port_is_named(cfg, stack, tmp_path):
    taken = localstack.Service("x", ["true"], cfg.pubsub_emulator_host, {}, tmp_path / "x.log")
    with pytest.raises(localstack.StackError, match="already in use"):
        taken.start()


def test_listener_stops_cleanly_on_sigterm(cfg, stack):
    service = localstack.listener_service(cfg, localstack.app_env(cfg))
    service.name = "listener-sigterm"
    service.log_path = cfg.data_dir / "logs" / "listener-sigterm.log"
    service.start()
    assert wait_for(lambda: "listening on" in service.log_path.read_text(), timeout=60)
    assert service.proc is not None
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(timeout=40) == 0
    text = service.log_path.read_text()
    assert "received SIGTERM" in text and "stopped after" in text and "Traceback" not in text
