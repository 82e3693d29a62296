"""The review queue's pure rules: which rows queue up, the thresholds' settings and per-visit narrowing, the labels."""

from __future__ import annotations

import pytest

from classifier.config import ConfigError
from controlplane.review import services
from controlplane.review.labels import canonical_label, imagenet_labels
from controlplane.review.rules import Thresholds, candidate_reasons, live_model_of, thresholds_from_env, top_two


def labels(*confidences: float) -> list[dict[str, object]]:
    return [{"classification": f"label {i}", "confidence": c} for i, c in enumerate(confidences)]


def test_a_row_queues_up_when_its_top1_is_low_or_close_to_its_top2() -> None:
    rule = Thresholds(confidence_below=0.5, margin_below=0.1)
    assert candidate_reasons(labels(0.9, 0.05), rule) == []
    assert candidate_reasons(labels(0.5, 0.3), rule) == []  # neither below: 0.5 is not under 0.5, 0.2 apart
    assert candidate_reasons(labels(0.49, 0.2), rule) == ["top-1 49.0%, under 50%"]
    assert candidate_reasons(labels(0.55, 0.5), rule) == ["top-1 only 5.0% ahead of top-2, under 10%"]
    assert len(candidate_reasons(labels(0.3, 0.25), rule)) == 2
    assert candidate_reasons(labels(0.95), rule) == []  # a single label: nothing close to it
    assert candidate_reasons([], rule) == ["top-1 0.0%, under 50%", "top-1 only 0.0% ahead of top-2, under 10%"]
    assert top_two(labels(0.7, 0.2, 0.1)) == (0.7, 0.2)


def test_both_thresholds_at_zero_queue_nothing() -> None:
    off = Thresholds(confidence_below=0.0, margin_below=0.0)
    assert candidate_reasons(labels(0.01, 0.01), off) == []


def test_the_thresholds_settings_are_strict_and_name_the_variable() -> None:
    assert thresholds_from_env({}) == Thresholds(0.5, 0.1)
    assert thresholds_from_env({"REVIEW_CONFIDENCE_BELOW": "0.3", "REVIEW_MARGIN_BELOW": " 0.05 "}) == Thresholds(
        0.3, 0.05
    )
    for env, name in [
        ({"REVIEW_CONFIDENCE_BELOW": "half"}, "REVIEW_CONFIDENCE_BELOW"),
        ({"REVIEW_CONFIDENCE_BELOW": "50"}, "REVIEW_CONFIDENCE_BELOW"),  # a percentage, not a probability
        ({"REVIEW_MARGIN_BELOW": "-0.1"}, "REVIEW_MARGIN_BELOW"),
        ({"REVIEW_MARGIN_BELOW": "nan"}, "REVIEW_MARGIN_BELOW"),
    ]:
        with pytest.raises(ConfigError, match=name):
            thresholds_from_env(env)


def test_a_visit_may_narrow_the_thresholds_never_widen_them() -> None:
    configured = Thresholds(0.5, 0.1)
    assert configured.narrowed() == configured
    assert configured.narrowed(confidence_below="0.2", margin_below="") == Thresholds(0.2, 0.1)
    assert configured.narrowed(confidence_below="0", margin_below="0.05") == Thresholds(0.0, 0.05)
    for fields, why in [
        ({"confidence_below": "0.8"}, "confidence_below=0.8 must be between 0 and 0.5"),
        ({"margin_below": "-1"}, "margin_below=-1 must be between 0 and 0.1"),
        ({"margin_below": "nan"}, "margin_below=nan must be between"),
        ({"confidence_below": "1e400"}, "confidence_below=inf must be between"),
        ({"confidence_below": "<script>"}, "is not a number"),
    ]:
        with pytest.raises(ValueError, match=why):
            configured.narrowed(**fields)


def test_the_labels_are_the_1000_imagenet_classes_and_a_choice_must_be_one() -> None:
    names = imagenet_labels()
    assert len(names) == 1000 == len(set(names))
    assert names[0] == "tench" and names[281] == "tabby" and names[967] == "espresso"
    assert canonical_label("tabby") == "tabby"
    assert canonical_label("  Coffee   MUG ") == "coffee mug"
    assert canonical_label("espresso maker") == "espresso maker"
    for text in ("", "   ", "tabb", "tabby cat", "espresso\x00", "<script>", "x" * 500):
        assert canonical_label(text) is None, text


def test_the_true_label_of_each_verdict() -> None:
    assert services._true_label("correct", "whatever was typed", "tabby") == "tabby"
    assert services._true_label("unclear", "tabby", "tabby") == ""
    assert services._true_label("wrong", "tiger CAT", "tabby") == "tiger cat"
    with pytest.raises(services.ReviewRefused, match="not one of the 1000 ImageNet labels"):
        services._true_label("wrong", "a cat", "tabby")
    with pytest.raises(services.ReviewRefused, match="the model's own label"):
        services._true_label("wrong", "Tabby", "tabby")


def test_the_default_model_is_the_live_one_as_its_rows_name_it() -> None:
    seen = [
        {"model": "resnet50 (resnet50-19c8e357.pth)", "rows": 90},
        {"model": "efficientnet_lite0 (efficientnet-lite0-57934424.pth)", "rows": 10},
        {"model": "efficientnet_lite0", "rows": 5},
    ]
    assert live_model_of(seen, "efficientnet_lite0") == "efficientnet_lite0 (efficientnet-lite0-57934424.pth)"
    assert live_model_of(seen, "resnet50") == "resnet50 (resnet50-19c8e357.pth)"
    assert live_model_of(seen, "resnet") == "resnet"  # a prefix of another name is not that model
    assert live_model_of([], "resnet50") == "resnet50"
