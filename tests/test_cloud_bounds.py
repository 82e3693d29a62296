"""Every Google call has a deadline, and the idempotent ones retry with backoff within a bounded total.

No emulator hangs or drops a call, so this is checked at the client boundary: autospec'd clients record each request
and the tests read its timeout and retry. (Cloud Storage's client bounds every request itself: 60 s, DEFAULT_RETRY.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from google.api_core import retry as gretry
from google.iam.v1 import policy_pb2

from classifier.cloud import bigquery, pubsub
from tests.infra_support import isolated

BQ = bigquery.bigquery


def bounded(value: Any) -> bool:
    return isinstance(value, int | float) and 0 < value <= 120


def retry_bounded(value: Any) -> bool:
    return isinstance(value, gretry.Retry) and bounded(value.timeout)


def check_calls(fake: mock.Mock, not_retried: set[str] = frozenset()) -> list[str]:
    """The names of the calls made, after checking each one's timeout and retry."""
    names = []
    for name, _, kwargs in fake.method_calls:
        if name.endswith("_path"):  # pure string helpers, no request
            continue
        names.append(name)
        assert bounded(kwargs.get("timeout")), f"{name}: no bounded timeout ({kwargs.get('timeout')!r})"
        if name in not_retried:
            assert kwargs.get("retry") is None, f"{name} must not be retried"
        else:
            assert retry_bounded(kwargs.get("retry")), f"{name}: retry {kwargs.get('retry')!r} is not bounded"
    return names


@pytest.fixture
def gcfg(cfg):
    return isolated(cfg)


@pytest.fixture
def bq(gcfg):
    client = mock.create_autospec(BQ.Client, instance=True)
    job = mock.create_autospec(BQ.QueryJob, instance=True)
    job.num_dml_affected_rows = 1
    job.result.return_value = [BQ.Row((1,), {"n": 0})]
    client.query.return_value = job
    client.get_dataset.return_value = BQ.Dataset(gcfg.dataset_id)
    client.get_table.return_value = BQ.Table(gcfg.table_id, schema=bigquery.CLASSIFICATIONS_SCHEMA)
    client.insert_rows_json.return_value = []
    with mock.patch.object(bigquery, "client", autospec=True, return_value=client):
        yield client


BIGQUERY_CALLS: list[Callable[[Any], object]] = [
    lambda c: bigquery.dataset_get(c, c.dataset_id),
    lambda c: bigquery.dataset_create(c, c.dataset_id),
    lambda c: bigquery.dataset_table_ids(c, c.dataset_id),
    lambda c: bigquery.dataset_delete(c, c.dataset_id),
    lambda c: bigquery.table_schema(c, c.table_id),
    lambda c: bigquery.table_create(c, c.table_id, bigquery.CLASSIFICATIONS_SCHEMA),
    lambda c: bigquery.table_schema_update(c, c.table_id, bigquery.CLASSIFICATIONS_SCHEMA),
    lambda c: bigquery.table_delete(c, c.table_id),
    lambda c: bigquery.table_row_count(c, c.table_id),
    lambda c: bigquery.query(c, "SELECT 1"),
    lambda c: bigquery.dml(c, "DELETE FROM t WHERE TRUE"),
    lambda c: bigquery.insert_row(c, c.table_id, {"image_name": "x"}, row_id="x"),
]


@pytest.mark.parametrize("call", BIGQUERY_CALLS)
def test_every_bigquery_call_is_bounded_and_retried(gcfg, bq, call):
    call(gcfg)
    assert check_calls(bq)
    if bq.query.called:  # waiting for the job is a call of its own
        (_, _, kwargs) = bq.query.return_value.result.mock_calls[0]
        assert bounded(kwargs["timeout"]) and retry_bounded(kwargs["retry"])
        assert bq.query.call_args.kwargs["job_retry"] is None  # a DML re-run could apply twice


@pytest.fixture
def ps(gcfg):
    pub = mock.create_autospec(pubsub.pubsub_v1.PublisherClient, instance=True)
    sub = mock.create_autospec(pubsub.pubsub_v1.SubscriberClient, instance=True)
    pub.topic_path.side_effect = pubsub.pubsub_v1.PublisherClient.topic_path
    sub.subscription_path.side_effect = pubsub.pubsub_v1.SubscriberClient.subscription_path
    pub.get_topic.return_value = pubsub.pubsub_v1.types.Topic(name=gcfg.topic_path)
    sub.get_subscription.return_value = pubsub.pubsub_v1.types.Subscription(name=gcfg.subscription_path)
    for client in (pub, sub):
        client.get_iam_policy.return_value = policy_pb2.Policy(etag=b"e")
    with (
        mock.patch.object(pubsub, "publisher", autospec=True, return_value=pub),
        mock.patch.object(pubsub, "subscriber", autospec=True, return_value=sub),
    ):
        yield pub, sub


PUBSUB_CALLS: list[Callable[[Any], object]] = [
    lambda c: pubsub.topic_ensure(c, c.topic),
    lambda c: pubsub.topic_get(c, c.topic),
    lambda c: pubsub.topic_delete(c, c.topic),
    lambda c: pubsub.subscription_ensure(c, c.subscription, c.topic, dead_letter_topic=c.dead_letter_topic),
    lambda c: pubsub.subscription_get(c, c.subscription),
    lambda c: pubsub.subscription_update(c, c.subscription, fields=["ack_deadline_seconds"]),
    lambda c: pubsub.subscription_delete(c, c.subscription),
    lambda c: pubsub.iam_members(c, role=pubsub.PUBLISHER_ROLE, topic=c.topic),
    lambda c: pubsub.iam_grant(c, role=pubsub.PUBLISHER_ROLE, member="user:a@example.com", topic=c.topic),
    lambda c: pubsub.iam_revoke(c, role=pubsub.SUBSCRIBER_ROLE, member="user:a@example.com", subscription="s-1"),
    lambda c: pubsub.acknowledge(c, [pubsub.Pulled(c, c.subscription_path, "a1", "m1", b"", {})]),
    lambda c: pubsub.Pulled(c, c.subscription_path, "a1", "m1", b"", {}).nack(),
]


@pytest.mark.parametrize("call", PUBSUB_CALLS)
def test_every_pubsub_call_is_bounded_and_only_the_etag_guarded_policy_write_is_not_retried(gcfg, ps, call):
    call(gcfg)
    made = [name for fake in ps for name in check_calls(fake, not_retried={"set_iam_policy"})]
    assert made
