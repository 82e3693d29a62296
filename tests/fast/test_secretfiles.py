"""Local secrets are born private: 0600 files in a 0700 folder, never written readable and chmod-ed after."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from controlplane.secretfiles import secret_read_or_create


@pytest.fixture
def open_umask():
    """umask 0: a file written the plain way would be 0666 until someone chmods it."""
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.fixture
def no_chmod_of_files(monkeypatch):
    """Fail on any chmod of a file: one that needed it was readable by others in between."""
    real_path_chmod, real_os_chmod = Path.chmod, os.chmod

    def path_chmod(self: Path, mode: int, **kwargs: object) -> None:
        assert not self.is_file(), f"{self} was chmod-ed after it was written"
        real_path_chmod(self, mode, **kwargs)

    def os_chmod(path: object, mode: int, **kwargs: object) -> None:
        assert not Path(str(path)).is_file(), f"{path} was chmod-ed after it was written"
        real_os_chmod(path, mode, **kwargs)

    monkeypatch.setattr(Path, "chmod", path_chmod)
    monkeypatch.setattr(os, "chmod", os_chmod)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_secret_is_created_0600_in_a_0700_folder(tmp_path, open_umask, no_chmod_of_files):
    path = tmp_path / "data" / "django-secret-key"
    assert secret_read_or_create(path, lambda: "s3cret") == "s3cret"
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert secret_read_or_create(path, lambda: "other") == "s3cret"  # kept
    assert sorted(p.name for p in path.parent.iterdir()) == ["django-secret-key"]  # no temporary file left


def test_an_existing_open_data_folder_is_tightened(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    secret_read_or_create(data / "admin-password", lambda: "pw")
    assert _mode(data) == 0o700


def test_processes_starting_at_once_agree_on_one_secret(tmp_path):
    path, seen = tmp_path / "data" / "admin-password", []
    barrier = threading.Barrier(8)

    def start(i: int) -> None:
        barrier.wait()
        seen.append(secret_read_or_create(path, lambda: f"secret-{i}"))

    threads = [threading.Thread(target=start, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seen)) == 1 and seen[0] == path.read_text()


def test_the_local_secret_key_is_born_private(tmp_path, monkeypatch, open_umask, no_chmod_of_files):
    import dataclasses

    from controlplane import settings

    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    monkeypatch.setattr(settings, "SIGHTLINE", dataclasses.replace(settings.SIGHTLINE, data_dir=tmp_path / "data"))
    key = settings._secret_key()
    assert len(key) > 50 and _mode(tmp_path / "data" / "django-secret-key") == 0o600


def test_the_local_admin_password_uses_it():
    """runlocal's admin password file (the command needs a database and a stack to run: read its source)."""
    text = (Path(__file__).resolve().parents[2] / "controlplane/management/commands/runlocal.py").read_text()
    assert "secret_read_or_create(" in text and ".write_text(" not in text
