"""What the emulators cannot do (bucket notification configs, IAM), checked at the client boundary.

The google client objects are replaced by autospec'd fakes (real method signatures), returned by the cloud modules'
client factories; the tests check the exact requests the real service would get.
"""

from __future__ import annotations

import dataclasses
from unittest import mock

import pytest
from google.iam.v1 import policy_pb2

from classifier.cloud import gcs, projects, pubsub
from controlplane.infra import apply as runner
from controlplane.infra import spec as s
from controlplane.infra.kinds import KINDS
from tests.infra_support import isolated

AGENT = "service-123456789@gs-project-accounts.iam.gserviceaccount.com"
PUBSUB_AGENT = "serviceAccount:service-123456789@gcp-sa-pubsub.iam.gserviceaccount.com"
ROLE = "roles/pubsub.publisher"
GET_BOUNDS = {"timeout": pubsub.CALL_TIMEOUT_S, "retry": pubsub.RETRY}
SET_BOUNDS = {"timeout": pubsub.CALL_TIMEOUT_S, "retry": None}  # the etag refuses a repeat: never retried


@pytest.fixture
def gcfg(cfg):
    return dataclasses.replace(isolated(cfg), local=False)


@pytest.fixture(autouse=True)
def resource_manager(gcfg):
    """Every real-GCP plan of a Pub/Sub agent's grant asks Resource Manager for the project's number."""
    client = mock.create_autospec(projects.resourcemanager_v3.ProjectsClient, instance=True)
    client.get_project.return_value = projects.resourcemanager_v3.Project(name="projects/123456789")
    with mock.patch.object(projects, "projects", autospec=True, return_value=client):
        yield client


@pytest.fixture
def spec(gcfg):
    return s.stack_spec(cfg=gcfg)


@pytest.fixture
def bucket(gcfg):
    fake = mock.create_autospec(gcs.storage.Bucket, instance=True)
    fake.name = gcfg.bucket
    client = mock.create_autospec(gcs.storage.Client, instance=True)
    client.lookup_bucket.return_value = fake
    client.bucket.return_value = fake
    client.get_service_account_email.return_value = AGENT
    with mock.patch.object(gcs, "client", autospec=True, return_value=client):
        fake.client_ = client
        yield fake


@pytest.fixture
def publisher(gcfg):
    client = mock.create_autospec(pubsub.pubsub_v1.PublisherClient, instance=True)
    client.topic_path.side_effect = pubsub.pubsub_v1.PublisherClient.topic_path
    client.get_topic.return_value = pubsub.pubsub_v1.types.Topic(name=gcfg.topic_path)
    with mock.patch.object(pubsub, "publisher", autospec=True, return_value=client):
        yield client


def config(gcfg, notification_id: str, topic: str, **extra: object) -> gcs.storage.notification.BucketNotification:
    resource = {
        "id": notification_id,
        "topic": f"//pubsub.googleapis.com/projects/{gcfg.project}/topics/{topic}",
        "event_types": ["OBJECT_FINALIZE"],
        "payload_format": "JSON_API_V1",
        **extra,
    }
    return gcs.storage.notification.BucketNotification.from_api_repr(resource, mock.sentinel.bucket)


def resource(spec, kind, agent="storage"):
    return next(r for r in spec.resources if r.kind == kind and r.attrs.get("agent", agent) == agent)


def test_a_missing_notification_config_is_created_with_the_exact_request(gcfg, spec, bucket):
    bucket.list_notifications.return_value = [config(gcfg, "3", "someone-elses-topic")]
    created = mock.create_autospec(gcs.storage.notification.BucketNotification, instance=True)
    created.notification_id = "11"
    bucket.notification.return_value = created

    changes = KINDS[s.NOTIFICATION].plan(spec, resource(spec, s.NOTIFICATION))
    assert [(c.action, c.reason) for c in changes] == [
        ("create", "no notification config sends OBJECT_FINALIZE to the topic")
    ]
    assert runner.run_step(spec, changes[0]) == "created config #11"
    bucket.client_.bucket.assert_called_with(gcfg.bucket)
    bucket.notification.assert_called_once_with(
        topic_name=gcfg.topic, topic_project=gcfg.project, event_types=["OBJECT_FINALIZE"], payload_format="JSON_API_V1"
    )
    created.create.assert_called_once_with(timeout=gcs.CALL_TIMEOUT_S)


