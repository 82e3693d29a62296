"""The reprocess page in headless Chromium: a dry run, a run to the end with its progress, and a cancelled run.

A live worker (EfficientNet-Lite0) runs the run's steps and a worker holding ResNet50 classifies (tests/test_reprocess.py's
fixtures); screenshots land in artifacts/screenshots/reprocess-*.png.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from classifier import jobs, ledger
from classifier.cloud import gcs
from classifier.config import Config
from tests import contract, test_reprocess
from tests import test_browser as browser
from tests.test_browser import STAFF, login, screenshot, until

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
# Fixtures of other modules, used here by name.
driver, users = browser.driver, browser.users
models_dir, workers = test_reprocess.models_dir, test_reprocess.workers
SECOND = test_reprocess.SECOND

from selenium.webdriver.common.by import By  # noqa: E402  (test_browser skips the module first without Chromium)


def _classified(cfg: Config, folder: str, photos: dict[str, bytes]) -> list[str]:
    """Photos in the pipeline's bucket, each with its live row (written here, as the live worker would)."""
    keys = []
    for name, data in photos.items():
        generation = gcs.upload(cfg, name=folder + name, data=data)
        keys.append(ledger.object_key(cfg.bucket, folder + name, generation))
        assert jobs.classify_object(cfg.bucket, folder + name, generation)["outcome"] == "row"
    return keys


def _page(base: str, folder: str) -> str:
    now = datetime.now(UTC)
    query = {
        "model": SECOND,
        "since": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "until": (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"),
        "prefix": folder,
        "dry_run": "1",
    }
    return f"{base}/reprocess/?{urlencode(query)}"


def _state(driver: Any) -> str | None:
    found = driver.find_elements(By.ID, "reprocess-run")
    return found[0].get_attribute("data-state") if found else None


def test_staff_dry_run_start_watch_and_cancel(
    driver: Any, live_server: Any, users: None, cfg: Config, stack: Any, workers: Any, photos: dict[str, bytes], prefix
) -> None:
    done_keys = _classified(cfg, prefix + "a/", photos)
    _classified(cfg, prefix + "b/", photos)
    login(driver, live_server.url, STAFF)
    driver.find_element(By.CSS_SELECTOR, "nav a[href='/reprocess/']").click()
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "input[name=model]"))

    driver.get(_page(live_server.url, prefix + "a/"))
    count = until(driver, lambda d: d.find_elements(By.ID, "reprocess-count"))[0]
    assert count.get_attribute("data-count") == str(len(photos))
    screenshot(driver, "reprocess-dry-run")
    driver.find_element(By.ID, "reprocess-start").click()
    until(driver, lambda d: _state(d) is not None, timeout=30)
    until(driver, lambda d: _state(d) == "done", timeout=300)  # htmx polls the progress every 2 s
    text = driver.find_element(By.ID, "reprocess-run").text
    assert f"{len(photos)} of {len(photos)} finished" in text and f"{len(photos)} rows" in text
    screenshot(driver, "reprocess-done")
    assert contract.violations(cfg, {ledger.model_key(k, SECOND): "row" for k in done_keys}) == {}

    workers[SECOND].kill(signal.SIGSTOP)  # its jobs wait in the queue: the run stays running
    try:
        driver.get(_page(live_server.url, prefix + "b/"))
        until(driver, lambda d: d.find_elements(By.ID, "reprocess-start"))[0].click()
        until(
            driver,
            lambda d: _state(d) == "running"
            and d.find_element(By.ID, "reprocess-run").get_attribute("data-enqueued") == str(len(photos)),
            timeout=60,
        )
        screenshot(driver, "reprocess-running")
        driver.find_element(By.ID, "reprocess-cancel").click()
        until(driver, lambda d: _state(d) == "cancelled", timeout=60)
        # The stopped worker's blocking pop may have taken one job already (Redis hands it over regardless): those a
        # worker holds finish; the rest leave the queue.
        assert "taken back by the cancel" in driver.find_element(By.ID, "reprocess-run").text
        assert test_reprocess.queue(cfg, SECOND).count == 0
        screenshot(driver, "reprocess-cancelled")
    finally:
        workers[SECOND].kill(signal.SIGCONT)
