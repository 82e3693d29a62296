"""controlplane/templatetags/sightline.py: the label bars of a row, whatever its classifications column holds."""

from __future__ import annotations

from controlplane.templatetags.sightline import label_bars


def test_a_row_with_no_labels_shows_none_instead_of_failing_the_page() -> None:
    """bqemulator hands back an empty REPEATED column as NULL: the dashboard listing such a row raised TypeError."""
    assert label_bars(None) == {"labels": []}
    assert label_bars([]) == {"labels": []}


def test_labels_show_as_whole_percent_bars() -> None:
    bars = label_bars(
        [{"classification": "tabby", "confidence": 0.8765}, {"classification": "tiger cat", "confidence": 0.1}]
    )
    assert bars == {"labels": [{"name": "tabby", "percent": 88}, {"name": "tiger cat", "percent": 10}]}