def test_a_matching_config_is_kept_and_duplicates_or_mismatches_are_deleted(gcfg, spec, bucket):
    bucket.list_notifications.return_value = [
        config(gcfg, "4", gcfg.topic, object_name_prefix="uploads/"),
        config(gcfg, "5", gcfg.topic),
        config(gcfg, "6", gcfg.topic),
    ]
    changes = KINDS[s.NOTIFICATION].plan(spec, resource(spec, s.NOTIFICATION))
    assert [(c.action, c.target, c.reason) for c in changes] == [
        ("delete", "4", "duplicate: each upload would be announced twice"),
        ("delete", "6", "duplicate: each upload would be announced twice"),
        ("no-op", "5", "config #5 matches"),
    ]
    assert "prefix=uploads/" in changes[0].details[0]
    doomed = mock.create_autospec(gcs.storage.notification.BucketNotification, instance=True)
    bucket.get_notification.return_value = doomed
    assert runner.run_step(spec, changes[0]) == "deleted config #4"
    bucket.get_notification.assert_called_once_with("4")
    doomed.delete.assert_called_once_with()


def test_a_missing_publisher_grant_is_added_keeping_the_policy_and_its_etag(gcfg, spec, bucket, publisher):
    viewers = policy_pb2.Binding(role="roles/viewer", members=["user:ops@example.com"])
    publisher.get_iam_policy.return_value = policy_pb2.Policy(etag=b"v7", bindings=[viewers])

    changes = KINDS[s.TOPIC_IAM].plan(spec, resource(spec, s.TOPIC_IAM))
    member = f"serviceAccount:{AGENT}"
    assert [(c.action, c.target) for c in changes] == [("create", member)]
    assert "bucket events would be refused" in changes[0].reason
    bucket.client_.get_service_account_email.assert_called_once_with(project=gcfg.project)

    assert runner.run_step(spec, changes[0]) == f"granted {ROLE} to {member}"
    wanted = policy_pb2.Policy(etag=b"v7", bindings=[viewers, policy_pb2.Binding(role=ROLE, members=[member])])
    publisher.set_iam_policy.assert_called_once_with(
        request={"resource": gcfg.topic_path, "policy": wanted}, **SET_BOUNDS
    )
    publisher.get_iam_policy.assert_called_with(request={"resource": gcfg.topic_path}, **GET_BOUNDS)


def test_an_existing_grant_is_a_no_op_and_destroy_revokes_only_that_member(gcfg, spec, bucket, publisher):
    member = f"serviceAccount:{AGENT}"
    publishers = policy_pb2.Binding(role=ROLE, members=["user:other@example.com", member])
    publisher.get_iam_policy.return_value = policy_pb2.Policy(etag=b"v8", bindings=[publishers])
    r = resource(spec, s.TOPIC_IAM)
    assert [c.action for c in KINDS[s.TOPIC_IAM].plan(spec, r)] == ["no-op"]
    changes = KINDS[s.TOPIC_IAM].plan_destroy(spec, r)
    assert [(c.action, c.target) for c in changes] == [("delete", member)]
    assert runner.run_step(spec, changes[0]) == "revoked"
    kept = policy_pb2.Policy(etag=b"v8", bindings=[policy_pb2.Binding(role=ROLE, members=["user:other@example.com"])])
    publisher.set_iam_policy.assert_called_once_with(
        request={"resource": gcfg.topic_path, "policy": kept}, **SET_BOUNDS
    )


def test_destroy_deletes_every_config_that_targets_the_topic(gcfg, spec, bucket):
    bucket.list_notifications.return_value = [config(gcfg, "5", gcfg.topic), config(gcfg, "8", "another-topic")]
    changes = KINDS[s.NOTIFICATION].plan_destroy(spec, resource(spec, s.NOTIFICATION))
    assert [(c.action, c.target) for c in changes] == [("delete", "5")]


@pytest.fixture
def subscriber(gcfg):
    client = mock.create_autospec(pubsub.pubsub_v1.SubscriberClient, instance=True)
    client.subscription_path.side_effect = pubsub.pubsub_v1.SubscriberClient.subscription_path
    client.get_subscription.return_value = pubsub.pubsub_v1.types.Subscription(
        name=gcfg.subscription_path, topic=gcfg.topic_path
    )
    with mock.patch.object(pubsub, "subscriber", autospec=True, return_value=client):
        yield client


