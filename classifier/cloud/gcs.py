"""Cloud Storage: the official client, pointed at fake-gcs-server when the local stack is on."""

from __future__ import annotations

import base64
import contextlib
import functools
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import google_crc32c
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from classifier.cloud import http
from classifier.config import Config


class ObjectGone(Exception):
    """The notified generation no longer exists (overwritten or deleted since)."""


class TooLarge(Exception):
    pass


class DataCorruption(Exception):
    """The downloaded bytes do not match the object's checksum."""


@dataclass(frozen=True)
class Blob:
    data: bytes
    content_type: str | None
    size: int
    time_created: datetime | None


# Every request has a deadline: the client's default for storage is 60 s per request, with its own retries on
# idempotent calls (DEFAULT_RETRY, conditional on preconditions for writes).
CALL_TIMEOUT_S = 60.0


@functools.cache
def client(cfg: Config) -> storage.Client:
    if cfg.local:
        made = storage.Client(project=cfg.project, credentials=AnonymousCredentials())
    else:
        made = storage.Client(project=cfg.project)
    http.read_environment_once(made._http)  # the client's own AuthorizedSession, made on first use
    return made


def download(cfg: Config, *, bucket: str, name: str, generation: int, created: bool = False) -> Blob:
    """Exactly the notified generation, never whatever is current, in one request.

    The media GET's headers carry the content type, the content encoding and the whole object's CRC32C, so no
    metadata GET is needed; asking for one byte past MAX_IMAGE_BYTES tells an oversized object without reading it
    all. A ranged answer is not checksummed by the client library, so the CRC32C is checked here. The creation time
    is only in the metadata: `created=True` (a job with no event time) pays a second request, as do empty and
    oversized objects.

    The bytes come as stored (raw): for a gzip-encoded object (`gsutil cp -Z`, `gcloud storage cp --gzip-local-all`)
    the CRC32C is of the compressed bytes, so it is checked on those and the image is decompressed after, bounded.
    """
    blob = client(cfg).bucket(bucket).blob(name, generation=generation)
    try:
        try:
            # One read of the whole (range-bounded) answer: streamed, the library reads it 8 KiB at a time, a Python
            # round of urllib3 and checksum calls per 8 KiB (~0.9 of the ~2.8 CPU ms a 350 KB download took here).
            data = blob.download_as_bytes(
                start=0, end=cfg.max_image_bytes, raw_download=True, single_shot_download=True
            )
        except gexc.RequestRangeNotSatisfiable:  # what a range request on an empty object gets
            data = b""
        # Metadata only where needed, and after the download: a reloaded blob downloads from the server's
        # mediaLink, which fake-gcs-server gives without the generation.
        if created or not data or len(data) > cfg.max_image_bytes:
            blob.reload()
        if len(data) > cfg.max_image_bytes:
            raise TooLarge(f"{blob.size} bytes is over MAX_IMAGE_BYTES={cfg.max_image_bytes}")
    except gexc.NotFound:
        raise ObjectGone(f"gs://{bucket}/{name}#{generation} no longer exists") from None
    if blob.crc32c is not None and blob.crc32c != _crc32c(data):
        # Transient by nature (a corrupted transfer): rq retries the job, as for any other download error.
        raise DataCorruption(f"gs://{bucket}/{name}#{generation}: CRC32C mismatch after download")
    if blob.content_encoding == "gzip":
        data = gunzip_bounded(data, limit=cfg.max_image_bytes)
    return Blob(data=data, content_type=blob.content_type, size=len(data), time_created=blob.time_created)


