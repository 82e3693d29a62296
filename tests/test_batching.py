"""Batching across jobs: one forward pass for several images, and still one outcome per image, on its own."""

from __future__ import annotations

import pytest

from classifier import jobs, runtime
from classifier.cloud import gcs

QUIET_BUCKET = "sightline-test-batching"  # no notifications: the session's workers never race these jobs


@pytest.fixture
def quiet_upload(cfg, stack):
    gcs.bucket_create(cfg, QUIET_BUCKET)

    def _upload(name: str, data: bytes) -> int:
        blob = gcs.client(cfg).bucket(QUIET_BUCKET).blob(name)
        blob.upload_from_string(data)
        return int(blob.generation)

    return _upload


def test_a_batch_keeps_each_images_outcome_its_own(cfg, photos, prefix, quiet_upload):
    good = {f"{prefix}{name}": quiet_upload(f"{prefix}{name}", data) for name, data in photos.items()}
    bad = f"{prefix}notes.jpg"
    objects = [(QUIET_BUCKET, name, generation) for name, generation in good.items()]
    objects += [(QUIET_BUCKET, bad, quiet_upload(bad, b"plain text")), (QUIET_BUCKET, f"{prefix}gone.jpg", 12345)]

    assert runtime.prefetch(objects) == len(good)
    results = {name: jobs.classify_object(bucket, name, generation) for bucket, name, generation in objects}

    clf = runtime.get_classifier()
    for name in good:
        alone = clf.classify(photos[name.removeprefix(prefix)])
        assert (results[name]["outcome"], results[name]["top"]) == ("row", alone[0].classification)
    assert results[bad]["reason_code"] == "not_an_image"
    assert results[f"{prefix}gone.jpg"]["reason_code"] == "object_gone"


def test_a_job_without_a_prefetched_image_does_its_own_work(cfg, photos, prefix, quiet_upload):
    runtime.prefetch([])
    generation = quiet_upload(f"{prefix}rocket.jpg", photos["rocket.jpg"])
    assert jobs.classify_object(QUIET_BUCKET, f"{prefix}rocket.jpg", generation)["outcome"] == "row"
