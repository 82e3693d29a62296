"""The dead letters on the failures page and the reconcile action, through Django's test client on the local stack.

Reconcile runs against a bucket of the test's own that nobody is notified about (settings.SIGHTLINE is pointed at it):
its objects are missing by construction, no listener races the test for them, and the counts are exact.
"""

from __future__ import annotations

import dataclasses
import html
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from rq.job import Job

from classifier import jobs, ledger
from classifier.cloud import gcs, pubsub
from classifier.config import Config
from controlplane import livecache, views
from tests.helpers import drop_jobs, insert_row, png

XSS = "<script>alert('dl')</script>"


@pytest.fixture(autouse=True)
def fresh_figures(stack: Any) -> None:
    """The failures page shares its Pub/Sub read across tabs for a few seconds: each test reads afresh."""
    livecache.forget_all()


@pytest.fixture
def own_bucket(cfg: Config, stack: Any, settings: Any) -> Iterator[Config]:
    """The app's config with a fresh, un-notified bucket; jobs this test enqueues are removed afterwards."""
    name = f"sightline-ops-{uuid.uuid4().hex[:8]}"
    gcs.bucket_create(cfg, name)
    own = dataclasses.replace(cfg, bucket=name)
    settings.SIGHTLINE = own
    yield own
    drop_jobs(cfg, [jobs.job_id(name, o.name, o.generation) for page in gcs.list_pages(own) for o in page])


def _upload(cfg: Config, name: str) -> tuple[str, int]:
    return name, gcs.upload(cfg, name=name, data=png(), content_type="image/png")


def _queued(cfg: Config, name: str, generation: int) -> bool:
    return Job.exists(jobs.job_id(cfg.bucket, name, generation), ledger.connection(cfg))


