"""Preflight: on the local stack it says what the stack provides; on GCP it asks the APIs, checked here at the client
boundary (no emulator has testIamPermissions or Service Usage) with the exact requests the services would get."""

from __future__ import annotations

import dataclasses
from unittest import mock

import pytest
from google.iam.v1 import iam_policy_pb2

from classifier.cloud import bigquery, gcs, projects, pubsub
from controlplane.infra import preflight as pf
from tests.infra_support import isolated, run

MEMBER = "serviceAccount:sightline@p.iam.gserviceaccount.com"


def test_on_the_local_stack_it_exits_0_and_says_what_the_stack_provides(cfg, settings):
    settings.SIGHTLINE = isolated(cfg)
    code, out = run("preflight")
    assert code == 0, out
    assert "The local stack provides:" in out and "fake-gcs-server at http://127.0.0.1:" in out
    assert "OK      setting GCP_LOCATION=US" in out and "Preflight: everything Sightline needs is there." in out


def test_settings_that_disagree_are_missing_with_the_fix(cfg, settings):
    settings.SIGHTLINE = dataclasses.replace(
        isolated(cfg), table_id="other-project.sightline.image_classification", bucket="images.example.com"
    )
    code, out = run("preflight")
    assert code == 2
    assert "set BQ_TABLE=sightline-test.sightline.image_classification" in out
    assert "set BUCKET_NAME=images-example-com" in out


class Project:
    """What the caller holds: on the project, and on each existing resource (absent key: it does not exist)."""

    def __init__(self, on_project: set[str], on: dict[str, set[str]], disabled: set[str] = frozenset()) -> None:
        self.on_project, self.on, self.disabled = on_project, on, disabled

    def held(self, where: str, asked: list[str]) -> list[str]:
        return [p for p in asked if p in self.on[where]]


@pytest.fixture
def gcfg(cfg, settings):
    mine = dataclasses.replace(isolated(cfg), local=False)
    settings.SIGHTLINE = mine
    return mine


@pytest.fixture
def fakes(gcfg):
    """The five Google clients preflight talks to, autospec'd; `state` says what each answers."""
    state = Project(set(), {})
    rm = mock.create_autospec(projects.resourcemanager_v3.ProjectsClient, instance=True)
    rm.test_iam_permissions.side_effect = lambda resource, permissions, **_: iam_policy_pb2.TestIamPermissionsResponse(
        permissions=[p for p in permissions if p in state.on_project]
    )
    su = mock.create_autospec(projects.service_usage_v1.ServiceUsageClient, instance=True)

    def batch_get(request, **_):
        svc = projects.service_usage_v1
        return svc.BatchGetServicesResponse(
            services=[
                svc.Service(
                    name=n,
                    config={"name": n.rsplit("/", 1)[-1]},
                    state=svc.State.DISABLED if n.rsplit("/", 1)[-1] in state.disabled else svc.State.ENABLED,
                )
                for n in request["names"]
            ]
        )

    su.batch_get_services.side_effect = batch_get

    storage = mock.create_autospec(gcs.storage.Client, instance=True)
    bucket = mock.create_autospec(gcs.storage.Bucket, instance=True)
    storage.bucket.return_value = bucket

    def bucket_test(permissions, **_):
        if "bucket" not in state.on:
            raise gcs.gexc.NotFound("no such bucket")
        return state.held("bucket", permissions)

    bucket.test_iam_permissions.side_effect = bucket_test

    def pubsub_test(request, **_):
        where = request["resource"]
        if where not in state.on:
            raise pubsub.gexc.NotFound("no such resource")
        return iam_policy_pb2.TestIamPermissionsResponse(permissions=state.held(where, request["permissions"]))

    pub = mock.create_autospec(pubsub.pubsub_v1.PublisherClient, instance=True)
    sub = mock.create_autospec(pubsub.pubsub_v1.SubscriberClient, instance=True)
    pub.topic_path.side_effect = pubsub.pubsub_v1.PublisherClient.topic_path
    sub.subscription_path.side_effect = pubsub.pubsub_v1.SubscriberClient.subscription_path
    pub.test_iam_permissions.side_effect = pubsub_test
    sub.test_iam_permissions.side_effect = pubsub_test

    bq = mock.create_autospec(bigquery.bigquery.Client, instance=True)

    def table_test(table, permissions, **_):
        if table not in state.on:
            raise bigquery.gexc.NotFound("no such table")
        return {"permissions": state.held(table, permissions)}

    bq.test_iam_permissions.side_effect = table_test
    with (
        mock.patch.object(projects, "projects", autospec=True, return_value=rm),
        mock.patch.object(projects, "service_usage", autospec=True, return_value=su),
        mock.patch.object(projects, "caller_member", autospec=True, return_value=MEMBER),
        mock.patch.object(gcs, "client", autospec=True, return_value=storage),
        mock.patch.object(pubsub, "publisher", autospec=True, return_value=pub),
        mock.patch.object(pubsub, "subscriber", autospec=True, return_value=sub),
        mock.patch.object(bigquery, "client", autospec=True, return_value=bq),
    ):
        yield state, {"rm": rm, "su": su, "bucket": bucket, "pub": pub, "sub": sub, "bq": bq}


def every_permission(identity: str | None = None) -> set[str]:
    return {p for n in pf.NEEDS if identity in (None, n.identity) for p in n.permissions}


