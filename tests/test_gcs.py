"""Cloud Storage downloads on the local stack: fake-gcs-server stores Content-Encoding and hashes as GCS does."""

from __future__ import annotations

import dataclasses
import gzip
import uuid

import pytest

from classifier.cloud import gcs
from classifier.config import Config


def upload_gzip(cfg: Config, name: str, data: bytes, content_type: str) -> int:
    """What `gsutil cp -Z` sends: the gzip of the file, stored with Content-Encoding: gzip."""
    blob = gcs.client(cfg).bucket(cfg.bucket).blob(name)
    blob.content_encoding = "gzip"
    blob.upload_from_string(gzip.compress(data), content_type=content_type)
    return int(blob.generation)


def test_a_gzip_encoded_object_downloads_as_the_image_with_its_stored_crc_checked(cfg, stack, photos):
    """The CRC32C in the response is of the stored (compressed) bytes: checked on those, then inflated."""
    name = f"t-{uuid.uuid4().hex[:8]}/rocket.jpg"
    generation = upload_gzip(cfg, name, photos["rocket.jpg"], "image/jpeg")
    blob = gcs.download(cfg, bucket=cfg.bucket, name=name, generation=generation)
    assert blob.data == photos["rocket.jpg"] and blob.size == len(photos["rocket.jpg"])
    assert blob.content_type == "image/jpeg"


def test_a_gzip_bomb_is_too_large_once_inflated_and_is_never_inflated_whole(cfg, stack):
    small = dataclasses.replace(cfg, max_image_bytes=1024 * 1024)
    name = f"t-{uuid.uuid4().hex[:8]}/bomb.jpg"
    generation = upload_gzip(cfg, name, bytes(64 * 1024 * 1024), "image/jpeg")  # 64 MiB of zeros: ~64 KiB stored
    with pytest.raises(gcs.TooLarge, match="once decompressed"):
        gcs.download(small, bucket=cfg.bucket, name=name, generation=generation)


def test_gcloud_storage_cp_gzip_local_all_is_downloaded_as_the_image(cfg, gcloud, photos, tmp_path):
    path = tmp_path / "rocket.jpg"
    path.write_bytes(photos["rocket.jpg"])
    name = f"t-{uuid.uuid4().hex[:8]}/rocket.jpg"
    gcloud("storage", "cp", "--gzip-local-all", str(path), f"gs://{cfg.bucket}/{name}")
    current = gcs.object_current(cfg, name=name)
    assert current is not None
    assert gcs.client(cfg).bucket(cfg.bucket).get_blob(name).content_encoding == "gzip"  # stored compressed
    blob = gcs.download(cfg, bucket=cfg.bucket, name=name, generation=current.generation)
    assert blob.data == photos["rocket.jpg"]


def test_gunzip_bounded_hands_on_what_is_not_gzip():
    assert gcs.gunzip_bounded(b"\xff\xd8 not gzip", limit=100) == b"\xff\xd8 not gzip"
    assert gcs.gunzip_bounded(gzip.compress(b"x" * 100), limit=100) == b"x" * 100
    with pytest.raises(gcs.TooLarge):
        gcs.gunzip_bounded(gzip.compress(b"x" * 101), limit=100)
