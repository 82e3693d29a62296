"""The labels, label, comparison and export pages in headless Chromium over rows of two models, checked against
direct queries; screenshots to docs/screenshots/, and axe-core on a phone and a desktop in both themes."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from typing import Any

import pytest

from classifier.cloud import gcs
from classifier.config import BASE_DIR, Config
from controlplane import livecache
from tests import test_browser as browser
from tests.test_browser import AXE, STAFF, THEMES, VIEWPORTS, emulate, login, page_problems, screenshot, until
from tests.test_insight import _review as review
from tests.test_insight import direct_rows, ensure_inference_ms, fill

pytestmark = [pytest.mark.browser]
driver, users = browser.driver, browser.users  # the browser module's fixtures, used here by name

DOCS = BASE_DIR / "docs" / "screenshots"
MODELS = ("resnet50", "efficientnet_lite0")


def _keep(name: str, shot: Any) -> None:
    """The README's pictures: `SIGHTLINE_DOC_SCREENSHOTS=1 pytest tests/test_browser_insight.py` refreshes them on
    purpose; a plain run leaves the tree clean (its shots stay in artifacts/screenshots/)."""
    if os.environ.get("SIGHTLINE_DOC_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS / f"{name}.png")


def direct_rows_of(cfg: Config, model: str, name: str) -> dict[str, Any]:
    return next(r for r in direct_rows(cfg, model) if r["image_name"] == name)


def test_labels_and_comparison_pages_show_what_a_direct_query_counts(
    driver: Any, live_server: Any, users: None, cfg: Config, stack: Any, photos: dict[str, bytes]
) -> None:
    from selenium.webdriver.common.by import By

    shots = list(photos.values())

    def store(i: int, name: str) -> int:
        return gcs.upload(cfg, name=name, data=shots[(i // 3) % len(shots)], content_type="image/png")

    ensure_inference_ms(cfg)
    f = fill(cfg, n=24, models=MODELS, make_object=store)
    # Verdicts on a few of A's top-1s: the accuracy column and the comparison's "right on reviewed".
    for i, verdict in ((0, "correct"), (3, "wrong"), (4, "correct"), (6, "correct"), (9, "wrong")):
        name, gen = f.objects[i]
        top = direct_rows_of(cfg, f.a, name)["classifications"][0]["classification"]
        truth = top if verdict == "correct" else "wallaby"
        review(name, gen, f.a, top, verdict, truth, cfg.bucket)
    livecache.forget_all()
    base = live_server.url
    login(driver, base, STAFF)

    driver.get(f"{base}/insight/labels/?window=7d&model={f.a}&threshold=0.4")
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.label-row"))
    # Every row of model A in the window (other tests' rows of the model count too, on the page and here).
    window_rows = direct_rows(cfg, f.a)
    top1 = Counter(r["classifications"][0]["classification"] for r in window_rows)
    shown = {
        r.get_attribute("data-label"): int(r.get_attribute("data-top1") or 0)
        for r in driver.find_elements(By.CSS_SELECTOR, "tr.label-row")
    }
    assert {k: v for k, v in shown.items() if v} == dict(top1)
    below = sum(r["classifications"][0]["confidence"] < 0.4 for r in window_rows)
    total = driver.find_element(By.ID, "low-total")
    assert (int(total.get_attribute("data-below") or -1), int(total.get_attribute("data-rows") or -1)) == (
        below,
        len(window_rows),
    )
    _keep("labels", screenshot(driver, "insight-labels"))

    driver.find_element(By.LINK_TEXT, "tabby").click()
    until(driver, lambda d: d.find_elements(By.ID, "label-images"))
    assert driver.find_element(By.TAG_NAME, "h1").text == "tabby"
    driver.find_element(By.ID, "label-images").click()
    until(driver, lambda d: "label=tabby" in d.current_url and d.find_elements(By.ID, "recent-window"))

    driver.get(f"{base}/insight/compare/?window=7d&a={f.a}&b={f.b}")
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "tr.disagreement"))
    a = {(r["image_name"], r["generation"]): r for r in direct_rows(cfg, f.a)}
    b = {(r["image_name"], r["generation"]): r for r in direct_rows(cfg, f.b)}
    both = [k for k in a if k in b]
    agree = sum(
        a[k]["classifications"][0]["classification"] == b[k]["classifications"][0]["classification"] for k in both
    )
    assert driver.find_element(By.CSS_SELECTOR, "#both .big").get_attribute("data-n") == str(len(both))
    assert driver.find_element(By.CSS_SELECTOR, "#agreement .big").get_attribute("data-agree") == str(agree)
    reviewed = driver.find_element(By.CSS_SELECTOR, "#reviewed .big")
    assert reviewed.get_attribute("data-reviewed") == "5" and reviewed.get_attribute("data-a") == "3"
    assert "not recorded" not in driver.find_element(By.ID, "speed-a").text
    until(
        driver,
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('tr.disagreement img')].every(i => i.complete && i.naturalWidth > 0)"
        ),
        timeout=20,
    )
    _keep("compare", screenshot(driver, "insight-compare"))


def test_the_insight_pages_fit_a_phone_and_pass_axe_in_both_themes(
    driver: Any, live_server: Any, users: None, cfg: Config, stack: Any
) -> None:
    assert AXE.exists(), f"{AXE} is missing: run `bin/setup --test` (it installs axe-core with npm ci)"
    f = fill(cfg, n=12)
    base = live_server.url
    login(driver, base, STAFF)
    pages = {
        "labels": f"/insight/labels/?window=7d&model={f.a}",
        "label": f"/insight/labels/one/?label=tabby&window=7d&model={f.a}",
        "compare": f"/insight/compare/?window=7d&a={f.a}&b={f.b}",
        "export": "/insight/export/",
        "refused": "/insight/labels/?window=99d",
    }
    found: dict[str, list[str]] = {}
    for scheme in THEMES:
        for size, (width, height) in VIEWPORTS.items():
            emulate(driver, width=width, height=height, scheme=scheme)
            for page, path in pages.items():
                driver.get(base + path)
                if problems := page_problems(driver):
                    found[f"{page} ({size}, {scheme})"] = problems
                if page == "compare" and size == "phone" and scheme == "dark":
                    screenshot(driver, "insight-compare-phone-dark", whole=False)
    report = "\n".join(f"{where}:\n  " + "\n  ".join(problems) for where, problems in found.items())
    assert not found, f"{len(found)} page views with problems:\n{report}"
