"""The project itself: its number (Resource Manager), what the caller may do on it, and which APIs are enabled
(Service Usage). No emulator has either API: the local stack never calls this module."""

from __future__ import annotations

import functools
from collections.abc import Iterable

import google.auth
from google.api_core import exceptions as gexc
from google.api_core import retry
from google.cloud import resourcemanager_v3, service_usage_v1

from classifier.config import Config

CALL_TIMEOUT_S = 30.0
RETRY = retry.Retry(
    predicate=retry.if_exception_type(gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError),
    initial=0.5,
    maximum=10.0,
    timeout=60.0,
)
# Service Usage answers at most this many services per batchGet.
BATCH_GET_MAX = 20


@functools.cache
def projects(cfg: Config) -> resourcemanager_v3.ProjectsClient:
    return resourcemanager_v3.ProjectsClient()


@functools.cache
def service_usage(cfg: Config) -> service_usage_v1.ServiceUsageClient:
    return service_usage_v1.ServiceUsageClient()


def project_number(cfg: Config) -> str:
    """The project's number, as Resource Manager has it for every project.

    (The Cloud Storage service agent's address carries it only on newer projects; older ones' agents are named by
    the project id.) Needs resourcemanager.projects.get, which roles/browser grants."""
    project = projects(cfg).get_project(name=f"projects/{cfg.project}", timeout=CALL_TIMEOUT_S, retry=RETRY)
    return str(project.name).removeprefix("projects/")


def project_permissions(cfg: Config, permissions: Iterable[str]) -> set[str]:
    """Which of `permissions` the caller holds on the project."""
    response = projects(cfg).test_iam_permissions(
        resource=f"projects/{cfg.project}", permissions=sorted(permissions), timeout=CALL_TIMEOUT_S, retry=RETRY
    )
    return set(response.permissions)


def services_enabled(cfg: Config, services: Iterable[str]) -> dict[str, bool]:
    """Each service name (e.g. pubsub.googleapis.com) and whether it is enabled on the project."""
    wanted = sorted(services)
    parent = f"projects/{cfg.project}"
    enabled: dict[str, bool] = {}
    for start in range(0, len(wanted), BATCH_GET_MAX):
        names = [f"{parent}/services/{s}" for s in wanted[start : start + BATCH_GET_MAX]]
        response = service_usage(cfg).batch_get_services(
            request={"parent": parent, "names": names}, timeout=CALL_TIMEOUT_S, retry=RETRY
        )
        for service in response.services:
            enabled[service.config.name or service.name.rsplit("/", 1)[-1]] = (
                service.state == service_usage_v1.State.ENABLED
            )
    return {s: enabled.get(s, False) for s in wanted}


def caller_member(cfg: Config) -> str | None:
    """The IAM member of the credentials this process runs with, when they say (a service account's key or
    impersonation do; a user's ADC or a VM's metadata server may not before a token is fetched)."""
    credentials, _ = google.auth.default()
    email = getattr(credentials, "service_account_email", None)
    if isinstance(email, str) and "@" in email:
        return f"serviceAccount:{email}"
    return None
