"""The review queue in headless Chromium, keyboard only: skip and come back, correct, wrong with a label taken from the
autocomplete, unclear; the stored verdicts are checked in the database and the page passes axe in both themes.

The rows are written straight into the emulator's table for real photos uploaded to the emulated bucket: no worker is
needed to judge a row, and the labels (and so the order of the queue) are the test's own.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from classifier.cloud import gcs
from classifier.config import BASE_DIR, Config
from controlplane import livecache
from controlplane.review.models import Review
from tests import test_browser as browser
from tests.test_browser import STAFF, VIEWER, emulate, login, page_problems, press, screenshot, until
from tests.test_review import put_row

pytestmark = [pytest.mark.browser]
driver, users = browser.driver, browser.users

# The README's picture of this page: `SIGHTLINE_DOC_SCREENSHOTS=1 pytest tests/test_browser_review.py` refreshes it.
DOC_SHOT = BASE_DIR / "docs" / "screenshots" / "review.png"
# Least sure first: the queue shows them in this order.
CANDIDATES = {
    "chelsea.png": [("tabby", 0.2), ("tiger cat", 0.18), ("Egyptian cat", 0.15), ("lynx", 0.05), ("Persian cat", 0.02)],
    "coffee.png": [("cup", 0.25), ("espresso", 0.22), ("eggnog", 0.1), ("coffee mug", 0.08), ("soup bowl", 0.03)],
    "rocket.jpg": [
        ("missile", 0.42),
        ("projectile", 0.4),
        ("space shuttle", 0.1),
        ("airliner", 0.02),
        ("warplane", 0.01),
    ],
    "rocket-again.jpg": [
        ("missile", 0.45),
        ("projectile", 0.2),
        ("space shuttle", 0.1),
        ("airliner", 0.02),
        ("kite", 0.01),
    ],
}


def current(driver: Any) -> str | None:
    return driver.execute_script(
        "const c = document.querySelector('#review .review-current'); return c && c.dataset.image;"
    )


def pending(driver: Any) -> int:
    return int(driver.find_element("id", "review-pending").text)


def test_reviewing_with_the_keyboard_only(
    driver: Any, live_server: Any, users: None, cfg: Config, stack: Any, photos: dict[str, bytes]
) -> None:
    from selenium.webdriver.common.keys import Keys

    folder = f"review-{uuid.uuid4().hex[:6]}/"
    model = f"review-browser-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    rows = {}
    for i, (name, labels) in enumerate(CANDIDATES.items()):
        data = photos[name.replace("-again", "")]
        generation = gcs.upload(
            cfg, name=folder + name, data=data, content_type="image/jpeg" if ".jpg" in name else "image/png"
        )
        rows[name] = put_row(
            cfg, folder + name, labels, model=model, generation=generation, processed_at=now - timedelta(seconds=30 - i)
        )
    livecache.forget_all()
    base = live_server.url
    login(driver, base, STAFF)
    driver.get(f"{base}/review/?model={model}")
    assert current(driver) == folder + "chelsea.png" and pending(driver) == 4
    assert "c correct" in driver.find_element("id", "review-keys").text

    press(driver, "j")  # skip
    until(driver, lambda d: current(d) == folder + "coffee.png", timeout=20)
    press(driver, "k")  # and back
    until(driver, lambda d: current(d) == folder + "chelsea.png", timeout=20)
    press(driver, "c")
    until(driver, lambda d: current(d) == folder + "coffee.png", timeout=20)
    assert pending(driver) == 3
    assert driver.switch_to.active_element.get_attribute("id") == "review-current-title"

    press(driver, "w")
    assert driver.switch_to.active_element.get_attribute("id") == "true-label"
    press(driver, "espr")
    until(driver, lambda d: d.find_elements("css selector", "#label-options [role=option]"), timeout=5)
    options = [o.text for o in driver.find_elements("css selector", "#label-options [role=option]")]
    assert options[0] == "espresso", options
    press(driver, Keys.ARROW_DOWN)
    field = driver.find_element("id", "true-label")
    assert field.get_attribute("aria-activedescendant") == "label-option-0"
    assert field.get_attribute("aria-expanded") == "true"
    shot = screenshot(driver, "review")
    if os.environ.get("SIGHTLINE_DOC_SCREENSHOTS") == "1":  # refresh the committed one on purpose, never by default
        shutil.copyfile(shot, DOC_SHOT)
    press(driver, Keys.ENTER)  # takes the label
    assert field.get_attribute("value") == "espresso" and field.get_attribute("aria-expanded") == "false"
    press(driver, Keys.ENTER)  # records the verdict
    until(driver, lambda d: current(d) == folder + "rocket.jpg", timeout=20)
    assert "wrong, really espresso" in driver.find_element("id", "review-notice").text

    press(driver, "u")
    until(driver, lambda d: current(d) == folder + "rocket-again.jpg", timeout=20)
    assert pending(driver) == 1

    # A label that is none of the 1000 is refused, and the field has the focus again to fix it.
    press(driver, "w")
    press(driver, "rocket ship", Keys.ENTER)
    until(driver, lambda d: d.find_elements("id", "review-refused"), timeout=20)
    assert "not one of the 1000 ImageNet labels" in driver.find_element("id", "review-refused").text
    assert driver.switch_to.active_element.get_attribute("id") == "true-label"
    assert current(driver) == folder + "rocket-again.jpg"

    # A verdict the server refuses outright (here a CSRF failure, as after a session ends) says so; nothing changes.
    driver.execute_script(
        "document.body.setAttribute('hx-headers', '{\"X-CSRFToken\": \"stale\"}');"
        "document.querySelectorAll('input[name=csrfmiddlewaretoken]').forEach((e) => { e.value = 'stale'; });"
    )
    press(driver, Keys.ESCAPE, "u")
    until(driver, lambda d: d.find_elements("id", "review-failed"), timeout=20)
    assert "the server answered 403" in driver.find_element("id", "review-failed").text
    assert current(driver) == folder + "rocket-again.jpg"
    # A session that ended: the login page the server answers with is not swapped into the queue.
    driver.get(driver.current_url)
    driver.delete_cookie("sessionid")
    press(driver, "c")
    until(driver, lambda d: d.find_elements("id", "review-failed"), timeout=20)
    assert "session ended" in driver.find_element("id", "review-failed").text
    assert current(driver) == folder + "rocket-again.jpg"
    assert not driver.find_elements("css selector", "#review form.login")

    verdicts = {
        r.image_name.removeprefix(folder): (r.verdict, r.true_label, r.predicted_label, r.reviewer_name, r.model)
        for r in Review.objects.filter(image_name__startswith=folder)
    }
    assert verdicts == {
        "chelsea.png": ("correct", "tabby", "tabby", STAFF, model),
        "coffee.png": ("wrong", "espresso", "cup", STAFF, model),
        "rocket.jpg": ("unclear", "", "missile", STAFF, model),
    }
    assert {r.generation for r in Review.objects.filter(image_name__startswith=folder)} == {
        rows[n]["generation"] for n in ("chelsea.png", "coffee.png", "rocket.jpg")
    }

    # The verdict is in the object's story.
    login(driver, base, STAFF)
    driver.get(f"{base}/objects/?name={folder}coffee.png")
    assert "Reviewed: wrong, really espresso" in driver.find_element("css selector", ".review-verdict").text


def test_the_review_pages_pass_axe_and_fit_a_phone(
    driver: Any, live_server: Any, users: None, cfg: Config, stack: Any, photos: dict[str, bytes]
) -> None:
    from selenium.webdriver.common.keys import Keys

    folder = f"review-a11y-{uuid.uuid4().hex[:6]}/"
    model = f"review-a11y-{uuid.uuid4().hex[:6]}"
    for name, labels in list(CANDIDATES.items())[:2]:
        generation = gcs.upload(cfg, name=folder + name, data=photos[name], content_type="image/png")
        put_row(cfg, folder + name, labels, model=model, generation=generation)
    livecache.forget_all()
    base = live_server.url
    found: dict[str, list[str]] = {}
    for user in (STAFF, VIEWER):
        driver.delete_all_cookies()
        login(driver, base, user)
        for scheme in ("light", "dark"):
            for size, (width, height) in browser.VIEWPORTS.items():
                emulate(driver, width=width, height=height, scheme=scheme)
                driver.get(f"{base}/review/?model={model}")
                if problems := page_problems(driver):
                    found[f"review as {user} ({size}, {scheme})"] = problems
                screenshot(driver, f"review-{user}-{size}-{scheme}")
                if user == STAFF and size == "desktop":
                    press(driver, "w", "cup")  # the label list open, an option active
                    press(driver, Keys.ARROW_DOWN)
                    if problems := page_problems(driver):
                        found[f"review, label list open ({scheme})"] = problems
        driver.get(f"{base}/review/?model=nothing-here-{uuid.uuid4().hex[:4]}")
        if problems := page_problems(driver):
            found[f"empty review queue as {user}"] = problems
    report = "\n".join(f"{where}:\n  " + "\n  ".join(problems) for where, problems in found.items())
    assert not found, f"{len(found)} page views with problems:\n{report}"
