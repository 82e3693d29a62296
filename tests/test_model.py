"""The classifier on real photos, its weight loading from files, and its refusals of bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torchvision.models import resnet50

from classifier import images, model
from classifier.config import Config

CATS = {"Egyptian cat", "tiger cat", "tabby", "Persian cat", "lynx"}


@pytest.fixture(scope="module")
def lite0(cfg: Config) -> model.Classifier:
    return model.load(dataclasses.replace(cfg, model="efficientnet_lite0"))


@pytest.mark.parametrize(
    ("photo", "expected"),
    [("chelsea.png", CATS), ("coffee.png", {"espresso"}), ("rocket.jpg", {"missile", "projectile"})],
)
def test_top5_on_real_photos(lite0, photos, photo, expected):
    predictions = lite0.classify(photos[photo])
    assert len(predictions) == model.TOP_K
    assert predictions[0].classification in expected
    confidences = [p.confidence for p in predictions]
    assert confidences == sorted(confidences, reverse=True) and all(0 <= c <= 1 for c in confidences)
    assert sum(confidences) <= 1.0 + 1e-6


def test_batch_gives_the_same_answers_as_one_by_one(lite0, photos):
    tensors = [lite0.preprocess(blob) for blob in photos.values()]
    batched = lite0.predict(tensors)
    single = [lite0.predict([t])[0] for t in tensors]
    assert [b[0].classification for b in batched] == [s[0].classification for s in single]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"plain text, not an image", "not_an_image"),
    ],
)
def test_bad_input_is_a_readable_refusal(lite0, data, code):
    with pytest.raises(images.BadImage) as excinfo:
        lite0.classify(data)
    assert excinfo.value.code == code and excinfo.value.reason


def test_truncated_jpeg_is_undecodable(lite0, photos):
    with pytest.raises(images.BadImage) as excinfo:
        lite0.classify(photos["rocket.jpg"][:5000])
    assert excinfo.value.code == "undecodable"


def test_auto_prefers_resnet50_weights_when_present(cfg, tmp_path):
    auto = dataclasses.replace(cfg, model="auto", models_dir=tmp_path)
    assert model.resolve_model_name(auto) == "efficientnet_lite0"
    torch.save(resnet50().state_dict(), tmp_path / "resnet50-0676ba61.pth")
    assert model.resolve_model_name(auto) == "resnet50"
    clf = model.load(auto)
    assert clf.name == "resnet50 (resnet50-0676ba61.pth)"
    assert len(clf.predict([torch.zeros(3, model.CROP, model.CROP)])[0]) == model.TOP_K


def test_missing_resnet50_weights_say_how_to_get_them(cfg, tmp_path):
    with pytest.raises(model.ModelUnavailable, match="fetchweights"):
        model.load(dataclasses.replace(cfg, model="resnet50", models_dir=tmp_path))
