"""The whole data path with real processes: upload -> notification -> listener -> RQ -> worker -> BigQuery."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from skimage import data

from tests.helpers import failures_for, rows_for, wait_for, wait_for_all

pytestmark = pytest.mark.e2e

CATS = {"Egyptian cat", "tiger cat", "tabby", "Persian cat", "Siamese cat", "lynx"}
EXPECTED_TOP1 = {
    "chelsea.png": CATS,
    "coffee.png": {"espresso", "cup", "coffee mug"},
    "rocket.jpg": {"missile", "projectile"},
}


def test_photos_become_rows_and_bad_uploads_become_failures(cfg, pipeline, photos, upload, prefix):
    names = {f"{prefix}{name}": blob for name, blob in photos.items()}
    # Names with slashes, spaces and unicode must work as they are.
    names[f"{prefix}sub dir/chât ünïcode.png"] = photos["chelsea.png"]
    for name, blob in names.items():
        upload(name, blob, "image/png" if name.endswith(".png") else "image/jpeg")
    truncated = io.BytesIO()
    Image.fromarray(data.rocket()).save(truncated, "JPEG")
    bad = {f"{prefix}notes.txt": b"this is not an image\n", f"{prefix}truncated.jpg": truncated.getvalue()[:4000]}
    for name, blob in bad.items():
        upload(name, blob)

    rows = wait_for_all(lambda: rows_for(cfg, list(names)), timeout=60)
    failures = wait_for_all(lambda: failures_for(cfg, list(bad)), timeout=30)
    assert all(rows.values()), f"rows missing: {rows}"
    assert all(failures.values()), f"failure records missing: {failures}"

    for name, found in rows.items():
        assert len(found) == 1, f"{name}: {len(found)} rows"
        row = found[0]
        labels = [c["classification"] for c in row["classifications"]]
        confidences = [c["confidence"] for c in row["classifications"]]
        assert len(labels) == 5
        assert all(0.0 <= c <= 1.0 for c in confidences) and confidences == sorted(confidences, reverse=True)
        expected = EXPECTED_TOP1[name.rsplit("/", 1)[-1]] if not name.endswith("ünïcode.png") else CATS
        assert labels[0] in expected, f"{name}: top-1 {labels[0]!r}"
        assert row["bucket"] == cfg.bucket and row["generation"] > 0 and row["size_bytes"] == len(names[name])
        assert row["model"].startswith("efficientnet_lite0") and row["upload"] <= row["processed_at"]

    assert failures[f"{prefix}notes.txt"][0]["reason_code"] == "not_an_image"
    assert failures[f"{prefix}truncated.jpg"][0]["reason_code"] == "undecodable"
    assert "truncated" in failures[f"{prefix}truncated.jpg"][0]["reason"]
    assert all(len(v) == 1 for v in failures.values())
    assert pipeline["worker"].alive() and pipeline["listener"].alive()


def test_a_jpeg_uploaded_by_gcloud_with_gzip_encoding_becomes_a_row(cfg, pipeline, photos, prefix, gcloud, tmp_path):
    """`gcloud storage cp --gzip-local-all` (and `gsutil cp -Z`) store gzip: the row is of the image inside."""
    path = tmp_path / "rocket.jpg"
    path.write_bytes(photos["rocket.jpg"])
    name = f"{prefix}rocket.jpg"
    gcloud("storage", "cp", "--gzip-local-all", str(path), f"gs://{cfg.bucket}/{name}")
    rows = wait_for_all(lambda: rows_for(cfg, [name]), timeout=60)
    assert rows[name][0]["classifications"][0]["classification"] in EXPECTED_TOP1["rocket.jpg"]
    assert rows[name][0]["size_bytes"] == len(photos["rocket.jpg"]) and not failures_for(cfg, [name])[name]


def test_a_redelivered_notification_does_not_double_the_row(cfg, pipeline, photos, upload, prefix):
    from classifier.cloud import pubsub

    name = f"{prefix}chelsea-twice.png"
    generation = upload(name, photos["chelsea.png"], "image/png")
    assert wait_for_all(lambda: rows_for(cfg, [name]), timeout=60)[name]
    attributes = {
        "eventType": "OBJECT_FINALIZE",
        "payloadFormat": "JSON_API_V1",
        "bucketId": cfg.bucket,
        "objectId": name,
        "objectGeneration": str(generation),
        "eventTime": "2026-11-25T00:00:00Z",
    }
    for _ in range(3):  # at-least-once delivery, as Pub/Sub may do it
        pubsub.publish(cfg, cfg.topic, b"{}", **attributes)
    log = pipeline["listener"].log_path
    seen = f"duplicate notification for {cfg.bucket}/{name}#{generation}"
    assert wait_for(lambda: log.read_text().count(seen) >= 3, timeout=30), "the listener never saw the redeliveries"
    assert len(rows_for(cfg, [name])[name]) == 1
