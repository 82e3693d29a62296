"""The dashboard in headless Chromium over a filled table: what it shows matches a direct query of the tables.

The table gets thousands of rows over 30 days and the failures table hundreds (bench/dashboard_cost.py's fill, inside
the emulator); the 1-million-row measure is `python -m bench.dashboard_cost`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.dashboard_cost import fill, record_recent_stats
from classifier import failures, ledger, stats
from classifier.cloud import bigquery
from classifier.config import Config
from controlplane import livecache
from tests import test_browser as browser
from tests.test_browser import STAFF, login, screenshot, until

pytestmark = [pytest.mark.browser]
# The browser module's fixtures, used here by name.
driver, users = browser.driver, browser.users

ROWS, FAILURES = 30_000, 300


def _direct(cfg: Config, sql: str, **params: Any) -> list[dict[str, Any]]:
    types = {datetime: "TIMESTAMP", str: "STRING", int: "INT64"}
    return bigquery.query(cfg, sql, [bigquery.param(k, types[type(v)], v) for k, v in params.items()])


def _images(driver: Any) -> list[str]:
    """The rows shown, read again if the list's 3-second refresh swaps them while they are read."""
    from selenium.webdriver.common.by import By

    return until(
        driver, lambda d: [r.get_attribute("data-image") for r in d.find_elements(By.CSS_SELECTOR, "tr.result")]
    )


def _text(driver: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return until(driver, lambda d: d.find_element(By.ID, element_id).text)


def test_the_dashboard_over_a_filled_table_shows_what_a_direct_query_counts(
    driver: Any,
    live_server: Any,
    users: None,
    cfg: Config,
    stack: Any,
) -> None:
    from selenium.webdriver.common.by import By

    prefix = f"t-{uuid.uuid4().hex[:8]}/"
    now = datetime.now(UTC)
    redis = ledger.connection(cfg)
    redis.delete(failures.PENDING_KEY)
    fill(cfg, ROWS, FAILURES, now - timedelta(seconds=5), prefix=prefix)
    # The live figures are what workers record as they write; this fill wrote no row through a worker, so the
    # counters of the last minutes are rebuilt as the workers would have left them, for every row in the window.
    redis.delete(*[stats.PREFIX + f"{stats.minute_of(now) - timedelta(minutes=m):%Y%m%d%H%M}" for m in range(20)])
    redis.delete(stats.RECENT_KEY, stats.RECENT_SINCE_KEY)
    record_recent_stats(cfg, now, prefix="")  # and the newest rows, as the workers keep them for the live list
    livecache.forget_all()

    # The live list (page 1, no filter) comes from the workers' record of the newest rows: no BigQuery query.
    login(driver, live_server.url, STAFF)
    live = _images(driver)
    window = _direct(
        cfg,
        f"SELECT image_name FROM `{cfg.table_id}` WHERE processed_at >= @since AND processed_at < @until "
        "ORDER BY processed_at DESC, upload DESC LIMIT 20",
        since=now - timedelta(days=1),
        until=now + timedelta(minutes=5),
    )
    assert live == [r["image_name"] for r in window]
    assert "no BigQuery query" in _text(driver, "recent-window")

    driver.get(f"{live_server.url}/?name={prefix}")
    shown = _images(driver)
    since = now - timedelta(days=1)
    expected = _direct(
        cfg,
        f"SELECT image_name FROM `{cfg.table_id}` WHERE processed_at >= @since AND STARTS_WITH(image_name, @prefix) "
        "ORDER BY processed_at DESC, upload DESC LIMIT 20",
        since=since,
        prefix=prefix,
    )
    assert shown == [r["image_name"] for r in expected]

    open_failures = _direct(
        cfg,
        f"SELECT COUNT(*) AS n FROM `{cfg.failures_table_id}` WHERE failed_at >= @since",
        since=now - failures.WINDOW,
    )[0]["n"]
    failures_card = driver.find_element(By.CSS_SELECTOR, "#failures-stat .big a").text
    assert int(failures_card) == open_failures and open_failures >= FAILURES

    window_start = stats.minute_of(datetime.now(UTC)) - timedelta(minutes=14)
    recent = _direct(
        cfg, f"SELECT COUNT(*) AS n FROM `{cfg.table_id}` WHERE processed_at >= @since", since=window_start
    )[0]["n"]
    throughput = driver.find_element(By.CSS_SELECTOR, "#throughput .sub").text
    assert recent > 0 and f"{recent} rows in the last 15 min" in throughput
    assert "as of" in _text(driver, "recent-window")
    screenshot(driver, "dashboard-filled")

    # The day before: the next window of partitions (its link read afresh: the list may be swapped meanwhile).
    driver.get(until(driver, lambda d: d.find_element(By.ID, "older-window").get_attribute("href")))
    older = _images(driver)
    assert older and not set(older) & set(shown)

    # The top-1 confidence range beside the label filter, through the form: the same rows as a direct query.
    driver.get(f"{live_server.url}/?name={prefix}")
    for field, value in (("label", "tabby"), ("min_confidence", "0.5"), ("max_confidence", "0.7")):
        box = driver.find_element(By.CSS_SELECTOR, f"#filters [name={field}]")
        box.clear()
        box.send_keys(value)
    driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    until(driver, lambda d: "min_confidence=0.5" in d.current_url)
    ranged = _images(driver)
    expected = _direct(
        cfg,
        f"SELECT image_name FROM `{cfg.table_id}` WHERE processed_at >= @since AND STARTS_WITH(image_name, @prefix) "
        "AND classifications[OFFSET(0)].confidence BETWEEN 0.5 AND 0.7 ORDER BY processed_at DESC, upload DESC LIMIT 20",
        since=since,
        prefix=prefix,
    )
    assert ranged == [r["image_name"] for r in expected] and ranged and not set(ranged) <= set(shown)
    assert "from BigQuery" in _text(driver, "recent-window")
    screenshot(driver, "dashboard-confidence-filter", whole=False)

    # A range the browser's own checks would stop, sent as a URL: the server refuses it with its reason.
    driver.get(f"{live_server.url}/?min_confidence=0.9&max_confidence=0.1")
    refusal = until(driver, lambda d: d.find_elements(By.ID, "filter-refused"))[0].text
    assert "The minimum confidence (0.9) is above the maximum (0.1)." in refusal
    assert not driver.find_elements(By.CSS_SELECTOR, "tr.result")