def test_dead_lettering_grants_go_to_the_pubsub_service_agent(gcfg, spec, bucket, publisher, subscriber):
    publisher.get_iam_policy.return_value = policy_pb2.Policy(etag=b"t1")
    subscriber.get_iam_policy.return_value = policy_pb2.Policy(etag=b"s1")
    on_topic = resource(spec, s.TOPIC_IAM, agent="pubsub")
    on_subscription = resource(spec, s.SUBSCRIPTION_IAM, agent="pubsub")
    assert on_topic.attrs["topic"] == gcfg.dead_letter_topic

    for r, role, fake, path in (
        (on_topic, ROLE, publisher, pubsub.pubsub_v1.PublisherClient.topic_path(gcfg.project, gcfg.dead_letter_topic)),
        (on_subscription, "roles/pubsub.subscriber", subscriber, gcfg.subscription_path),
    ):
        (change,) = KINDS[r.kind].plan(spec, r)
        assert (change.action, change.target) == ("create", PUBSUB_AGENT)
        assert "dead-lettering would not work" in change.reason
        assert runner.run_step(spec, change) == f"granted {role} to {PUBSUB_AGENT}"
        wanted = policy_pb2.Policy(etag=fake.get_iam_policy.return_value.etag)
        wanted.bindings.add(role=role, members=[PUBSUB_AGENT])
        fake.set_iam_policy.assert_called_once_with(request={"resource": path, "policy": wanted}, **SET_BOUNDS)


def test_the_project_number_comes_from_resource_manager_even_where_the_storage_agent_is_named_by_project_id(
    gcfg, spec, bucket, subscriber, resource_manager
):
    """Older projects' Cloud Storage agents are named by the project id: their address has no number in it."""
    bucket.client_.get_service_account_email.return_value = (
        f"{gcfg.project}@gs-project-accounts.iam.gserviceaccount.com"
    )
    subscriber.get_iam_policy.return_value = policy_pb2.Policy(etag=b"s1")
    r = resource(spec, s.SUBSCRIPTION_IAM, agent="pubsub")
    (change,) = KINDS[r.kind].plan(spec, r)
    assert change.target == PUBSUB_AGENT
    resource_manager.get_project.assert_called_once_with(
        name=f"projects/{gcfg.project}", timeout=projects.CALL_TIMEOUT_S, retry=projects.RETRY
    )


def test_locally_both_are_provided_by_the_local_stack(cfg):
    local = s.stack_spec(cfg=isolated(cfg))
    for kind in (s.NOTIFICATION, s.TOPIC_IAM, s.SUBSCRIPTION_IAM):
        for r in (r for r in local.resources if r.kind == kind):
            for destroy in (False, True):
                (change,) = KINDS[kind].planner(local, destroy=destroy)(local, r)
                assert change.action == "provided" and change.reason.startswith("provided by the local stack")
                assert ("fake-gcs-server event flags" in change.reason) == (kind == s.NOTIFICATION)
                assert not change.pending


def test_an_expiring_subscription_is_updated_to_never_expire_and_only_that_is_in_the_mask(gcfg, spec, subscriber):
    """The emulator refuses to update an expiration policy: the request is checked here."""
    subscriber.get_subscription.return_value = pubsub.pubsub_v1.types.Subscription(
        name=gcfg.subscription_path,
        topic=gcfg.topic_path,
        ack_deadline_seconds=pubsub.ACK_DEADLINE_S,
        message_retention_duration={"seconds": pubsub.RETENTION_S},
        expiration_policy={"ttl": {"seconds": 31 * 24 * 3600}},
        dead_letter_policy={
            "dead_letter_topic": f"projects/{gcfg.project}/topics/{gcfg.dead_letter_topic}",
            "max_delivery_attempts": 5,
        },
    )
    r = spec.resource(f"{s.SUBSCRIPTION}:{gcfg.subscription}")
    (change,) = KINDS[s.SUBSCRIPTION].plan(spec, r)
    assert change.details == ("expiration_ttl_seconds: expires after 2678400 s without a pull -> never expires",)
    runner.run_step(spec, change)
    (call,) = subscriber.update_subscription.call_args_list
    request = call.kwargs["request"]
    assert request["update_mask"] == {"paths": ["expiration_policy"]}
    sent = pubsub.pubsub_v1.types.Subscription(request["subscription"])
    assert "expiration_policy" in sent and "ttl" not in sent.expiration_policy


def test_the_bucket_is_created_in_gcp_location_and_one_elsewhere_is_a_change_apply_will_not_make(gcfg, bucket):
    spec = s.stack_spec(cfg=dataclasses.replace(gcfg, location="europe-west1"))
    r = resource(spec, s.BUCKET)
    bucket.client_.lookup_bucket.return_value = None
    (change,) = KINDS[s.BUCKET].plan(spec, r)
    runner.run_step(spec, change)
    bucket.client_.create_bucket.assert_called_once_with(gcfg.bucket, location="europe-west1")

    bucket.client_.lookup_bucket.return_value = bucket
    bucket.location = "EUROPE-WEST1"  # as Cloud Storage spells it
    assert [c.action for c in KINDS[s.BUCKET].plan(spec, r)] == ["no-op"]
    bucket.location = "US"
    (moved,) = KINDS[s.BUCKET].plan(spec, r)
    assert (moved.action, moved.details) == ("replace", ("location: US, wanted europe-west1",))
    assert "a bucket cannot move, so apply will not do this" in moved.reason


