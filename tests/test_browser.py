"""The dashboard in headless Chromium, driving the real app on the local stack with a real listener and worker.

pytest-django's live_server runs the web app in this process on the test database; the listener and the worker
are separate processes that share only BigQuery, Redis and the emulators with it.
Screenshots of the main pages land in artifacts/screenshots/ (git-ignored): look at them.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from classifier import ledger, listener
from classifier.cloud import gcs
from classifier.config import BASE_DIR, Config
from devstack import localstack
from tests.helpers import failures_for, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = BASE_DIR / "artifacts" / "screenshots"
CATS = ("Egyptian cat", "tiger cat", "tabby", "Persian cat", "Siamese cat", "lynx")
STAFF, VIEWER, PASSWORD = "browser-staff", "browser-viewer", "browser-pass-0123"

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(
        f"browser tests need Chromium and chromedriver ({CHROMIUM}, {CHROMEDRIVER} missing): run `bin/setup --test`",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def driver() -> Iterator[WebDriver]:
    profile = tempfile.mkdtemp(prefix="sightline-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(30)
    yield browser
    browser.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def app_processes(cfg: Config, stack: Any) -> Iterator[None]:
    """A listener and a worker for this module only: later modules expect no process consuming their notifications."""
    env = localstack.app_env(cfg)
    services = [localstack.listener_service(cfg, env), localstack.worker_service(cfg, env, name="browser-worker")]
    for service in services:
        service.start()
    yield
    for service in services:
        service.stop()


@pytest.fixture
def users(transactional_db: Any, django_user_model: Any) -> None:
    django_user_model.objects.create_user(STAFF, password=PASSWORD, is_staff=True)
    django_user_model.objects.create_user(VIEWER, password=PASSWORD)


@pytest.fixture
def listener_restored(cfg: Config) -> Iterator[None]:
    yield
    listener.desired_set(ledger.connection(cfg), "running")


def login(driver: WebDriver, base: str, username: str) -> None:
    driver.get(f"{base}/login/")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.ID, "health"))


def until(driver: WebDriver, check: Callable[[WebDriver], Any], timeout: float = 60) -> Any:
    wait = WebDriverWait(driver, timeout, poll_frequency=0.25, ignored_exceptions=[StaleElementReferenceException])
    return wait.until(check)


def screenshot(driver: WebDriver, name: str, *, whole: bool = True) -> Path:
    """The whole page, beyond the window's height (Chromium's DevTools capture), or only what the screen shows."""
    import base64

    SHOTS.mkdir(parents=True, exist_ok=True)
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize" if whole else "cssVisualViewport"]
    width, height = (size["width"], size["height"]) if whole else (size["clientWidth"], size["clientHeight"])
    clip = {"x": 0, "y": 0, "width": width, "height": min(height, 4000), "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path = SHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def result_row(driver: WebDriver, name: str) -> dict[str, Any] | None:
    """The row of one object as the page shows it now, read in one script: htmx swaps rows every few seconds."""
    return driver.execute_script(
        """
        const row = [...document.querySelectorAll('tr.result')].find(r => r.getAttribute('data-image') === arguments[0]);
        if (!row) return null;
        const img = row.querySelector('img');
        return {text: row.innerText, loaded: img.complete && img.naturalWidth > 0,
                labels: [...row.querySelectorAll('.label-name')].map(e => e.textContent)};
        """,
        name,
    )


def upload_from_page(driver: WebDriver, folder: str, files: list[Path]) -> None:
    driver.find_element(By.ID, "upload-folder").send_keys(folder)
    driver.find_element(By.ID, "upload-files").send_keys("\n".join(str(f) for f in files))
    driver.find_element(By.ID, "upload-submit").click()
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".messages li"), timeout=30)


def no_alert(driver: WebDriver) -> bool:
    try:
        _ = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    return False


def test_staff_upload_watch_control_and_requeue(
    driver: WebDriver,
    live_server: Any,
    users: None,
    app_processes: None,
    photos: dict[str, bytes],
    listener_restored: None,
) -> None:
    cfg: Config = settings.SIGHTLINE
    base = live_server.url
    folder = f"t-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="sightline-upload-"))
    for photo, data in photos.items():
        (tmp / photo).write_bytes(data)
    (tmp / "notes.txt").write_text("this is not an image\n")
    login(driver, base, STAFF)

    # Upload chelsea.png (and two more) from the page; its row appears without a reload, with thumbnail and a cat label.
    upload_from_page(driver, folder, [tmp / p for p in photos])
    assert "Uploaded 3" in driver.find_element(By.CSS_SELECTOR, ".messages").text
    driver.execute_script("window.__sightlineNoReload = true")
    name = f"{folder}/chelsea.png"
    row = until(driver, lambda d: (r := result_row(d, name)) and r["loaded"] and r, timeout=90)
    assert len(row["labels"]) == 5 and row["labels"][0] in CATS, row["labels"]
    assert driver.execute_script("return window.__sightlineNoReload === true"), "the page reloaded"
    # An object named like markup shows as text and runs nothing.
    gcs.upload(
        cfg, name=f"{folder}/<script>alert(1)</script>.png", data=photos["chelsea.png"], content_type="image/png"
    )
    until(driver, lambda d: result_row(d, f"{folder}/<script>alert(1)</script>.png"), timeout=90)
    assert "<script>alert(1)</script>.png" in result_row(driver, f"{folder}/<script>alert(1)</script>.png")["text"]
    assert no_alert(driver)
    until(driver, lambda d: all(result_row(d, f"{folder}/{p}") for p in photos), timeout=90)
    screenshot(driver, "dashboard")

    # Stop the listener: the state changes on the page (it drains and pauses); then start it again.
    driver.find_element(By.ID, "listener-stop").click()
    until(driver, lambda d: d.find_element(By.ID, "listener-state").text == "paused", timeout=20)
    assert driver.find_elements(By.ID, "listener-start")
    screenshot(driver, "dashboard-listener-paused")
    driver.find_element(By.ID, "listener-start").click()
    until(driver, lambda d: d.find_element(By.ID, "listener-state").text == "running", timeout=20)

    # Upload a text file; it becomes a failure; requeue it from the failures page.
    upload_from_page(driver, folder, [tmp / "notes.txt"])
    bad = f"{folder}/notes.txt"
    assert wait_for(lambda: failures_for(cfg, [bad])[bad], timeout=60), "no failure record for the text file"
    first = failures_for(cfg, [bad])[bad][0]
    driver.get(f"{base}/failures/?name={folder}")
    failure = driver.find_element(By.CSS_SELECTOR, "tr.failure")
    assert failure.get_attribute("data-image") == bad and "not_an_image" in failure.text
    screenshot(driver, "failures")
    failure.find_element(By.CSS_SELECTOR, "button.requeue").click()
    until(driver, lambda d: "Requeued" in d.find_element(By.CSS_SELECTOR, ".messages").text, timeout=20)
    # The job ran again: the old record is gone and the text file failed anew, with a newer record.
    assert wait_for(
        lambda: [f for f in failures_for(cfg, [bad])[bad] if f["failed_at"] > first["failed_at"]], timeout=60
    ), failures_for(cfg, [bad])
    assert all(f["failed_at"] > first["failed_at"] for f in failures_for(cfg, [bad])[bad])

    # Requeue all asks first and says how many.
    driver.get(f"{base}/failures/")
    driver.find_element(By.ID, "requeue-all").click()
    assert "This requeues" in driver.find_element(By.ID, "requeue-count").text
    screenshot(driver, "failures-requeue-all-confirm")

    # The whole story of one object.
    driver.get(f"{base}/objects/?name={name}")
    assert "Row written" in driver.page_source and "Notification handled" in driver.page_source
    screenshot(driver, "object-story")


def test_a_viewer_gets_no_control_buttons_and_403s(
    driver: WebDriver, live_server: Any, users: None, stack: Any
) -> None:
    base = live_server.url
    login(driver, base, VIEWER)
    assert not driver.find_elements(By.ID, "listener-stop") and not driver.find_elements(By.ID, "listener-start")
    assert not driver.find_elements(By.ID, "upload-form")
    driver.get(f"{base}/failures/")
    assert not driver.find_elements(By.ID, "requeue-all") and not driver.find_elements(
        By.CSS_SELECTOR, "button.requeue"
    )
    screenshot(driver, "viewer-failures")
    statuses = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const token = document.cookie.split('; ').find(c => c.startsWith('csrftoken=')).split('=')[1];
        const urls = ['/listener/stop/', '/listener/start/', '/upload/', '/failures/requeue/', '/failures/dismiss/',
                      '/failures/requeue-all/'];
        Promise.all(urls.map(u => fetch(u, {method: 'POST', headers: {'X-CSRFToken': token},
                                            body: new URLSearchParams({bucket: 'b', name: 'n', generation: '1'})})
          .then(r => r.status))).then(done);
        """
    )
    assert statuses == [403] * 6
    driver.get(f"{base}/failures/requeue-all/")
    assert "403" in driver.title or "Forbidden" in driver.page_source


