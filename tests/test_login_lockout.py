"""Guessing passwords: both login pages lock out after LOGIN_FAILURE_LIMIT failures, and staff see the lockouts."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

PASSWORD = "the-right-password-42"


@pytest.mark.parametrize("page", ["login", "admin:login"])
def test_wrong_passwords_lock_the_login_even_for_the_right_one(db: Any, django_user_model: Any, page: str) -> None:
    """Before: any number of guesses, each answered at once; the right one logged in after them."""
    django_user_model.objects.create_user("op-guessed", password=PASSWORD, is_staff=True)
    client, url = Client(), reverse(page)
    answers = [
        client.post(url, {"username": "op-guessed", "password": f"guess-{i}"}).status_code
        for i in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert answers[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form again, with its error
    locked = client.post(url, {"username": "op-guessed", "password": PASSWORD})
    assert answers[-1] == locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # Another address guessing the same username is locked too: spreading guesses over addresses does not help.
    elsewhere = Client(REMOTE_ADDR="198.51.100.7").post(url, {"username": "op-guessed", "password": PASSWORD})
    assert elsewhere.status_code == 429


def test_staff_see_the_lockouts_and_can_lift_them(db: Any, django_user_model: Any, staff: Client) -> None:
    django_user_model.objects.create_user("op-locked", password=PASSWORD)
    for i in range(settings.AXES_FAILURE_LIMIT):
        Client(REMOTE_ADDR="203.0.113.9").post(reverse("login"), {"username": "op-locked", "password": f"x{i}"})
    page = staff.get(reverse("admin:axes_accessattempt_changelist"), {"locked_out": "yes"})
    assert page.status_code == 200
    assert "op-locked" in page.content.decode() and "203.0.113.9" in page.content.decode()
    assert staff.get(reverse("admin:index")).content.decode().count("Access attempts") == 1


def test_a_proxy_chain_counts_the_address_the_proxies_saw(rf: Any) -> None:
    from controlplane.security import ClientAddress

    request = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.2, 35.191.0.1", REMOTE_ADDR="10.0.0.1")
    assert ClientAddress(0)(request) == "10.0.0.1"
    assert ClientAddress(2)(request) == "198.51.100.2"  # the client wrote 6.6.6.6 itself
    assert ClientAddress(5)(request) == "10.0.0.1"