def _messages(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _dead_letter(cfg: Config, data: bytes, **attributes: str) -> str:
    marker = uuid.uuid4().hex
    pubsub.publish(cfg, cfg.dead_letter_topic, data, objectId=f"dl-{marker}", **attributes)
    return f"dl-{marker}"


# --- access ---------------------------------------------------------------------------------------------------------


def test_reconcile_needs_a_login(client: Client, db: Any) -> None:
    response = client.get(reverse("reconcile"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def _dead_letters_page(client: Client) -> str:
    """The dead letters as a browser gets them: the failures page, then its Pub/Sub read fetched on its own."""
    page = client.get(reverse("failures"))
    assert page.status_code == 200
    part = client.get(reverse("failures"), {"part": "dead-letters"})
    assert part.status_code == 200
    return page.content.decode() + part.content.decode()


def test_the_failures_page_never_waits_for_pubsub(
    viewer: Client, cfg: Config, stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pull is in its own request (shared by every tab); the page shows the shared copy when there is one."""
    marker = _dead_letter(cfg, b"{", sightline_error="not JSON")
    pulls = []
    real = views.dead_letter_list
    monkeypatch.setattr(views, "dead_letter_list", lambda **kw: pulls.append(1) or real(**kw))
    first = viewer.get(reverse("failures")).content.decode()
    assert pulls == [] and marker not in first
    fetch = f'hx-get="{reverse("failures")}?part=dead-letters" hx-trigger="load"'
    assert fetch in first and "reading Pub/Sub" in first
    part = viewer.get(reverse("failures"), {"part": "dead-letters"}).content.decode()
    assert pulls == [1] and marker in part and "<h1>" not in part  # the fragment alone
    again = viewer.get(reverse("failures")).content.decode()
    assert pulls == [1] and marker in again and fetch not in again  # fresh: shown inline, nothing to fetch
    assert "as of 0 s ago" in again or "as of 1 s ago" in again


def test_viewers_see_dead_letters_but_cannot_reconcile(viewer: Client, cfg: Config, stack: Any) -> None:
    marker = _dead_letter(cfg, b'{"half": ', sightline_error="not JSON", eventType="OBJECT_FINALIZE")
    text = _dead_letters_page(viewer)
    assert 'id="dead-letters"' in text and marker in text and "not JSON" in text
    assert html.escape('{"half": ') in text and "eventType" in text and "OBJECT_FINALIZE" in text
    assert reverse("reconcile") not in text and 'id="reconcile"' not in text
    assert 'id="health-reconcile"' not in viewer.get(reverse("health_partial")).content.decode()
    assert viewer.get(reverse("reconcile")).status_code == 403
    assert viewer.post(reverse("reconcile")).status_code == 403


def test_staff_see_the_reconcile_buttons(staff: Client, stack: Any) -> None:
    assert 'id="reconcile"' in staff.get(reverse("failures")).content.decode()
    assert 'id="health-reconcile"' in staff.get(reverse("health_partial")).content.decode()


def test_reconcile_post_needs_a_csrf_token(db: Any, django_user_model: Any, own_bucket: Config) -> None:
    name, generation = _upload(own_bucket, "a.png")
    user = django_user_model.objects.create_user("ops-csrf", password="x-csrf-pass-1", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(reverse("reconcile")).status_code == 403
    page = client.get(reverse("reconcile")).content.decode()
    assert page.count("csrfmiddlewaretoken") >= 2  # logout and the confirmation form
    assert not _queued(own_bucket, name, generation)


# --- escaping and read errors --------------------------------------------------------------------------------------


def test_dead_letter_text_is_escaped(viewer: Client, cfg: Config, stack: Any) -> None:
    marker = _dead_letter(cfg, f"data {XSS}".encode(), sightline_error=f"error {XSS}", note=XSS, items="x")
    text = _dead_letters_page(viewer)
    assert marker in text
    assert "<script>alert" not in text
    escaped = html.escape(XSS)
    row = text.split(marker, 1)[1].split("</tr>", 1)[0]
    assert "<code>items</code>=x" in row and "<code>note</code>=" + escaped in row
    assert f"error {escaped}" in text and f"data {escaped}" in text


def test_a_pubsub_error_is_a_message_not_a_500(viewer: Client, stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: Any) -> list[dict[str, Any]]:
        raise RuntimeError("emulator unreachable")

    monkeypatch.setattr(views, "dead_letter_list", broken)
    assert "Pub/Sub could not be read: RuntimeError: emulator unreachable" in _dead_letters_page(viewer)


# --- reconcile ---------------------------------------------------------------------------------------------------


def test_staff_get_shows_the_dry_run_and_enqueues_nothing(staff: Client, own_bucket: Config) -> None:
    missing = [_upload(own_bucket, f"m/{i}.png") for i in range(3)]
    done_name, done_generation = _upload(own_bucket, "m/done.png")
    insert_row(own_bucket, done_name, [("cat", 0.9)], generation=done_generation)

    page = staff.get(reverse("reconcile"))
    assert page.status_code == 200
    text = page.content.decode()
    assert 'data-listed="4" data-missing="3"' in text and 'id="reconcile-missing">3<' in text
    for name, generation in missing:
        assert ledger.object_key(own_bucket.bucket, name, generation) in text
    assert "Enqueue 3" in text
    assert not any(_queued(own_bucket, n, g) for n, g in missing)


def test_staff_get_with_since_counts_only_newer_objects(staff: Client, own_bucket: Config) -> None:
    _upload(own_bucket, "old.png")
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    text = staff.get(reverse("reconcile"), {"since": future}).content.decode()
    assert 'data-listed="1" data-missing="0"' in text and f'value="{future}"' in text
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert 'data-listed="1" data-missing="1"' in staff.get(reverse("reconcile"), {"since": past}).content.decode()


def test_reconcile_is_get_or_post_only(staff: Client, own_bucket: Config) -> None:
    assert staff.put(reverse("reconcile")).status_code == 405
    assert staff.delete(reverse("reconcile")).status_code == 405


def test_a_bad_since_is_refused_with_a_message(staff: Client, own_bucket: Config) -> None:
    response = staff.post(reverse("reconcile"), {"since": "yesterday"})
    assert response.status_code == 302 and response["Location"] == reverse("reconcile")
    assert any("Not a date and time" in m for m in _messages(response))


def test_staff_post_enqueues_the_missing_and_says_how_many(staff: Client, own_bucket: Config) -> None:
    missing = [_upload(own_bucket, f"p/{i}.png") for i in range(2)]
    done_name, done_generation = _upload(own_bucket, "p/done.png")
    insert_row(own_bucket, done_name, [("dog", 0.8)], generation=done_generation)
    response = staff.post(reverse("reconcile"), follow=True)
    assert response.redirect_chain == [(reverse("dashboard"), 302)]
    expected = (
        "Reconcile: listed 3 objects, 1 with a row or failure, 2 with neither; enqueued 2, 0 already queued or running."
    )
    assert f'<li class="success">{expected}</li>' in response.content.decode()
    assert all(_queued(own_bucket, n, g) for n, g in missing)  # kept 24 h even once a worker has run it
    # Queued now, or already taken by a session worker when one runs: either way a second run enqueues none twice.
    [message] = _messages(staff.post(reverse("reconcile")))
    assert "listed 3 objects" in message and "enqueued 0," in message
