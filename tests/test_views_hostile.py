"""The web side of a hostile world: thumbnails of hostile uploads, hostile names, and django-rq's job pages."""

from __future__ import annotations

import dataclasses
import io
import uuid
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse
from django.utils.http import content_disposition_header
from PIL import Image

from classifier.cloud import gcs
from classifier.config import Config
from classifier.queue import enqueue_classification, queue
from controlplane import views


def _png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, "PNG")
    return out.getvalue()


def _tiff() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 0, 0)).save(out, "TIFF")
    return out.getvalue()


@pytest.mark.parametrize(
    ("kind", "data", "content_type"),
    [
        ("not-an-image", b"<script>alert(1)</script>", "text/html"),
        ("tiff", _tiff(), "image/tiff"),
        ("over-the-pixel-limit", _png((1200, 1000), "P"), "image/png"),
    ],
    ids=["not-an-image", "tiff", "over-the-pixel-limit"],
)
def test_a_bad_or_too_large_image_gets_a_cached_placeholder(
    viewer: Client, cfg: Config, stack: Any, settings: Any, kind: str, data: bytes, content_type: str
) -> None:
    """Before: a 404 (or, for a TIFF, Pillow's whole TIFF decoder at work), and the download repeated on every view."""
    settings.SIGHTLINE = dataclasses.replace(cfg, max_image_pixels=1_000_000)
    name = f"t-{uuid.uuid4().hex[:8]}/{kind}"
    generation = gcs.upload(cfg, name=name, data=data, content_type=content_type)
    ref = {"bucket": cfg.bucket, "name": name, "generation": generation, "size": "thumb"}
    with mock.patch.object(gcs, "download", autospec=True, side_effect=gcs.download) as download:
        first = viewer.get(reverse("object_image"), ref)
        second = viewer.get(reverse("object_image"), ref)
    assert first.status_code == second.status_code == 200
    assert first["Content-Type"] == "image/jpeg" and first.content == second.content == views._placeholder()
    assert download.call_count == 1  # the placeholder is cached like a thumbnail


def test_an_extreme_shape_gets_a_thumbnail_of_its_shape(viewer: Client, cfg: Config, stack: Any) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}/ribbon.png"
    generation = gcs.upload(cfg, name=name, data=_png((2, 50_000), "P"), content_type="image/png")
    ref = {"bucket": cfg.bucket, "name": name, "generation": generation, "size": "thumb"}
    thumb = viewer.get(reverse("object_image"), ref)
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size == (1, 224)


HOSTILE_NAMES = [
    'quote"; filename="evil.html',
    "line\r\nSet-Cookie: sessionid=stolen",
    "ünïcødé 猫 🐈.png",
    "back\\slash.png",
]


@pytest.mark.parametrize("filename", HOSTILE_NAMES)
def test_the_download_name_is_encoded_not_pasted(viewer: Client, cfg: Config, db: Any, filename: str) -> None:
    """Before: the name went into the header by hand (a newline made a 500, unicode became '?')."""
    name = f"dir/{filename}"
    info = gcs.ObjectInfo(name, 7, "text/plain", 3, datetime.now(UTC))
    with mock.patch.object(gcs, "object_read", autospec=True, return_value=(info, iter([b"abc"]))):
        response = viewer.get(reverse("object_image"), {"bucket": cfg.bucket, "name": name, "generation": 7})
    assert response.status_code == 200
    assert response["Content-Disposition"] == content_disposition_header(True, filename)
    assert "\n" not in response["Content-Disposition"] and "\r" not in response["Content-Disposition"]
    assert "Set-Cookie" not in response.headers


def test_django_rq_job_pages_read_our_json_jobs(staff: Client, cfg: Config, stack: Any) -> None:
    """Before: every job page answered 500 (django-rq unpickled our JSON jobs: invalid load key '{')."""
    name = f"t-{uuid.uuid4().hex[:8]}/queued.png"
    job_id, enqueued = enqueue_classification(cfg, bucket=cfg.bucket, name=name, generation=1, event_time=None)
    assert enqueued
    try:
        index = 0  # our one queue
        listing = staff.get(reverse("django_rq:jobs", args=[index]))
        assert listing.status_code == 200 and job_id in listing.content.decode()
        page = staff.get(reverse("django_rq:job_detail", args=[index, job_id]))
        assert page.status_code == 200
        assert name in page.content.decode()
    finally:
        queue(cfg).remove(job_id)
