"""The fast tier: pure logic, no emulator, no Redis, no database. `pytest tests/fast` runs it alone in seconds.

The session's local stack is a fixture that only starts when a test asks for it; here asking for it is an error,
so a slow test cannot slip into this folder unnoticed.
"""

from __future__ import annotations

import pytest


def _refused(request: pytest.FixtureRequest) -> None:
    pytest.fail(
        f"{request.fixturename}: the fast tier starts no emulator, Redis or app process; move the test up to tests/"
    )


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> None:
    _refused(request)


@pytest.fixture
def pipeline(request: pytest.FixtureRequest) -> None:
    _refused(request)


@pytest.fixture
def upload(request: pytest.FixtureRequest) -> None:
    _refused(request)
