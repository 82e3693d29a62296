"""The three fields that take a fraction (the list's confidence bounds, the insight threshold, the review queue's
narrowed thresholds) parse alike through controlplane.fraction and keep each page's own words."""

from __future__ import annotations

import pytest

from controlplane import views
from controlplane.fraction import fraction
from controlplane.insight import params
from controlplane.review.rules import Thresholds


@pytest.mark.parametrize(
    ("raw", "bounds", "expected"),
    [
        ("", {}, None),
        ("0", {}, 0.0),
        ("1", {}, 1.0),
        ("0.25", {"hi": 0.5}, 0.25),
        ("0.5", {"hi": 0.5}, 0.5),
        ("1e-3", {"exclusive": True}, 0.001),
    ],
)
def test_a_fraction_in_its_bounds_is_taken(raw: str, bounds: dict, expected: float | None) -> None:
    assert fraction(raw, not_number="{raw}", out_of_range="{value}", **bounds) == expected


@pytest.mark.parametrize(
    ("raw", "bounds", "message"),
    [
        ("x" * 30, {"shown": 4}, "not xxxx"),
        ("-0.1", {}, "out -0.1 '-0.1'"),
        ("0.6", {"hi": 0.5}, "out 0.6 '0.6'"),
        ("0", {"exclusive": True}, "out 0 '0'"),
        ("1", {"exclusive": True}, "out 1 '1'"),
        ("nan", {}, "out nan 'nan'"),
        ("inf", {}, "out inf 'inf'"),
    ],
)
def test_anything_else_is_refused_with_the_callers_words(raw: str, bounds: dict, message: str) -> None:
    with pytest.raises(LookupError) as refused:
        fraction(raw, not_number="not {raw}", out_of_range="out {value:g} {raw!r}", refuse=LookupError, **bounds)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("high", "The minimum confidence must be a number from 0 to 1, not 'high'."),
        ("1.5", "The minimum confidence must be from 0 to 1; '1.5' is not."),
        ("nan", "The minimum confidence must be from 0 to 1; 'nan' is not."),
        ("x" * 200, f"The minimum confidence must be a number from 0 to 1, not {'x' * 200!r}."),
    ],
)
def test_the_lists_confidence_bounds_keep_their_words(raw: str, message: str) -> None:
    assert views._confidence("", "The minimum") is None and views._confidence("0.5", "The maximum") == 0.5
    with pytest.raises(views.FilterRefused) as refused:
        views._confidence(raw, "The minimum")
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("half" * 10, "threshold must be a number between 0 and 1 (got 'halfhalfhalfhalfhalf')"),
        ("1", "threshold must be between 0 and 1, exclusive (got 1)"),
        ("1,5", "threshold must be a number between 0 and 1 (got '1,5')"),
        ("-" + "9" * 30, "threshold must be between 0 and 1, exclusive (got -9999999999999999999)"),
    ],
)
def test_the_insight_threshold_keeps_its_words(raw: str, message: str) -> None:
    with pytest.raises(params.Refused) as refused:
        params.threshold(raw)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"confidence_below": " " + "y" * 30 + " "}, f"confidence_below={'y' * 20!r} is not a number"),
        ({"margin_below": "0.25"}, "margin_below=0.25 must be between 0 and 0.1 (the setting)"),
        ({"confidence_below": "-0"}, None),
    ],
)
def test_the_review_queues_narrowing_keeps_its_words(fields: dict[str, str], message: str | None) -> None:
    configured = Thresholds(0.5, 0.1)
    if message is None:
        assert configured.narrowed(**fields).confidence_below == 0.0
        return
    with pytest.raises(ValueError) as refused:
        configured.narrowed(**fields)
    assert str(refused.value) == message