def test_dropping_files_fills_the_upload_form(driver: WebDriver, live_server: Any, users: None, stack: Any) -> None:
    login(driver, live_server.url, STAFF)
    chosen = driver.execute_script(
        """
        const zone = document.querySelector('[data-dropzone]');
        const transfer = new DataTransfer();
        transfer.items.add(new File(['x'], 'dropped one.png', {type: 'image/png'}));
        transfer.items.add(new File(['y'], 'dropped two.png', {type: 'image/png'}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));
        return [document.getElementById('upload-files').files.length, zone.querySelector('[data-chosen]').textContent];
        """
    )
    assert chosen == [2, "dropped one.png, dropped two.png"]


# --- Every page on a phone and a desktop, light and dark: no sideways scroll, no axe-core violation. ---

AXE = BASE_DIR / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
ADMIN = "browser-admin"
VIEWPORTS = {"phone": (390, 844), "desktop": (1400, 900)}
THEMES = ("light", "dark")


def emulate(driver: WebDriver, *, width: int, height: int, scheme: str) -> None:
    """A phone is emulated as one (viewport meta honoured, touch); the colour scheme as the OS would set it."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
    )


@functools.cache
def axe_source() -> str:
    return AXE.read_text()


def page_problems(driver: WebDriver) -> list[str]:
    """Sideways scroll and every axe-core violation (its default rules: WCAG 2.2 A/AA and best practices)."""
    # htmx polling would swap parts of the page while axe reads it: hold it for this check.
    driver.execute_script(
        "document.body.addEventListener('htmx:beforeRequest', (e) => e.preventDefault());"
        "if (!window.axe) { const s = document.createElement('script'); s.text = arguments[0];"
        " document.head.appendChild(s); }",
        axe_source(),
    )
    problems = []
    scroll, width = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    if scroll > width:
        widest = driver.execute_script(  # what reaches the page's right edge, to say where to look
            "return [...document.querySelectorAll('body *')]"
            ".filter((e) => Math.abs(e.getBoundingClientRect().right + window.scrollX - arguments[0]) < 2)"
            ".slice(0, 3).map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + '.' + e.className)",
            scroll,
        )
        problems.append(f"scrolls sideways: {scroll} px wide in a {width} px viewport ({', '.join(widest)})")
    violations = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {resultTypes: ['violations']}).then((r) => done(r.violations.map((v) =>
          `${v.impact} ${v.id}: ${v.help} (${v.nodes.length}): ` +
          v.nodes.slice(0, 4).map((n) => n.target.join(' ') + (n.failureSummary ? ' [' +
            n.failureSummary.replace(/\\s+/g, ' ').slice(0, 160) + ']' : '')).join('; '))))
          .catch((e) => done(['axe failed: ' + e]));
        """
    )
    return problems + violations