def gunzip_bounded(data: bytes, *, limit: int) -> bytes:
    """The decompressed bytes, never more than `limit` of them: a few kilobytes of gzip can expand to gigabytes.

    A stream that is not gzip, or cut short, is handed on as it is: decoding then says what is wrong with it."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        return data
    if len(out) > limit:
        raise TooLarge(f"over MAX_IMAGE_BYTES={limit} once decompressed (gzip content encoding, {len(data)} stored)")
    return out


def _crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


@dataclass(frozen=True)
class ObjectInfo:
    name: str
    generation: int
    content_type: str | None
    size: int | None
    time_created: datetime | None
    content_encoding: str | None = None


def object_read(
    cfg: Config, *, bucket: str, name: str, generation: int, chunk_size: int = 256 * 1024
) -> tuple[ObjectInfo, Iterator[bytes]]:
    """Exactly one generation, as chunks: for streaming an object to a browser without holding it whole.

    The chunks are the stored bytes (gzip stays gzip: `content_encoding` says so, and `size` counts them), so the
    browser is told the encoding instead of this process inflating an object of any size."""
    blob = client(cfg).bucket(bucket).get_blob(name, generation=generation)
    if blob is None:
        raise ObjectGone(f"gs://{bucket}/{name}#{generation} no longer exists")
    info = ObjectInfo(
        blob.name, int(blob.generation), blob.content_type, blob.size, blob.time_created, blob.content_encoding
    )

    def chunks() -> Iterator[bytes]:
        try:
            with blob.open("rb", chunk_size=chunk_size, raw_download=True) as reader:
                while chunk := reader.read(chunk_size):
                    yield chunk
        except gexc.NotFound:
            return

    return info, chunks()


def object_current(cfg: Config, *, name: str) -> ObjectInfo | None:
    """The live generation of a name in the configured bucket, or None."""
    blob = client(cfg).bucket(cfg.bucket).get_blob(name)
    if blob is None:
        return None
    return ObjectInfo(blob.name, int(blob.generation), blob.content_type, blob.size, blob.time_created)


def upload(cfg: Config, *, name: str, data: bytes, content_type: str | None = None) -> int:
    """Upload to the configured bucket; returns the new generation."""
    blob = client(cfg).bucket(cfg.bucket).blob(name)
    blob.upload_from_string(data, content_type=content_type or "application/octet-stream")
    return int(blob.generation)


@dataclass(frozen=True)
class Listed:
    name: str
    generation: int
    size: int | None
    time_created: datetime | None


def list_pages(cfg: Config, *, prefix: str | None = None, page_size: int = 1000) -> Iterator[list[Listed]]:
    """The live generation of every object, a page at a time (one list request per page, never all in memory)."""
    blobs = client(cfg).list_blobs(cfg.bucket, prefix=prefix or None, page_size=page_size)
    for page in blobs.pages:
        yield [Listed(b.name, int(b.generation), b.size, b.time_created) for b in page]


def bucket_create(cfg: Config, name: str) -> bool:
    """True when created (in GCP_LOCATION), False when it already existed: creating is idempotent."""
    try:
        client(cfg).create_bucket(name, location=cfg.location)
    except gexc.Conflict:
        return False
    return True


# --- Live state and teardown, for the control plane's plan/apply/destroy ---

NOTIFICATION_EVENT_TYPES = ("OBJECT_FINALIZE",)
NOTIFICATION_PAYLOAD_FORMAT = "JSON_API_V1"


@dataclass(frozen=True)
class NotificationConfig:
    """A bucket's notification configuration: which events it publishes to which topic (not an event itself)."""

    notification_id: str
    topic: str  # full path: projects/P/topics/T
    event_types: tuple[str, ...]
    payload_format: str
    prefix: str | None


def bucket_get(cfg: Config, name: str) -> dict[str, str | None] | None:
    """The bucket's settings, or None when it does not exist."""
    bucket = client(cfg).lookup_bucket(name)
    if bucket is None:
        return None
    return {"name": bucket.name, "location": bucket.location}


def object_count(cfg: Config, name: str, *, cap: int = 10_000) -> int:
    """How many objects the bucket holds (counting stops at `cap`); 0 when the bucket is gone."""
    try:
        return sum(1 for _ in client(cfg).list_blobs(name, max_results=cap))
    except gexc.NotFound:
        return 0


# Objects deleted per batch request (Cloud Storage allows 100 calls in one): a bucket of a million objects is 10,000
# requests instead of a million, and each batch is a point to report progress and renew the infra lock.
DELETE_BATCH = 100


def bucket_delete(
    cfg: Config, name: str, *, delete_objects: bool, on_progress: Callable[[int], None] | None = None
) -> int:
    """Delete the bucket (and, when asked, every object version in it first, a batch at a time); returns the objects
    deleted. `on_progress` hears the running count after each batch."""
    deleted = 0
    with contextlib.suppress(gexc.NotFound):  # already gone: deleting is idempotent
        if delete_objects:
            for page in client(cfg).list_blobs(name, versions=True, page_size=1000, timeout=CALL_TIMEOUT_S).pages:
                blobs = list(page)
                for start in range(0, len(blobs), DELETE_BATCH):
                    chunk = blobs[start : start + DELETE_BATCH]
                    _delete_chunk(cfg, chunk)
                    deleted += len(chunk)
                    if on_progress:
                        on_progress(deleted)
        client(cfg).bucket(name).delete(timeout=CALL_TIMEOUT_S)
    return deleted


