"""`.venv/bin/python -m bench.insight_pages`: the labels, comparison and export pages at scale, on a private stack.

Fills the table as bench/dashboard_cost.py does (--rows over 30 days, model efficientnet_lite0) and copies those
rows as a second model (resnet50), then reports each page's response time cold (no shared figure) and warm, its
BigQuery queries, the queries five open tabs cost together, and a CSV export's rows per second. Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime

from bench.dashboard_cost import dashboard_on_private_stack, fill

PAGES = {
    "labels, last day": ("insight:labels", {"window": "1d"}),
    "labels, 7 days": ("insight:labels", {"window": "7d"}),
    "labels, 30 days": ("insight:labels", {"window": "30d"}),
    "one label, 30 days": ("insight:label", {"window": "30d", "label": "tabby"}),
    "compare, 7 days": ("insight:compare", {"window": "7d", "a": "efficientnet_lite0", "b": "resnet50"}),
    "compare, 30 days": ("insight:compare", {"window": "30d", "a": "efficientnet_lite0", "b": "resnet50"}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.insight_pages", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    lines = []
    with dashboard_on_private_stack(staff=False) as (cfg, user):
        from django.conf import settings
        from django.http import StreamingHttpResponse
        from django.test import Client
        from django.urls import reverse

        from bench import bqaudit
        from classifier.cloud import bigquery
        from controlplane import livecache

        now = datetime.now(UTC)
        fill(cfg, args.rows, 10, now)
        columns = (
            "image_name, upload, classifications, bucket, generation, content_type, size_bytes, model, processed_at"
        )
        second = columns.replace("model,", "'resnet50',")
        bigquery.query(
            cfg,
            f"INSERT INTO `{cfg.table_id}` ({columns}) SELECT {second} FROM `{cfg.table_id}` "
            "WHERE processed_at >= TIMESTAMP '2000-01-01' AND model = 'efficientnet_lite0'",
        )
        tabs = [Client() for _ in range(5)]
        for tab in tabs:
            tab.force_login(user)
        lines += [
            f"### {args.rows:,} rows of each of two models over 30 days; load average {os.getloadavg()[0]:.1f}",
            "",
            "| page | cold (ms) | warm (ms) | BigQuery queries | 5 tabs, one refresh interval |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, (url, query) in PAGES.items():
            livecache.forget_all()
            with bqaudit.recording() as seen:
                started = time.monotonic()
                response = tabs[0].get(reverse(url), query)
                cold = (time.monotonic() - started) * 1000
            assert response.status_code == 200 and b"could not be read" not in response.content, name
            started = time.monotonic()
            tabs[0].get(reverse(url), query)
            warm = (time.monotonic() - started) * 1000
            livecache.forget_all()
            with bqaudit.recording() as five:
                for tab in tabs:
                    tab.get(reverse(url), query)
            lines.append(f"| {name} | {cold:.0f} | {warm:.0f} | {len(seen)} | {len(five)} |")
        started = time.monotonic()
        export = tabs[0].get(reverse("insight:export", args=["classifications"]), {"format": "csv", "range": "7d"})
        assert isinstance(export, StreamingHttpResponse), "an export is streamed"
        size = rows = 0
        for chunk in export.streaming_content:
            size += len(chunk)
            rows += 1
        took = time.monotonic() - started
        lines += [
            "",
            f"CSV export of the last 7 days (cap {settings.EXPORT_MAX_ROWS:,}): {rows - 1:,} rows, {size / 1e6:.1f} MB "
            f"in {took:.1f} s ({(rows - 1) / took:,.0f} rows/s); load average {os.getloadavg()[0]:.1f} after.",
        ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
