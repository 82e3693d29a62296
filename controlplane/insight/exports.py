"""Rows as a download: CSV or JSON Lines, produced a line at a time so a large export is never held in memory.

A spreadsheet runs a cell that starts with = + - @ (or a tab or carriage return) as a formula; object names and
failure reasons come from strangers, so such a text cell is written with a leading apostrophe (OWASP's advice).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TOP_N = 5


def csv_cell(value: Any) -> str:
    """One cell's text: times as ISO 8601, numbers as they are, text guarded against formula injection."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _line(cells: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()


def csv_lines(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    yield _line(columns)
    for row in rows:
        yield _line([csv_cell(row.get(c)) for c in columns])


def _json_default(value: Any) -> str:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def jsonl_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, default=_json_default, ensure_ascii=False) + "\n"


def flat_classification(row: dict[str, Any]) -> dict[str, Any]:
    """A classification row for CSV: the top-5 as label_1, confidence_1, ... columns instead of a nested list."""
    flat = {k: v for k, v in row.items() if k != "classifications"}
    top = list(row.get("classifications") or [])[:TOP_N]
    for i in range(TOP_N):
        c = top[i] if i < len(top) else {}
        flat[f"label_{i + 1}"] = c.get("classification")
        flat[f"confidence_{i + 1}"] = c.get("confidence")
    return flat


def classification_columns(base: Sequence[str]) -> list[str]:
    cols = [c for c in base if c != "classifications"]
    for i in range(TOP_N):
        cols += [f"label_{i + 1}", f"confidence_{i + 1}"]
    return cols


def capped(rows: Iterable[dict[str, Any]], cap: int) -> Iterator[dict[str, Any]]:
    """At most `cap` rows, whatever the source yields (the queries carry LIMIT too; this is the last word)."""
    for i, row in enumerate(rows):
        if i >= cap:
            return
        yield row
