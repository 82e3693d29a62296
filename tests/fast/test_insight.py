"""Pure logic of the insight pages: parameter checks, histogram bins, CSV escaping, chart geometry."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from controlplane.insight import charts, exports
from controlplane.insight import params as p

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("confidence", "expected"),
    [(0.0, 0), (0.0499, 0), (0.05, 1), (0.5, 10), (0.9999, 19), (1.0, 19), (1.2, 19), (-0.1, 0)],
)
def test_a_confidence_falls_in_the_bin_the_sql_puts_it_in(confidence: float, expected: int) -> None:
    assert p.bin_of(confidence) == expected


def test_a_histogram_has_every_bin_and_drops_what_is_out_of_range() -> None:
    bins = p.histogram({0: 3, 19: 2, 25: 9}, bins=20)
    assert len(bins) == 20 and [b["count"] for b in bins if b["count"]] == [3, 2]
    assert (bins[0]["lo"], bins[0]["hi"], bins[19]["hi"]) == (0.0, 0.05, 1.0)


def test_the_window_is_bounded_and_names_its_days() -> None:
    w = p.window("7d", now=NOW)
    assert (w.end - w.start).days == 7 and w.end > NOW
    assert w.days()[0] == date(2026, 11, 23) and w.days()[-1] == date(2026, 11, 30) and len(w.days()) == 8
    assert p.window(None, now=NOW).key == p.DEFAULT_WINDOW
    for bad in ("365d", "7", " 1d; DROP", "30d\x00"):
        with pytest.raises(p.Refused, match="window must be one of"):
            p.window(bad, now=NOW)


@pytest.mark.parametrize("raw", ["0", "1", "-0.1", "1.5", "nan", "inf", "-inf", "1e400", "x", "0.5.5"])
def test_a_threshold_outside_0_to_1_or_not_a_number_is_refused(raw: str) -> None:
    with pytest.raises(p.Refused):
        p.threshold(raw)


def test_a_threshold_defaults_and_is_rounded() -> None:
    assert p.threshold(None) == 0.5 and p.threshold(" ") == 0.5
    assert p.threshold("0.123456") == 0.1235


def test_a_model_must_be_one_the_page_offers() -> None:
    known = ["resnet50", "efficientnet_lite0"]
    assert p.model(None, known=known, default="resnet50") == "resnet50"
    assert p.model("efficientnet_lite0", known=known, default="resnet50") == "efficientnet_lite0"
    assert p.model("fresh", known=[], default="fresh") == "fresh"  # the live model, even with no rows yet
    with pytest.raises(p.Refused, match="no rows in this window"):
        p.model("vgg16", known=known, default="resnet50")
    with pytest.raises(p.Refused, match="has characters"):
        p.model("resnet50\x00", known=known, default="resnet50")
    with pytest.raises(p.Refused, match="longer than"):
        p.model("m" * 65, known=known, default="resnet50")


def test_two_models_default_to_the_live_one_and_another() -> None:
    known = ["resnet50", "efficientnet_lite0"]
    assert p.two_models({}, known=known, default="resnet50") == ("resnet50", "efficientnet_lite0")
    assert p.two_models({}, known=["resnet50"], default="resnet50") == ("resnet50", "resnet50")
    with pytest.raises(p.Refused, match="two different models"):
        p.two_models({"a": "resnet50", "b": "resnet50"}, known=known, default="resnet50")


def test_label_names_with_imagenet_punctuation_pass_and_markup_does_not() -> None:
    for ok in ("tabby", "tiger cat", "jack-o'-lantern", "potter's wheel", "carpenter's kit, tool kit", "4-poster"):
        assert p.name(ok, what="label", limit=128) == ok
    for bad in ("<script>", "a\tb", "x\x07", "a;b", "a`b"):
        with pytest.raises(p.Refused):
            p.name(bad, what="label", limit=128)


@pytest.mark.parametrize("raw", ["0", "-1", "1001", "x", "1.5", "\u0661"])
def test_a_page_number_is_a_small_positive_integer(raw: str) -> None:
    with pytest.raises(p.Refused):
        p.page(raw)


def test_export_formats() -> None:
    assert p.export_format("csv") == "csv" and p.export_format("jsonl") == "jsonl"
    with pytest.raises(p.Refused):
        p.export_format("xlsx")


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\t=x", "'\t=x"),
        ("\r=x", "'\r=x"),
        ("cat=dog", "cat=dog"),
        ("tabby", "tabby"),
        (-1.5, "-1.5"),  # a number is data, not a formula: written as it is
        (3, "3"),
        (None, ""),
        (True, "true"),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05+00:00"),
    ],
)
def test_a_csv_cell_never_starts_a_formula(value: object, cell: str) -> None:
    assert exports.csv_cell(value) == cell


def test_csv_lines_quote_commas_quotes_and_newlines() -> None:
    rows = [{"a": 'say "hi", then\nleave', "b": '=HYPERLINK("x")'}]
    text = "".join(exports.csv_lines(["a", "b"], rows))
    assert list(csv.reader(io.StringIO(text))) == [["a", "b"], ['say "hi", then\nleave', '\'=HYPERLINK("x")']]


def test_jsonl_is_one_object_a_line_with_times_as_iso() -> None:
    rows = [{"name": "a\nb", "at": datetime(2026, 1, 1, tzinfo=UTC)}, {"name": "ü"}]
    lines = list(exports.jsonl_lines(rows))
    assert len(lines) == 2 and all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    assert json.loads(lines[0]) == {"name": "a\nb", "at": "2026-01-01T00:00:00+00:00"}


def test_a_classification_flattens_to_five_label_columns() -> None:
    row = {"image_name": "x", "classifications": [{"classification": "tabby", "confidence": 0.7}]}
    flat = exports.flat_classification(row)
    assert flat["label_1"] == "tabby" and flat["confidence_1"] == 0.7 and flat["label_5"] is None
    assert exports.classification_columns(["image_name", "classifications"])[:3] == [
        "image_name",
        "label_1",
        "confidence_1",
    ]


def test_capped_stops_at_the_cap_without_reading_further() -> None:
    read = []

    def source() -> Iterator[dict[str, int]]:
        for i in range(100):
            read.append(i)
            yield {"i": i}

    assert [r["i"] for r in exports.capped(source(), 3)] == [0, 1, 2]
    assert len(read) <= 4


def test_chart_geometry_scales_to_the_busiest_bin_and_day() -> None:
    hist = charts.histogram_chart(p.histogram({0: 1, 10: 4}))
    heights = [b["h"] for b in hist["bars"]]
    assert max(heights) == hist["base"] and heights[0] == hist["base"] / 4 and hist["total"] == 5
    days = [date(2026, 11, d) for d in (28, 29, 30)]
    spark = charts.sparkline(days, {date(2026, 11, 29): 2})
    assert [b["h"] > 0 for b in spark["bars"]] == [False, True, False] and spark["peak"] == 2
    trend = charts.share_trend(
        [{"day": days[0], "rows": 0, "low": 0, "share": None}, {"day": days[1], "rows": 4, "low": 1, "share": 0.25}]
    )
    assert trend["bars"][0]["h"] == 0 and trend["bars"][1]["h"] == pytest.approx(trend["base"] * 0.25, abs=0.1)
    assert "no rows" in trend["bars"][0]["title"] and "25% of 4 rows" in trend["bars"][1]["title"]