class FakeClock:
    """Stands in for the time module in gcs: sleeping moves the clock on, instantly."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def refused_until_propagated(bucket, failures: list[Exception]) -> mock.Mock:
    created = mock.create_autospec(gcs.storage.notification.BucketNotification, instance=True)
    created.notification_id = "12"
    created.create.side_effect = [*failures, None]
    bucket.notification.return_value = created
    return created


def test_creating_the_notification_config_waits_for_iam_to_propagate_and_says_so(gcfg, spec, bucket):
    """Apply grants the service agent publish on the topic just before: Cloud Storage may not see it yet."""
    agent = "The service account 'service-1@gs-project-accounts.iam.gserviceaccount.com' does not have permission"
    created = refused_until_propagated(
        bucket, [gcs.gexc.Forbidden(agent), gcs.gexc.BadRequest("... or user does not have permission to it.")]
    )
    bucket.list_notifications.return_value = []
    change = KINDS[s.NOTIFICATION].plan(spec, resource(spec, s.NOTIFICATION))
    seen: list[runner.Step] = []
    with mock.patch.object(gcs, "time", FakeClock()) as clock:
        (step,) = runner.run_changes(spec, change, on_step=seen.append)
    assert (step.status, step.message) == (runner.OK, "created config #12")
    assert clock.slept == [2.0, 4.0] and created.create.call_count == 3
    waits = [s for s in seen if s.status == runner.RUNNING]
    assert [w.message.split(" s (")[0] for w in waits] == [
        "the service agent may not publish yet (IAM propagates): retrying in 2",
        "the service agent may not publish yet (IAM propagates): retrying in 4",
    ]
    assert "403 The service account" in waits[0].message
    assert seen[-1] is step


def test_the_wait_for_iam_is_bounded_and_other_errors_are_not_retried(gcfg, spec, bucket):
    bucket.list_notifications.return_value = []
    change = KINDS[s.NOTIFICATION].plan(spec, resource(spec, s.NOTIFICATION))
    refused_until_propagated(bucket, [gcs.gexc.Forbidden("no permission")] * 100)
    with mock.patch.object(gcs, "time", FakeClock()) as clock:
        (step,) = runner.run_changes(spec, change)
    assert step.status == runner.FAILED and "Forbidden" in step.message
    assert sum(clock.slept) == gcs.PROPAGATION_BUDGET_S and max(clock.slept) == gcs.PROPAGATION_MAX_WAIT_S

    created = refused_until_propagated(bucket, [gcs.gexc.BadRequest("payload_format is invalid")])
    with mock.patch.object(gcs, "time", FakeClock()) as clock:
        (step,) = runner.run_changes(spec, change)
    assert step.status == runner.FAILED and clock.slept == [] and created.create.call_count == 1


def blobs(n: int) -> list[mock.Mock]:
    made = []
    for i in range(n):
        blob = mock.create_autospec(gcs.storage.Blob, instance=True)
        blob.name = f"o{i}"
        made.append(blob)
    return made


def test_a_bucket_is_emptied_a_batch_request_at_a_time(gcfg, bucket):
    """fake-gcs-server has no batch endpoint: the batch requests are checked here."""
    client = bucket.client_
    listed = mock.Mock(pages=[blobs(150), blobs(30)])
    client.list_blobs.return_value = listed
    counts: list[int] = []
    assert gcs.bucket_delete(gcfg, gcfg.bucket, delete_objects=True, on_progress=counts.append) == 180
    assert counts == [100, 150, 180]
    client.list_blobs.assert_called_once_with(gcfg.bucket, versions=True, page_size=1000, timeout=gcs.CALL_TIMEOUT_S)
    assert client.batch.call_count == 3  # 100 + 50 + 30 calls, each batch one request
    for page in listed.pages:
        for blob in page:
            blob.delete.assert_called_once_with(timeout=gcs.CALL_TIMEOUT_S)
    bucket.delete.assert_called_once_with(timeout=gcs.CALL_TIMEOUT_S)


def test_a_batch_with_an_object_already_gone_is_redone_one_by_one(gcfg, bucket):
    client = bucket.client_
    page = blobs(3)
    client.list_blobs.return_value = mock.Mock(pages=[page])
    client.batch.return_value.__exit__.side_effect = gcs.gexc.NotFound("o1 was deleted meanwhile")
    page[1].delete.side_effect = [None, gcs.gexc.NotFound("gone")]
    assert gcs.bucket_delete(gcfg, gcfg.bucket, delete_objects=True) == 3
    assert [b.delete.call_count for b in page] == [2, 2, 2]
    bucket.delete.assert_called_once_with(timeout=gcs.CALL_TIMEOUT_S)
