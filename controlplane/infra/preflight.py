"""Preflight: before anything is applied, what each identity may do on each resource it will touch, whether every
API Sightline calls is enabled, and whether the settings agree with each other, all in one go.

Permissions are asked of the APIs themselves (testIamPermissions), as the credentials this runs with: run it with
each identity's credentials (`--identity listener` on the listener's machine), or once as an operator who holds them
all. A resource that does not exist yet is checked on the project, the only place its grants can be yet. Every
missing item comes with the gcloud (or bq) command that grants or enables it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from classifier.cloud import bigquery, gcs, projects, pubsub
from classifier.config import Config

CONTROL_PLANE = "control plane"
LISTENER = "listener"
WORKERS = "workers"
WEB = "web app"
IDENTITIES = (CONTROL_PLANE, LISTENER, WORKERS, WEB)

PROJECT = "project"
BUCKET = "bucket"
TOPIC = "topic"
SUBSCRIPTION = "subscription"
DEAD_LETTER_TOPIC = "dead-letter topic"
DEAD_LETTER_SUBSCRIPTION = "dead-letter subscription"
DATASET = "dataset"

SERVICES = (
    "storage.googleapis.com",
    "pubsub.googleapis.com",
    "bigquery.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "serviceusage.googleapis.com",
    "monitoring.googleapis.com",  # the dashboard's backlog figure (classifier/cloud/monitoring.py)
)


@dataclass(frozen=True)
class Need:
    """One role an identity needs on one resource, and the permissions of it that Sightline uses (what is tested)."""

    identity: str
    on: str
    role: str
    permissions: tuple[str, ...]
    why: str


# The README's table of roles is this list (a test keeps them the same). The control plane's are project-wide
# because it creates the resources (creating needs the permission on the project) and sets IAM policies on topics it
# has just created; BigQuery makes the creator of a dataset its owner, so roles/bigquery.user is enough there.
NEEDS = (
    Need(CONTROL_PLANE, PROJECT, "roles/storage.admin",
         ("storage.buckets.create", "storage.buckets.update", "storage.buckets.delete", "storage.objects.delete"),
         "create the bucket and its notification config; destroy deletes objects and bucket"),
    Need(CONTROL_PLANE, PROJECT, "roles/pubsub.admin",
         ("pubsub.topics.create", "pubsub.subscriptions.create", "pubsub.topics.setIamPolicy",
          "pubsub.subscriptions.setIamPolicy"),
         "create topics and subscriptions, grant the service agents publish and subscribe"),
    Need(CONTROL_PLANE, PROJECT, "roles/bigquery.user", ("bigquery.datasets.create", "bigquery.jobs.create"),
         "create the dataset (its creator owns it: tables, row counts, deletes)"),
    Need(CONTROL_PLANE, PROJECT, "roles/browser", ("resourcemanager.projects.get",),
         "read the project's number (the Pub/Sub service agent is named by it)"),
    Need(CONTROL_PLANE, PROJECT, "roles/serviceusage.serviceUsageViewer", ("serviceusage.services.get",),
         "preflight: see which APIs are enabled"),
    Need(LISTENER, SUBSCRIPTION, "roles/pubsub.subscriber", ("pubsub.subscriptions.consume",),
         "pull and ack notifications"),
    Need(LISTENER, DEAD_LETTER_TOPIC, "roles/pubsub.publisher", ("pubsub.topics.publish",),
         "set aside notifications it cannot parse"),
    Need(WORKERS, BUCKET, "roles/storage.objectViewer", ("storage.objects.get",), "download the uploads"),
    Need(WORKERS, DATASET, "roles/bigquery.dataEditor", ("bigquery.tables.getData", "bigquery.tables.updateData"),
         "insert rows and failure records, read outcomes"),
    Need(WORKERS, PROJECT, "roles/bigquery.jobUser", ("bigquery.jobs.create",), "run the outcome queries"),
    Need(WEB, BUCKET, "roles/storage.objectViewer", ("storage.objects.get", "storage.objects.list"),
         "show images, reconcile"),
    Need(WEB, BUCKET, "roles/storage.objectCreator", ("storage.objects.create",), "upload from the dashboard"),
    Need(WEB, DATASET, "roles/bigquery.dataEditor", ("bigquery.tables.getData", "bigquery.tables.updateData"),
         "read rows; requeue and dismiss delete failure records (DML)"),
    Need(WEB, PROJECT, "roles/bigquery.jobUser", ("bigquery.jobs.create",), "run queries"),
    Need(WEB, DEAD_LETTER_SUBSCRIPTION, "roles/pubsub.subscriber", ("pubsub.subscriptions.consume",),
         "peek at the dead letters"),
    Need(WEB, PROJECT, "roles/monitoring.viewer", ("monitoring.timeSeries.list",),
         "show the subscription's backlog (Cloud Monitoring)"),
)  # fmt: skip

OK = "ok"
MISSING = "missing"


@dataclass(frozen=True)
class Check:
    subject: str  # what was checked: "workers: roles/storage.objectViewer on bucket gs://b", "API ...", "setting ..."
    status: str
    detail: str
    fix: str = ""  # the command that fixes it, when missing

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(frozen=True)
class Report:
    local: bool
    checks: tuple[Check, ...]
    provided: tuple[str, ...] = ()  # on the local stack: what it stands in for

    @property
    def missing(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


def _names(cfg: Config) -> dict[str, str]:
    return {
        PROJECT: cfg.project,
        BUCKET: f"gs://{cfg.bucket}",
        TOPIC: cfg.topic,
        SUBSCRIPTION: cfg.subscription,
        DEAD_LETTER_TOPIC: cfg.dead_letter_topic,
        DEAD_LETTER_SUBSCRIPTION: cfg.dead_letter_subscription,
        DATASET: cfg.dataset_id,
    }


def grant_command(cfg: Config, on: str, role: str, member: str) -> str:
    """The one command that grants `role` to `member` on the resource."""
    flags = f"--member={member} --role={role}"
    if on == PROJECT:
        return f"gcloud projects add-iam-policy-binding {cfg.project} {flags}"
    if on == BUCKET:
        return f"gcloud storage buckets add-iam-policy-binding gs://{cfg.bucket} {flags}"
    if on in (TOPIC, DEAD_LETTER_TOPIC):
        return f"gcloud pubsub topics add-iam-policy-binding {_names(cfg)[on]} --project={cfg.project} {flags}"
    if on in (SUBSCRIPTION, DEAD_LETTER_SUBSCRIPTION):
        return f"gcloud pubsub subscriptions add-iam-policy-binding {_names(cfg)[on]} --project={cfg.project} {flags}"
    project, dataset = cfg.dataset_id.split(".")
    return f"bq add-iam-policy-binding {flags} {project}:{dataset}"


Tester = Callable[[list[str]], "set[str] | None"]


def _testers(cfg: Config) -> dict[str, Tester]:
    """For each place a grant can be: which of the permissions the caller holds there (None: it does not exist)."""

    def tables(perms: list[str]) -> set[str] | None:
        held = [bigquery.table_permissions(cfg, t, perms) for t in (cfg.table_id, cfg.failures_table_id)]
        if any(h is None for h in held):
            return None
        return set.intersection(*(h for h in held if h is not None))

    return {
        PROJECT: lambda perms: projects.project_permissions(cfg, perms),
        BUCKET: lambda perms: gcs.bucket_permissions(cfg, cfg.bucket, perms),
        TOPIC: lambda perms: pubsub.iam_permissions(cfg, perms, topic=cfg.topic),
        DEAD_LETTER_TOPIC: lambda perms: pubsub.iam_permissions(cfg, perms, topic=cfg.dead_letter_topic),
        SUBSCRIPTION: lambda perms: pubsub.iam_permissions(cfg, perms, subscription=cfg.subscription),
        DEAD_LETTER_SUBSCRIPTION: lambda perms: pubsub.iam_permissions(
            cfg, perms, subscription=cfg.dead_letter_subscription
        ),
        DATASET: tables,
    }


def _check_need(cfg: Config, need: Need, testers: dict[str, Tester], member: str) -> Check:
    subject = f"{need.identity}: {need.role} on {need.on} {_names(cfg)[need.on]}"
    perms = list(need.permissions)
    held = testers[need.on](perms)
    where = need.on
    if held is None:  # not created yet: only a project-wide grant can cover it now
        held, where = projects.project_permissions(cfg, perms), PROJECT
    lacking = [p for p in perms if p not in held]
    if not lacking:
        return Check(subject, OK, f"holds {', '.join(perms)}" + (" (on the project)" if where != need.on else ""))
    detail = f"lacks {', '.join(lacking)}: cannot {need.why}"
    if where != need.on:
        detail += f"; the {need.on} does not exist yet: grant this once apply has created it"
    return Check(subject, MISSING, detail, grant_command(cfg, need.on, need.role, member))


def _check_services(cfg: Config) -> list[Check]:
    enabled = projects.services_enabled(cfg, SERVICES)
    return [
        Check(f"API {name}", OK, "enabled")
        if on
        else Check(f"API {name}", MISSING, "not enabled", f"gcloud services enable {name} --project={cfg.project}")
        for name, on in enabled.items()
    ]


def check_settings(cfg: Config) -> list[Check]:
    """What the settings must agree on; the same on every stack."""
    table_project, dataset, _ = cfg.table_id.split(".")
    failures_dataset = cfg.failures_table_id.rsplit(".", 1)[0]
    checks = [
        Check(f"setting GCP_LOCATION={cfg.location}", OK, "the bucket and the dataset are created there"),
        Check(f"setting BQ_TABLE={cfg.table_id}", OK, f"dataset {dataset} of project {table_project}")
        if table_project == cfg.project
        else Check(
            f"setting BQ_TABLE={cfg.table_id}",
            MISSING,
            f"its project {table_project} is not GCP_PROJECT={cfg.project}: grants and apply work on GCP_PROJECT",
            f"set BQ_TABLE={cfg.project}.{dataset}.{cfg.table_id.rsplit('.', 1)[-1]}",
        ),
        Check(f"setting BQ_FAILURES_TABLE={cfg.failures_table_id}", OK, "in the same dataset as BQ_TABLE")
        if failures_dataset == cfg.dataset_id
        else Check(
            f"setting BQ_FAILURES_TABLE={cfg.failures_table_id}",
            MISSING,
            f"not in BQ_TABLE's dataset {cfg.dataset_id}: apply creates and grants only that one",
            f"set BQ_FAILURES_TABLE={cfg.dataset_id}.classification_failures",
        ),
    ]
    if "." in cfg.bucket:
        checks.append(
            Check(
                f"setting BUCKET_NAME={cfg.bucket}",
                MISSING,
                "a bucket name with dots needs its domain verified, and breaks TLS of virtual-hosted URLs",
                f"set BUCKET_NAME={cfg.bucket.replace('.', '-')}",
            )
        )
    else:
        checks.append(Check(f"setting BUCKET_NAME={cfg.bucket}", OK, "a valid bucket name without dots"))
    return checks


def local_provides(cfg: Config) -> tuple[str, ...]:
    return (
        f"Cloud Storage: fake-gcs-server at {cfg.storage_emulator_host} (anonymous: no IAM; its event flags stand in "
        "for the notification config)",
        f"Pub/Sub: the Pub/Sub emulator at {cfg.pubsub_emulator_host} (anonymous: no IAM, no service agents)",
        f"BigQuery: bqemulator at {cfg.bigquery_emulator_host} (anonymous: no IAM; streaming needs no billing)",
        "APIs: nothing to enable; identities: every process runs with the same anonymous access",
    )


def preflight_run(cfg: Config, *, identities: tuple[str, ...] = IDENTITIES, member: str | None = None) -> Report:
    """Every check, never stopping at the first missing one. Locally only the settings are checked."""
    settings = check_settings(cfg)
    if cfg.local:
        return Report(local=True, checks=tuple(settings), provided=local_provides(cfg))
    member = member or projects.caller_member(cfg) or "MEMBER"
    testers = _testers(cfg)
    grants = [_check_need(cfg, n, testers, member) for n in NEEDS if n.identity in identities]
    return Report(local=False, checks=tuple([*_check_services(cfg), *grants, *settings]))


def roles_table() -> list[str]:
    """The README's table of roles, one row per identity, from NEEDS (so that the two cannot drift)."""
    rows = ["| who | roles (on what) |", "|---|---|"]
    for identity in IDENTITIES:
        grants = [f"`{n.role}` on the {n.on}" for n in NEEDS if n.identity == identity]
        rows.append(f"| {identity} | {', '.join(grants)} |")
    return rows
