"""The error budget card in headless Chromium after a Redis that lost the objective's counters, and once runalerts
has refilled them from the tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from classifier import ledger, stats
from classifier.config import Config
from controlplane import livecache
from controlplane.alerts.services import objective_fill_step
from tests import test_browser as browser
from tests.test_browser import STAFF, login, screenshot

pytestmark = [pytest.mark.browser]
driver, users = browser.driver, browser.users


def test_the_budget_card_says_from_when_it_counts_until_the_counters_are_refilled(
    driver: Any, live_server: Any, users: None, cfg: Config, stack: Any
) -> None:
    from selenium.webdriver.common.by import By

    redis = ledger.connection(cfg)
    redis.delete(stats.COUNTED_SINCE_KEY, stats.HOURS_SINCE_KEY)  # as a Redis that lost its data
    now = datetime.now(UTC)
    stats.record(redis, rows=[{"image_name": "t/a.png", "upload": now.isoformat(), "processed_at": now.isoformat()}])
    livecache.forget_all()
    login(driver, live_server.url, STAFF)
    card = driver.find_element(By.ID, "objective")
    since = card.find_element(By.ID, "objective-since").text
    assert since.startswith(f"counted only since {now:%Y-%m-%d} ") and "UTC" in since
    screenshot(driver, "objective-counting-since", whole=False)

    while objective_fill_step() is not None:  # runalerts' rounds, a day each
        pass
    livecache.forget_all()
    driver.refresh()
    assert not driver.find_element(By.ID, "objective").find_elements(By.ID, "objective-since")
