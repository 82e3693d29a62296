"""The infrastructure pages: who may see and do what, and the plan/apply/destroy round trip through HTTP."""

from __future__ import annotations

import pytest
from django.urls import reverse

from classifier.cloud import gcs, pubsub
from controlplane.infra import jobs
from controlplane.infra import plan as p
from controlplane.infra import spec as s
from controlplane.models import AuditLog
from tests.infra_support import use_isolated

ACTIONS = ["infra:apply", "infra:destroy", "admin:controlplane_auditlog_teardown"]


@pytest.fixture
def icfg(cfg, stack, settings):
    return use_isolated(cfg, settings)


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_user("ops", password="pw-ops-123456", is_staff=True)
    client.force_login(user)
    return client


@pytest.fixture
def viewer(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw-viewer-123456")
    client.force_login(user)
    return client


@pytest.mark.parametrize("name", ACTIONS)
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_non_staff_user_gets_403_on_apply_and_destroy(viewer, icfg, name, method):
    response = getattr(viewer, method)(reverse(name), {"confirmation": icfg.bucket, "checksum": "x"})
    if name == "admin:controlplane_auditlog_teardown":  # the admin sends non-staff to its own login page
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    else:
        assert response.status_code == 403
    assert gcs.bucket_get(icfg, icfg.bucket) is None and not AuditLog.objects.exclude(action="plan").exists()


@pytest.mark.parametrize("name", ["infra:plan", "infra:audit", *ACTIONS[:2]])
def test_anonymous_users_are_sent_to_log_in(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and "login" in response["Location"]


def test_apply_is_post_only(staff, icfg):
    assert staff.get(reverse("infra:apply")).status_code == 405


def test_a_viewer_sees_the_plan_without_buttons(viewer, icfg):
    page = viewer.get(reverse("infra:plan")).content.decode()
    assert "Plan: 8 to create, 0 to change, 0 to destroy." in page and "fake-gcs-server event flags" in page
    assert 'id="apply"' not in page and "Only staff" in page


def test_plan_apply_destroy_through_the_dashboard(staff, icfg):
    page = staff.get(reverse("infra:plan"))
    assert page.status_code == 200 and page.context["plan"].count("create") == 8
    checksum = page.context["plan"].checksum

    pubsub.topic_ensure(icfg, icfg.topic)  # the live state moves on: the plan that was shown is stale
    stale = staff.post(reverse("infra:apply"), {"checksum": checksum})
    assert stale.status_code == 409 and "plan changed since it was shown" in stale.content.decode()
    assert gcs.bucket_get(icfg, icfg.bucket) is None

    done = staff.post(reverse("infra:apply"), {"checksum": stale.context["plan"].checksum})
    assert done.status_code == 200 and "Apply complete" in done.content.decode()
    assert [st.status for st in done.context["result"].steps] == ["ok"] * 7
    assert not p.build_plan(s.stack_spec(cfg=icfg)).has_changes
    assert "Nothing to do" in staff.get(reverse("infra:plan")).content.decode()

    gcs.upload(icfg, name="keep.txt", data=b"k")
    confirm = staff.get(reverse("infra:destroy"))
    body = confirm.content.decode()
    assert 'name="confirmation"' in body and "1 objects" in body and 'id="delete_data"' in body
    checksum = confirm.context["plan"].checksum
    wrong = staff.post(reverse("infra:destroy"), {"checksum": checksum, "confirmation": "yes", "delete_data": "on"})
    assert wrong.status_code == 400 and "type the bucket name" in wrong.content.decode()
    no_data = staff.post(reverse("infra:destroy"), {"checksum": checksum, "confirmation": icfg.bucket})
    assert no_data.status_code == 400 and "also delete the data" in no_data.content.decode()
    assert gcs.bucket_get(icfg, icfg.bucket) is not None

    ok = staff.post(reverse("infra:destroy"), {"checksum": checksum, "confirmation": icfg.bucket, "delete_data": "on"})
    assert ok.status_code == 302 and ok["Location"].startswith("/infra/runs/destroy-")
    assert "Queued" in staff.get(ok["Location"]).content.decode()
    jobs.worker(icfg).work(burst=True)  # what manage.py runinfra does
    done_page = staff.get(ok["Location"]).content.decode()
    assert "Destroy complete." in done_page and "hx-trigger" not in done_page
    assert not p.build_destroy_plan(s.stack_spec(cfg=icfg)).has_changes

    audit = staff.get(reverse("infra:audit")).content.decode()
    assert audit.count("<td>ops</td>") == AuditLog.objects.count() >= 8
    outcomes = list(AuditLog.objects.exclude(action="plan").order_by("id").values_list("action", "outcome"))
    assert outcomes == [
        ("apply", "refused"),
        ("apply", "succeeded"),
        ("destroy", "refused"),
        ("destroy", "refused"),
        ("destroy", "succeeded"),
    ]


def test_destroy_protection_shows_no_form(staff, icfg, settings):
    import dataclasses

    settings.SIGHTLINE = dataclasses.replace(icfg, destroy_protection=True)
    pubsub.topic_ensure(icfg, icfg.topic)
    page = staff.get(reverse("infra:destroy")).content.decode()
    assert 'id="destroy-protection"' in page and 'name="confirmation"' not in page


def test_the_admin_lists_the_log_and_offers_the_teardown_page(staff, icfg, django_user_model):
    django_user_model.objects.filter(username="ops").update(is_superuser=True)  # the changelist needs view permission
    pubsub.topic_ensure(icfg, icfg.topic)
    page = staff.get(reverse("admin:controlplane_auditlog_teardown"))
    assert page.status_code == 200 and 'name="confirmation"' in page.content.decode()
    response = staff.post(
        reverse("admin:controlplane_auditlog_teardown"),
        {"checksum": page.context["plan"].checksum, "confirmation": icfg.bucket},
    )
    assert response.status_code == 302
    jobs.worker(icfg).work(burst=True)
    assert pubsub.topic_get(icfg, icfg.topic) is None
    changelist = staff.get(reverse("admin:controlplane_auditlog_changelist")).content.decode()
    assert "Tear down the stack" in changelist and "succeeded" in changelist
    action = staff.post(
        reverse("admin:controlplane_auditlog_changelist"),
        {"action": "teardown", "_selected_action": [AuditLog.objects.first().pk]},
    )
    assert action.status_code == 302 and action["Location"] == reverse("admin:controlplane_auditlog_teardown")
