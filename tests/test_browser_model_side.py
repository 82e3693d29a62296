"""Issue 14's acceptance, end to end in headless Chromium: real photos uploaded to the bucket become rows through the
listener and a live worker; some are reviewed in the queue with the keyboard only; the folder is reprocessed with the
second model from the reprocess page (a worker holding it classifies); then the labels page, the comparison page and an
export are checked against direct queries of the table (and of the reviews).

The session's stack is shared with other tests, so every figure is checked against a direct query of the same window,
not against a number this test assumes; the objects this test made are found by their unique folder.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest

from classifier import ledger
from classifier.cloud import bigquery
from classifier.config import Config
from controlplane import livecache
from controlplane.review import selectors as review_selectors
from controlplane.review.models import Review
from controlplane.review.rules import Thresholds
from tests import contract, test_browser_reprocess, test_reprocess
from tests import test_browser as browser
from tests.helpers import rows_for, wait_for
from tests.test_browser import STAFF, login, press, screenshot, until

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
driver, users = browser.driver, browser.users
models_dir, workers = test_reprocess.models_dir, test_reprocess.workers
SECOND = test_reprocess.SECOND

from selenium.webdriver.common.by import By  # noqa: E402  (test_browser skips the module first without Chromium)
from selenium.webdriver.common.keys import Keys  # noqa: E402


def _window_rows(cfg: Config, model: str) -> list[dict[str, Any]]:
    """Every row of `model` processed in the last day (the pages' "1d" window, give or take its clock slack)."""
    sql = f"SELECT * FROM `{cfg.table_id}` WHERE processed_at >= @since AND model = @model"
    since = datetime.now(UTC) - timedelta(days=1)
    params = [bigquery.param("since", "TIMESTAMP", since), bigquery.param("model", "STRING", model)]
    return bigquery.query(cfg, sql, params)


def _top1(row: dict[str, Any]) -> str:
    return str(row["classifications"][0]["classification"])


def _current(driver: Any) -> str | None:
    return driver.execute_script(
        "const c = document.querySelector('#review .review-current'); return c && c.dataset.image;"
    )


def _open_candidate(driver: Any, base: str, model: str, name: str) -> None:
    """The queue at `name`'s place in it (the queue holds other tests' rows of the live model too)."""
    spec = review_selectors.QueueSpec.of(model=model, range_="24h", thresholds=Thresholds(1.0, 1.0))
    livecache.forget_all()
    page, _ = review_selectors.review_queue(spec=spec, limit=2000)
    at = next(i for i, r in enumerate(page.rows) if r["image_name"] == name)
    driver.get(f"{base}/review/?{urlencode({'model': model, 'at': at})}")
    until(driver, lambda d: _current(d) == name, timeout=30)


def _press_until(driver: Any, key: str, done: Any, *, tries: int = 3) -> None:
    """Press `key` until `done` holds: a key pressed while the page is still busy with a request is swallowed on
    purpose (review.js), so a press the page did not take is pressed again."""
    from selenium.common.exceptions import TimeoutException

    for _ in range(tries):
        press(driver, key)
        try:
            until(driver, done, timeout=10)
            return
        except TimeoutException:
            continue
    raise AssertionError(f"the review page did not take {key!r} in {tries} presses")


def _fetch_text(driver: Any, path: str) -> str:
    """A download as the logged-in browser gets it (the session cookie goes with it)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => r.text()).then(done, e => done('FETCH FAILED ' + e));",
        path,
    )


def test_upload_review_reprocess_then_labels_compare_and_export_agree_with_direct_queries(
    driver: Any,
    live_server: Any,
    users: None,
    cfg: Config,
    stack: Any,
    pipeline: Any,
    workers: Any,
    upload: Any,
    photos: dict[str, bytes],
    prefix: str,
    settings: Any,
) -> None:
    folder = f"{prefix}model-side/"
    # 1. Real photos into the bucket: the notification, the listener and the live worker make one row each.
    keys = [ledger.object_key(cfg.bucket, folder + n, upload(folder + n, data)) for n, data in photos.items()]
    assert wait_for(lambda: contract.settled(cfg, keys), timeout=300), "the live pipeline did not classify the upload"
    assert contract.violations(cfg, dict.fromkeys(keys, "row")) == {}
    live = {
        r["image_name"]: r for found in rows_for(cfg, [ledger.parse_key(k)[1] for k in keys]).values() for r in found
    }
    model = next(iter(live.values()))["model"]
    assert all(r["model"] == model for r in live.values())

    # 2. Review three of them with the keyboard only; every row of the live model queues at these thresholds.
    settings.REVIEW_THRESHOLDS = Thresholds(1.0, 1.0)
    base = live_server.url
    login(driver, base, STAFF)
    names = sorted(live)
    correct, wrong, unclear = names[0], names[1], names[2]
    truth = "wallaby" if _top1(live[wrong]) != "wallaby" else "koala"

    _open_candidate(driver, base, model, correct)
    _press_until(driver, "c", lambda d: _current(d) != correct)

    _open_candidate(driver, base, model, wrong)
    _press_until(driver, "w", lambda d: d.switch_to.active_element.get_attribute("id") == "true-label")
    press(driver, truth[:5])
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#label-options [role=option]"), timeout=10)
    press(driver, Keys.ARROW_DOWN, Keys.ENTER)  # the first suggestion: the shortest match, the label itself
    assert driver.find_element(By.ID, "true-label").get_attribute("value") == truth
    press(driver, Keys.ENTER)
    until(driver, lambda d: _current(d) != wrong, timeout=30)

    _open_candidate(driver, base, model, unclear)
    _press_until(driver, "u", lambda d: _current(d) != unclear)

    reviews = {r.image_name: r for r in Review.objects.filter(image_name__startswith=folder)}
    assert {n: (r.verdict, r.true_label, r.predicted_label) for n, r in reviews.items()} == {
        correct: ("correct", _top1(live[correct]), _top1(live[correct])),
        wrong: ("wrong", truth, _top1(live[wrong])),
        unclear: ("unclear", "", _top1(live[unclear])),
    }

    # 3. Reprocess the folder with the second model: the dry run counts it, the run ends with one row per model.
    driver.get(test_browser_reprocess._page(base, folder))
    count = until(driver, lambda d: d.find_elements(By.ID, "reprocess-count"))[0]
    assert count.get_attribute("data-count") == str(len(keys))
    driver.find_element(By.ID, "reprocess-start").click()
    until(driver, lambda d: test_browser_reprocess._state(d) == "done", timeout=400)
    expected = dict.fromkeys(keys, "row") | {ledger.model_key(k, SECOND): "row" for k in keys}
    assert contract.violations(cfg, expected) == {}
    second = {
        r["image_name"]: r
        for found in rows_for(cfg, names).values()
        for r in found
        if r["model"].split(" ")[0] == SECOND
    }
    assert sorted(second) == names
    second_model = next(iter(second.values()))["model"]
    livecache.forget_all()

    # 4. The labels page of the second model counts what a direct query counts (other tests' rows included).
    driver.get(f"{base}/insight/labels/?{urlencode({'window': '1d', 'model': second_model})}")
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.label-row"))
    rows_b = _window_rows(cfg, second_model)
    shown = {
        r.get_attribute("data-label"): int(r.get_attribute("data-top1") or 0)
        for r in driver.find_elements(By.CSS_SELECTOR, "tr.label-row")
    }
    assert {k: v for k, v in shown.items() if v} == dict(Counter(_top1(r) for r in rows_b))
    screenshot(driver, "model-side-labels")

    # ...and the live model's page counts this test's verdicts under the labels they judged.
    driver.get(f"{base}/insight/labels/?{urlencode({'window': '1d', 'model': model})}")
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.label-row"))
    judged = Review.objects.filter(model=model, reviewed_at__gte=datetime.now(UTC) - timedelta(days=1))
    for label in {_top1(live[correct]), _top1(live[wrong])}:
        row = driver.find_element(By.CSS_SELECTOR, f"tr.label-row[data-label='{label}']")
        of_label = judged.filter(predicted_label=label).exclude(verdict=Review.Verdict.UNCLEAR)
        assert int(row.get_attribute("data-reviewed")) == of_label.count(), label
        assert int(row.get_attribute("data-correct") or 0) == of_label.filter(verdict="correct").count(), label

    # 5. The comparison of the two models, against a direct join of their rows in the window.
    driver.get(f"{base}/insight/compare/?{urlencode({'window': '1d', 'a': model, 'b': second_model})}")
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#both .big"))
    a = {(r["bucket"], r["image_name"], r["generation"]): r for r in _window_rows(cfg, model)}
    b = {(r["bucket"], r["image_name"], r["generation"]): r for r in _window_rows(cfg, second_model)}
    both = [k for k in a if k in b]
    agree = sum(_top1(a[k]) == _top1(b[k]) for k in both)
    assert driver.find_element(By.CSS_SELECTOR, "#both .big").get_attribute("data-n") == str(len(both))
    assert driver.find_element(By.CSS_SELECTOR, "#agreement .big").get_attribute("data-agree") == str(agree)
    assert "not recorded" not in driver.find_element(By.ID, "speed-b").text  # the workers wrote inference_ms
    screenshot(driver, "model-side-compare")

    # 6. The export of the folder's classifications, in both formats, holds exactly the rows of both models.
    query = urlencode({"name": folder})
    jsonl = _fetch_text(driver, f"/insight/export/classifications/?{query}&format=jsonl")
    exported = [json.loads(line) for line in jsonl.splitlines() if line.strip()]
    direct = [r for found in rows_for(cfg, names).values() for r in found]
    assert sorted((r["image_name"], r["model"]) for r in exported) == sorted(
        (r["image_name"], r["model"]) for r in direct
    )
    assert len(exported) == 2 * len(keys)
    table = list(
        csv.DictReader(io.StringIO(_fetch_text(driver, f"/insight/export/classifications/?{query}&format=csv")))
    )
    assert sorted((r["image_name"], r["model"]) for r in table) == sorted((r["image_name"], r["model"]) for r in direct)
    review_export = _fetch_text(driver, f"/insight/export/reviews/?{urlencode({'model': model})}&format=jsonl")
    exported_reviews = {json.loads(x)["image_name"] for x in review_export.splitlines() if x.strip()}
    assert {correct, wrong, unclear} <= exported_reviews
