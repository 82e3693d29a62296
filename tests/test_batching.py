"""Batching across jobs: one forward pass for several images, and still one outcome per image, on its own."""

from __future__ import annotations

from classifier import jobs, runtime


def test_a_batch_keeps_each_images_outcome_its_own(cfg, stack, photos, prefix, upload):
    good = {f"{prefix}{name}": upload(f"{prefix}{name}", data) for name, data in photos.items()}
    bad = f"{prefix}notes.jpg"
    objects = [(cfg.bucket, name, generation) for name, generation in good.items()]
    objects += [(cfg.bucket, bad, upload(bad, b"plain text")), (cfg.bucket, f"{prefix}gone.jpg", 12345)]

    assert runtime.prefetch(objects) == len(good)
    results = {name: jobs.classify_object(bucket, name, generation) for bucket, name, generation in objects}

    clf = runtime.get_classifier()
    for name in good:
        alone = clf.classify(photos[name.removeprefix(prefix)])
        assert (results[name]["outcome"], results[name]["top"]) == ("row", alone[0].classification)
    assert results[bad]["reason_code"] == "not_an_image"
    assert results[f"{prefix}gone.jpg"]["reason_code"] == "object_gone"


def test_a_job_without_a_prefetched_image_does_its_own_work(cfg, stack, photos, prefix, upload):
    runtime.prefetch([])
    generation = upload(f"{prefix}rocket.jpg", photos["rocket.jpg"])
    assert jobs.classify_object(cfg.bucket, f"{prefix}rocket.jpg", generation)["outcome"] == "row"
