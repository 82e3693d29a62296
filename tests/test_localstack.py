"""The local stack names what is missing and how to install it; the listener stops cleanly on SIGTERM; nothing
outlives a supervisor killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import localstack
from tests.helpers import wait_for


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


def _children_by_parent() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def _descendants(root: int) -> set[int]:
    children, found, todo = _children_by_parent(), set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _running(pid: int) -> bool:
    """A zombie has ended: only its parent (init, once the supervisor is gone) has still to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.e2e
def test_nothing_outlives_a_sigkilled_supervisor(tmp_path):
    """`kill -9` of `runlocal` takes the emulators, Redis, web, listener and worker with it, and frees their ports."""
    ports = {name: localstack.free_port() for name in ("gcs", "pubsub", "bigquery", "redis", "web")}
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_PATH", "DJANGO_SETTINGS_MODULE")}
    env.update(
        {
            "SIGHTLINE_DATA_DIR": str(tmp_path / "data"),
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{ports['gcs']}",
            "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{ports['pubsub']}",
            "BIGQUERY_EMULATOR_HOST": f"http://127.0.0.1:{ports['bigquery']}",
            "REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
            "SIGHTLINE_ADMIN_PASSWORD": "sigkill-test-pass",
        }
    )
    manage = Path(__file__).resolve().parent.parent / "manage.py"
    argv = [sys.executable, str(manage), "runlocal", "--workers", "1", "--addr", f"127.0.0.1:{ports['web']}"]
    out = tmp_path / "runlocal.log"
    with out.open("wb") as log_file:
        supervisor = subprocess.Popen(argv, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    pids: set[int] = set()
    try:
        worker_log = tmp_path / "data" / "logs" / "worker-1.log"
        up = wait_for(
            lambda: supervisor.poll() is None and worker_log.exists() and "Listening on" in worker_log.read_text(),
            timeout=240,
        )
        assert up, f"runlocal did not come up:\n{out.read_text()[-3000:]}"
        pids = _descendants(supervisor.pid)
        assert len(pids) >= 7, pids  # 3 emulators, Redis, web, listener, worker (and their own children)
        supervisor.kill()
        supervisor.wait()
        gone = wait_for(lambda: not any(_running(pid) for pid in pids), timeout=10, every=0.1)
        assert gone, f"still running 10 s after the supervisor's SIGKILL: {sorted(p for p in pids if _running(p))}"
        busy = [name for name, port in ports.items() if localstack.port_open("127.0.0.1", port)]
        assert not busy, f"ports still taken: {busy}"
    finally:
        supervisor.kill()
        for pid in pids:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
