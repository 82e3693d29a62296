"""django-rq's job pages in headless Chromium: they read our JSON jobs (they unpickled them and failed before)."""

from __future__ import annotations

import uuid
from typing import Any

from django.urls import reverse
from selenium.webdriver.common.by import By

from classifier.config import Config
from classifier.queue import enqueue_classification, queue
from tests.test_browser import STAFF, driver, login, pytestmark, users  # noqa: F401  (fixtures and marks)


def test_a_queued_job_shows_its_arguments(driver: Any, live_server: Any, users: None, cfg: Config, stack: Any) -> None:  # noqa: F811
    name = f"t-{uuid.uuid4().hex[:8]}/queued-for-rq-page.png"
    job_id, _ = enqueue_classification(cfg, bucket=cfg.bucket, name=name, generation=1, event_time=None)
    try:
        login(driver, live_server.url, STAFF)
        driver.get(live_server.url + reverse("django_rq:job_detail", args=[0, job_id]))
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "Server Error" not in body and job_id in body
        assert name in body  # the arguments, read with the JSON serializer
    finally:
        queue(cfg).remove(job_id)