def test_every_page_fits_a_phone_and_passes_axe_in_both_themes(
    driver: WebDriver,
    live_server: Any,
    users: None,
    django_user_model: Any,
    app_processes: None,
    photos: dict[str, bytes],
) -> None:
    """A superuser, so the admin's own pages are checked too, not a 403."""
    cfg: Config = settings.SIGHTLINE
    base = live_server.url
    django_user_model.objects.create_superuser(ADMIN, password=PASSWORD)
    folder = f"a11y-{uuid.uuid4().hex[:6]}"
    for photo, data in photos.items():
        gcs.upload(cfg, name=f"{folder}/{photo}", data=data, content_type="image/png")
    bad = f"{folder}/notes.txt"
    generation = gcs.upload(cfg, name=bad, data=b"not an image\n", content_type="text/plain")
    assert AXE.exists(), f"{AXE} is missing: run `bin/setup --test` (it installs axe-core with npm ci)"
    login(driver, base, ADMIN)
    assert wait_for(lambda: failures_for(cfg, [bad])[bad], timeout=90), "no failure record for the text file"
    until(driver, lambda d: d.get(f"{base}/?name={folder}") or len(d.find_elements(By.CSS_SELECTOR, "tr.result")) >= 3)
    # An operator action, so the audit pages have rows (showing a plan is a read: it writes none).
    driver.find_element(By.ID, "listener-stop").click()
    until(driver, lambda d: d.find_elements(By.ID, "listener-start"), timeout=20)
    driver.find_element(By.ID, "listener-start").click()
    until(driver, lambda d: d.find_elements(By.ID, "listener-stop"), timeout=20)
    from controlplane.alerts.evaluate import notify_test
    from controlplane.api.models import token_create

    notify_test(user=ADMIN)  # a row in the alert history
    token_create(user=django_user_model.objects.get(username=ADMIN), name="a11y")  # a row in the token table
    pages = {
        "dashboard": "/",
        "failures": f"/failures/?name={folder}",
        "requeue all": "/failures/requeue-all/",
        "dismiss": f"/failures/dismiss/?bucket={cfg.bucket}&name={bad}&generation={generation}",
        "reconcile": "/reconcile/",
        "object": f"/objects/?name={folder}/chelsea.png",
        "failed object": f"/objects/?name={bad}",
        "unknown object": f"/objects/?name={folder}/chelsea",
        "infrastructure": "/infra/",
        "destroy": "/infra/destroy/",
        "audit": "/infra/audit/",
        "admin": "/admin/",
        "admin audit log": "/admin/controlplane/auditlog/",
        "admin teardown": "/admin/controlplane/auditlog/teardown/",
        "alerts": "/alerts/",
        "alert history": "/alerts/history/",
        "account": "/account/",
    }
    import os

    if os.environ.get("A11Y_ONLY"):
        pages = {k: v for k, v in pages.items() if k in os.environ["A11Y_ONLY"].split(",")}
    found: dict[str, list[str]] = {}
    for scheme in THEMES:
        for size, (width, height) in VIEWPORTS.items():
            emulate(driver, width=width, height=height, scheme=scheme)
            for page, path in pages.items():
                driver.get(base + path)
                if problems := page_problems(driver):
                    found[f"{page} ({size}, {scheme})"] = problems
                if page == "dashboard":
                    screenshot(driver, f"dashboard-{size}-{scheme}", whole=size != "phone")
            driver.delete_all_cookies()
            driver.get(f"{base}/login/")
            if problems := page_problems(driver):
                found[f"login ({size}, {scheme})"] = problems
            login(driver, base, ADMIN)
    report = "\n".join(f"{where}:\n  " + "\n  ".join(problems) for where, problems in found.items())
    print(report)
    assert not found, f"{len(found)} page views with problems:\n{report}"


