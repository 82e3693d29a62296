"""The audit log: every operator action recorded with who, when, what and how it ended; reads are not recorded.

Actions run through Django's test client against a bucket of the test's own (see tests/test_views_ops.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.urls import reverse

from classifier import listener
from classifier.config import Config
from controlplane.infra import views as infra_views
from controlplane.models import AuditLog
from tests.helpers import insert_failure, png
from tests.test_views import desired_restored  # noqa: F401 (fixture)
from tests.test_views_ops import own_bucket  # noqa: F401 (fixture)


def _log() -> list[tuple[str, str, str]]:
    return list(AuditLog.objects.order_by("id").values_list("actor", "action", "outcome"))


def test_every_operator_action_is_recorded_however_it_ends(
    staff: Client,
    own_bucket: Config,  # noqa: F811
    desired_restored: Any,  # noqa: F811
) -> None:
    cfg = own_bucket
    staff.get(reverse("infra:plan"))
    staff.get(reverse("infra:destroy"))  # the confirmation page shows a plan: a read too
    staff.post(reverse("listener_control", kwargs={"action": "stop"}))
    staff.post(reverse("listener_control", kwargs={"action": "start"}))
    assert listener.desired_get(desired_restored) == "running"

    good = SimpleUploadedFile("a.png", png(), content_type="image/png")
    staff.post(reverse("upload"), {"folder": "audit", "images": [good]})
    staff.post(reverse("upload"), {"folder": "in\x07box", "images": [SimpleUploadedFile("b.png", png())]})
    with override_settings(SIGHTLINE=dataclasses.replace(cfg, max_image_bytes=10)):
        staff.post(reverse("upload"), {"folder": "audit", "images": [SimpleUploadedFile("big.png", png())]})

    failed = insert_failure(cfg, "audit/broken.txt")
    ref = {"bucket": cfg.bucket, "name": "audit/broken.txt", "generation": failed["generation"]}
    staff.post(reverse("failure_requeue"), {**ref, "name": "audit/never.png"})
    staff.post(reverse("failure_dismiss"), ref)
    staff.post(reverse("failure_requeue_all"), {"expected": 999})
    staff.post(reverse("reconcile"))

    assert _log() == [
        ("op-staff", "listener_stop", "succeeded"),
        ("op-staff", "listener_start", "succeeded"),
        ("op-staff", "upload", "succeeded"),
        ("op-staff", "upload", "refused"),
        ("op-staff", "upload", "refused"),
        ("op-staff", "requeue", "refused"),
        ("op-staff", "dismiss", "succeeded"),
        ("op-staff", "requeue_all", "refused"),
        ("op-staff", "reconcile", "succeeded"),
    ]
    entries = list(AuditLog.objects.order_by("id"))
    assert entries[2].summary.startswith(f"upload gs://{cfg.bucket}/audit/a.png#")
    assert "control characters" in entries[3].error and "over MAX_IMAGE_BYTES=10" in entries[4].error
    assert "no open failure" in entries[5].error and "there are" in entries[7].error
    assert "enqueued 1" in entries[8].summary  # the uploaded a.png, which nobody is notified about here
    assert all(e.user is not None and e.source == "127.0.0.1" for e in entries)


def test_a_failed_login_is_recorded_with_the_name_tried_and_where_from(client: Client, db: Any) -> None:
    response = client.post(reverse("login"), {"username": "root", "password": "guess-1"}, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200  # the form again
    client.post(reverse("admin:login"), {"username": "admin", "password": "guess-2"})
    entries = list(AuditLog.objects.order_by("id"))
    assert [(e.actor, e.action, e.outcome) for e in entries] == [
        ("root", "login_failed", "failed"),
        ("admin", "login_failed", "failed"),
    ]
    assert entries[0].source == "203.0.113.9" and "guess" not in entries[0].summary + entries[0].error


def test_the_audit_page_filters_and_pages_and_anyone_logged_in_may_read_it(viewer: Client, db: Any) -> None:
    for i in range(infra_views.AUDIT_PAGE_SIZE + 5):
        AuditLog.objects.create(actor=f"user-{i % 2}", action="upload", outcome="succeeded", summary=f"upload {i}")
    AuditLog.objects.create(actor="ops", action="destroy", outcome="refused", summary="destroy <b>x</b>")

    first = viewer.get(reverse("infra:audit"))
    assert first.status_code == 200 and len(first.context["entries"]) == infra_views.AUDIT_PAGE_SIZE
    body = first.content.decode()
    content = body.split("<h1>Audit log</h1>", 1)[1]
    assert "destroy &lt;b&gt;x&lt;/b&gt;" in content and "page 1 of 2" in content and 'method="post"' not in content
    assert '<label>Action <select name="action">' in body and "<th>Who</th>" in body
    second = viewer.get(reverse("infra:audit"), {"page": 2})
    assert len(second.context["entries"]) == 6
    destroys = viewer.get(reverse("infra:audit"), {"action": "destroy"}).context["entries"]
    assert [e.summary for e in destroys] == ["destroy <b>x</b>"]
    mine = viewer.get(reverse("infra:audit"), {"actor": "USER-1", "outcome": "succeeded"})
    assert len(mine.context["entries"]) == 27 and {e.actor for e in mine.context["entries"]} == {"user-1"}
    assert viewer.get(reverse("infra:audit"), {"page": "999"}).context["page"].number == 2  # past the end: the last