def _delete_chunk(cfg: Config, blobs: list[storage.Blob]) -> None:
    """One batch request; fake-gcs-server has no batch endpoint, so locally one request per object.

    A batch raises the last error of its calls: then each object is deleted on its own, where "not found" (deleted
    meanwhile) is success and any other error is raised for what it is."""
    if not cfg.local:
        try:
            with client(cfg).batch():
                for blob in blobs:
                    blob.delete(timeout=CALL_TIMEOUT_S)
            return
        except gexc.GoogleAPICallError:
            pass
    for blob in blobs:
        with contextlib.suppress(gexc.NotFound):
            blob.delete(timeout=CALL_TIMEOUT_S)


def notifications_list(cfg: Config, bucket: str) -> list[NotificationConfig]:
    return [
        NotificationConfig(
            notification_id=str(n.notification_id),
            topic=f"projects/{n.topic_project}/topics/{n.topic_name}",
            event_types=tuple(n.event_types or ()),
            payload_format=str(n.payload_format),
            prefix=n.blob_name_prefix,
        )
        for n in client(cfg).bucket(bucket).list_notifications()
    ]


# Cloud Storage checks that its service agent may publish to the topic when the config is created, and apply has
# only just granted that: IAM changes take up to a few minutes to propagate (Google documents 7 at most, usually
# under 1). Until then the insert is refused with 403, or 400 "... does not have permission to it".
PROPAGATION_BUDGET_S = 300.0
PROPAGATION_FIRST_WAIT_S = 2.0
PROPAGATION_MAX_WAIT_S = 30.0


def _not_yet_permitted(exc: gexc.GoogleAPICallError) -> bool:
    return isinstance(exc, gexc.Forbidden) or (isinstance(exc, gexc.BadRequest) and "permission" in str(exc))


def notification_create(
    cfg: Config,
    bucket: str,
    *,
    topic_project: str,
    topic: str,
    on_wait: Callable[[str], None] | None = None,
    budget_s: float = PROPAGATION_BUDGET_S,
) -> str:
    """OBJECT_FINALIZE events of the whole bucket, as JSON_API_V1, to the topic; returns the new config's id.

    A refusal for want of permission is retried with backoff for `budget_s` (IAM propagation); each wait is
    told to `on_wait` before it starts. Any other error, or the same one after the budget, is raised."""
    deadline = time.monotonic() + budget_s
    wait = PROPAGATION_FIRST_WAIT_S
    while True:
        notification = (
            client(cfg)
            .bucket(bucket)
            .notification(
                topic_name=topic,
                topic_project=topic_project,
                event_types=list(NOTIFICATION_EVENT_TYPES),
                payload_format=NOTIFICATION_PAYLOAD_FORMAT,
            )
        )
        try:
            notification.create(timeout=CALL_TIMEOUT_S)
            return str(notification.notification_id)
        except gexc.GoogleAPICallError as exc:
            left = deadline - time.monotonic()
            if not _not_yet_permitted(exc) or left <= 0:
                raise
            wait = min(wait, left)
            if on_wait:
                on_wait(f"the service agent may not publish yet (IAM propagates): retrying in {wait:.0f} s ({exc})")
            time.sleep(wait)
            wait = min(wait * 2, PROPAGATION_MAX_WAIT_S)


def notification_delete(cfg: Config, bucket: str, notification_id: str) -> None:
    with contextlib.suppress(gexc.NotFound):
        client(cfg).bucket(bucket).get_notification(notification_id).delete()


def service_agent_email(cfg: Config) -> str:
    """The Cloud Storage service agent of the project: it publishes the bucket's notifications."""
    return str(client(cfg).get_service_account_email(project=cfg.project))


def bucket_permissions(cfg: Config, bucket: str, permissions: Sequence[str]) -> set[str] | None:
    """Which of `permissions` the caller holds on the bucket; None when the bucket does not exist."""
    try:
        return set(client(cfg).bucket(bucket).test_iam_permissions(list(permissions), timeout=CALL_TIMEOUT_S))
    except gexc.NotFound:
        return None