def test_before_the_first_apply_everything_is_checked_on_the_project_and_all_missing_items_are_listed(gcfg, fakes):
    state, clients = fakes
    state.on_project = every_permission(pf.CONTROL_PLANE)  # an operator about to apply, nothing created yet
    state.disabled = {"pubsub.googleapis.com"}
    code, out = run("preflight")
    assert code == 2, out
    assert f"gcloud services enable pubsub.googleapis.com --project={gcfg.project}" in out
    assert "OK      control plane: roles/pubsub.admin on project" in out
    line = next(x for x in out.splitlines() if "workers: roles/storage.objectViewer on bucket" in x)
    assert "MISSING" in line and "does not exist yet: grant this once apply has created it" in line
    assert (
        f"gcloud storage buckets add-iam-policy-binding gs://{gcfg.bucket} --member={MEMBER} "
        "--role=roles/storage.objectViewer" in out
    )
    dataset = gcfg.dataset_id.replace(".", ":")
    assert f"bq add-iam-policy-binding --member={MEMBER} --role=roles/bigquery.dataEditor {dataset}" in out
    assert (
        f"gcloud pubsub subscriptions add-iam-policy-binding {gcfg.dead_letter_subscription} "
        f"--project={gcfg.project} --member={MEMBER} --role=roles/pubsub.subscriber" in out
    )
    lacking = [n for n in pf.NEEDS if not set(n.permissions) <= state.on_project]
    assert out.count("MISSING") == 1 + len(lacking)  # the API and each of them: all in one run

    (su_call,) = clients["su"].batch_get_services.call_args_list
    parent = f"projects/{gcfg.project}"
    assert su_call.kwargs["request"] == {
        "parent": parent,
        "names": [f"{parent}/services/{s}" for s in sorted(pf.SERVICES)],
    }
    clients["rm"].test_iam_permissions.assert_any_call(
        resource=parent,
        permissions=sorted(pf.NEEDS[0].permissions),
        timeout=projects.CALL_TIMEOUT_S,
        retry=projects.RETRY,
    )


def test_once_applied_each_identity_is_checked_on_the_resource_itself(gcfg, fakes):
    state, clients = fakes
    topic = f"projects/{gcfg.project}/topics/{gcfg.dead_letter_topic}"
    sub = f"projects/{gcfg.project}/subscriptions/{gcfg.subscription}"
    dls = f"projects/{gcfg.project}/subscriptions/{gcfg.dead_letter_subscription}"
    state.on_project = every_permission(pf.CONTROL_PLANE) | {"bigquery.jobs.create", "monitoring.timeSeries.list"}
    state.on = {
        "bucket": {"storage.objects.get", "storage.objects.list", "storage.objects.create"},
        topic: {"pubsub.topics.publish"},
        sub: {"pubsub.subscriptions.consume"},
        dls: {"pubsub.subscriptions.consume"},
        gcfg.table_id: {"bigquery.tables.getData", "bigquery.tables.updateData"},
        gcfg.failures_table_id: {"bigquery.tables.getData", "bigquery.tables.updateData"},
    }
    code, out = run("preflight")
    assert code == 0, out
    assert "MISSING" not in out and "Preflight: everything Sightline needs is there." in out
    clients["bucket"].test_iam_permissions.assert_any_call(["storage.objects.get"], timeout=gcs.CALL_TIMEOUT_S)
    clients["sub"].test_iam_permissions.assert_any_call(
        request={"resource": sub, "permissions": ["pubsub.subscriptions.consume"]}, **pubsub._retried()
    )
    clients["bq"].test_iam_permissions.assert_any_call(
        gcfg.failures_table_id, ["bigquery.tables.getData", "bigquery.tables.updateData"], **bigquery._bounded()
    )

    state.on[sub] = set()
    code, out = run("preflight", "--identity", "listener")
    assert code == 2 and "workers:" not in out
    assert "listener: roles/pubsub.subscriber on subscription" in out and "lacks pubsub.subscriptions.consume" in out


def test_a_failed_read_is_exit_1_with_one_line(gcfg, fakes):
    _, clients = fakes
    clients["su"].batch_get_services.side_effect = projects.gexc.PermissionDenied("serviceusage.services.get")
    code, out = run("preflight")
    assert code == 1 and out.startswith("Error: preflight could not read the project: PermissionDenied")


def test_the_infrastructure_page_loads_a_preflight_panel(viewer, cfg, stack, settings):
    from django.urls import reverse

    settings.SIGHTLINE = isolated(cfg)
    page = viewer.get(reverse("infra:plan"))
    assert f'hx-get="{reverse("infra:preflight")}"' in page.content.decode()
    panel = viewer.get(reverse("infra:preflight")).content.decode()
    assert "The local stack provides:" in panel and "setting GCP_LOCATION=US" in panel
    assert "Everything Sightline needs is there." in panel


def test_the_panel_lists_what_is_missing_with_each_fix(viewer, gcfg, fakes):
    from django.urls import reverse

    state, _ = fakes
    state.on_project = every_permission()
    state.disabled = {"bigquery.googleapis.com"}
    panel = viewer.get(reverse("infra:preflight")).content.decode()
    assert "1 missing." in panel
    assert f"gcloud services enable bigquery.googleapis.com --project={gcfg.project}" in panel


def test_the_readme_lists_the_roles_preflight_checks_and_how_to_bootstrap():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Running against real GCP") : readme.index("## The local stack")]
    for row in pf.roles_table():
        assert row in section, f"README's roles table lacks: {row}"
    assert "on the dataset" not in section.split("Bootstrap", 1)[1].split("4. grant the listener")[0]
    assert "streaming inserts" in section and "Billing must be enabled" in section
    assert f"gcloud services enable {' '.join(pf.SERVICES)}" in section
    for phrase in ("GCP_LOCATION", "manage.py preflight --identity control-plane", "bin/test --gcp"):
        assert phrase in section
    assert "SIGHTLINE_TEST_PROJECT" in section and "web app" in section