def press(driver: WebDriver, *keys: str) -> None:
    """Keys as a keyboard sends them, to whatever has the focus."""
    ActionChains(driver).send_keys(*keys).perform()


def focused(driver: WebDriver) -> str:
    return driver.switch_to.active_element.get_attribute("id") or ""


def tab_to(driver: WebDriver, element_id: str, *, most: int = 60) -> None:
    for _ in range(most):
        press(driver, Keys.TAB)
        if focused(driver) == element_id:
            return
    raise AssertionError(f"#{element_id} is not reachable with Tab")


def test_keyboard_only_finds_an_object_and_stops_and_starts_the_listener(
    driver: WebDriver,
    live_server: Any,
    users: None,
    app_processes: None,
    photos: dict[str, bytes],
    listener_restored: None,
) -> None:
    cfg: Config = settings.SIGHTLINE
    base = live_server.url
    name = f"kbd-{uuid.uuid4().hex[:6]}/chelsea.png"
    gcs.upload(cfg, name=name, data=photos["chelsea.png"], content_type="image/png")
    emulate(driver, width=390, height=844, scheme="dark")  # on a phone the menu, and the search in it, are folded away
    driver.get(f"{base}/login/")
    assert focused(driver) == "id_username"
    press(driver, STAFF, Keys.TAB, PASSWORD, Keys.ENTER)
    until(driver, lambda d: d.find_elements(By.ID, "health"), timeout=10)

    # / opens the menu and focuses the search; shortcuts typed there are text, not commands.
    press(driver, "/")
    assert focused(driver) == "find"
    press(driver, "g", "f")
    assert driver.current_url == f"{base}/" and driver.find_element(By.ID, "find").get_attribute("value") == "gf"
    press(driver, Keys.BACKSPACE, Keys.BACKSPACE, name, Keys.ENTER)
    until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "section.story"), timeout=10)
    assert name in driver.find_element(By.TAG_NAME, "main").text

    # ? lists the shortcuts in a modal dialog; Escape closes it; g d goes home.
    press(driver, "?")
    assert driver.execute_script("return document.getElementById('shortcuts').open")
    assert driver.switch_to.active_element.text == "Close"
    press(driver, Keys.ESCAPE)
    assert not driver.execute_script("return document.getElementById('shortcuts').open")
    press(driver, "g", "d")
    until(driver, lambda d: d.current_url == f"{base}/" and d.find_elements(By.ID, "health"), timeout=10)

    # Tab to the listener's button and press it: it drains and pauses; the focus moves to the button that replaced it.
    tab_to(driver, "listener-stop")
    press(driver, Keys.ENTER)
    until(driver, lambda d: d.find_element(By.ID, "listener-state").text == "paused", timeout=20)
    assert focused(driver) == "listener-start"
    press(driver, Keys.ENTER)
    until(driver, lambda d: d.find_element(By.ID, "listener-state").text == "running", timeout=20)
    assert focused(driver) == "listener-stop"

    # The system asks for dark; the switch picks light, and the pick outlives a reload.
    background = "return getComputedStyle(document.body).backgroundColor"
    assert driver.execute_script(background) == "rgb(12, 17, 29)"
    press(driver, "/")
    tab_to(driver, "theme-toggle")
    assert driver.switch_to.active_element.get_attribute("aria-pressed") == "true"
    press(driver, Keys.ENTER)
    driver.refresh()
    assert driver.execute_script(background) == "rgb(246, 247, 249)"
    assert driver.find_element(By.ID, "theme-toggle").get_attribute("aria-pressed") == "false"
