"""The registry of resource kinds: plan and apply look a resource's kind up here and never branch on it.

A new kind is a module beside these (a ResourceKind) and one line below; its resources go in spec.stack_spec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.infra import spec as s
from controlplane.infra.kinds.base import ResourceKind
from controlplane.infra.kinds.bucket import BucketKind
from controlplane.infra.kinds.dataset import DatasetKind
from controlplane.infra.kinds.iam import IamMemberKind
from controlplane.infra.kinds.notification import NotificationKind
from controlplane.infra.kinds.subscription import SubscriptionKind
from controlplane.infra.kinds.table import TableKind
from controlplane.infra.kinds.topic import TopicKind

Registry = Mapping[str, ResourceKind[Any]]

KINDS: Registry = {
    k.name: k
    for k in (
        DatasetKind(),
        TableKind(),
        TopicKind(),
        SubscriptionKind(),
        IamMemberKind(s.TOPIC_IAM, on="topic"),
        IamMemberKind(s.SUBSCRIPTION_IAM, on="subscription"),
        BucketKind(),
        NotificationKind(),
    )
}


__all__ = ["KINDS", "Registry", "ResourceKind"]
