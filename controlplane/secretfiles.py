"""Secrets kept in the local data folder (the Django secret key, the local admin's password).

Each file is born private: created with mode 0600 in one system call, never written world-readable and chmod-ed
after (in between, any local user could read it). The data folder is 0700. Two processes starting at once (web,
listener, runlocal) agree on one value: the file appears complete or not at all.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Create `path` 0700; tighten an existing one we own (an older checkout made it 0755)."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o777 != PRIVATE_DIR:
        path.chmod(PRIVATE_DIR)
    return path


def _write_new(path: Path, text: str) -> None:
    """Write a temporary 0600 file, then link it into place: fails with FileExistsError if another process won."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def secret_read_or_create(path: Path, make: Callable[[], str]) -> str:
    """The secret kept at `path`, made by `make` and stored 0600 the first time."""
    private_dir(path.parent)
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            _write_new(path, make())
    return path.read_text().strip()
