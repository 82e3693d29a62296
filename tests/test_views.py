"""The operator views through Django's test client, on the local stack: access, CSRF, escaping, reads and writes."""

from __future__ import annotations

import gzip
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from PIL import Image
from rq.job import Job

from bench import bqaudit
from classifier import failures as failure_ops
from classifier import jobs, ledger, listener
from classifier.cloud import bigquery, gcs
from classifier.config import Config
from classifier.queue import enqueue_classification, queue
from controlplane import livecache, selectors, services, views
from controlplane.audit import Actor
from devstack import localstack
from tests.helpers import drop_jobs, failures_for, insert_failure, insert_row, png, run_background_job, wait_for

XSS_NAME = "<script>alert(1)</script>.png"
XSS_LABEL = '<img src=x onerror="alert(2)">'

CONTROL_POSTS = [
    ("listener_control", {"action": "stop"}),
    ("listener_control", {"action": "start"}),
    ("upload", {}),
    ("failure_requeue", {}),
    ("failure_dismiss", {}),
    ("failure_requeue_all", {}),
]


@pytest.fixture
def desired_restored(cfg: Config, stack: Any) -> Any:
    redis = ledger.connection(cfg)
    yield redis
    listener.desired_set(redis, "running")


# --- access -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["dashboard", "recent_partial", "health_partial", "failures", "object_find", "failure_requeue_all"],
)
def test_every_page_needs_a_login(client: Client, db: Any, url: str) -> None:
    response = client.get(reverse(url))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_the_image_view_needs_a_login(client: Client, db: Any, cfg: Config) -> None:
    response = client.get(reverse("object_image"), {"bucket": cfg.bucket, "name": "x.png", "generation": 1})
    assert response.status_code == 302


@pytest.mark.parametrize(("url", "kwargs"), CONTROL_POSTS)
def test_viewers_get_403_on_every_control_url(viewer: Client, stack: Any, url: str, kwargs: dict[str, str]) -> None:
    assert viewer.post(reverse(url, kwargs=kwargs), {"bucket": "b", "name": "n", "generation": "1"}).status_code == 403


def test_viewers_get_403_on_confirmation_pages(viewer: Client, stack: Any) -> None:
    assert viewer.get(reverse("failure_requeue_all")).status_code == 403
    assert viewer.get(reverse("failure_dismiss"), {"bucket": "b", "name": "n", "generation": "1"}).status_code == 403


def test_viewers_see_the_pages_but_no_control_buttons(viewer: Client, cfg: Config, stack: Any) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}/fail.txt"
    insert_failure(cfg, name)
    dashboard = viewer.get(reverse("dashboard")).content.decode()
    failures = viewer.get(reverse("failures"), {"name": name}).content.decode()
    assert "Recent classifications" in dashboard and name in failures
    for marker in ("listener-stop", "listener-start", "upload-form", 'name="images"'):
        assert marker not in dashboard
    for marker in ("Requeue", "Dismiss", "requeue-all"):
        assert marker not in failures


def test_staff_see_the_control_buttons(staff: Client, cfg: Config, stack: Any) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}/fail.txt"
    insert_failure(cfg, name)
    dashboard = staff.get(reverse("dashboard")).content.decode()
    assert "upload-form" in dashboard and ("listener-stop" in dashboard or "listener-start" in dashboard)
    failures = staff.get(reverse("failures"), {"name": name}).content.decode()
    assert "Requeue" in failures and "Dismiss" in failures and "requeue-all" in failures


def test_control_forms_need_a_csrf_token(db: Any, django_user_model: Any, desired_restored: Any) -> None:
    user = django_user_model.objects.create_user("op-csrf", password="x-csrf-pass-1", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(reverse("listener_control", kwargs={"action": "stop"}))
    assert response.status_code == 403
    assert listener.desired_get(desired_restored) == "running"
    page = client.get(reverse("dashboard")).content.decode()
    assert page.count("csrfmiddlewaretoken") >= 3  # logout, listener control, upload


# --- escaping -----------------------------------------------------------------------------------------------------


def test_object_names_and_labels_show_as_text(staff: Client, cfg: Config, stack: Any) -> None:
    folder = f"t-{uuid.uuid4().hex[:8]}/"
    name = folder + XSS_NAME
    generation = gcs.upload(cfg, name=name, data=png(), content_type="image/png")
    insert_row(cfg, name, [(XSS_LABEL, 0.9), ("tabby", 0.1)], generation=generation)
    insert_failure(cfg, name, generation=generation + 1)
    pages = [
        staff.get(reverse("dashboard"), {"name": folder}),
        staff.get(reverse("recent_partial"), {"name": folder}),
        staff.get(reverse("failures"), {"name": folder}),
        staff.get(reverse("object_find"), {"name": name}),
    ]
    for response in pages:
        html = response.content.decode()
        assert response.status_code == 200
        assert "&lt;script&gt;alert(1)&lt;/script&gt;.png" in html
        assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in pages[0].content.decode()


# --- classifications: filters, paging, thumbnails -------------------------------------------------------------------


def test_filters_by_label_name_and_time(staff: Client, cfg: Config, stack: Any) -> None:
    folder = f"t-{uuid.uuid4().hex[:8]}/"
    old = datetime.now(UTC) - timedelta(days=2)
    insert_row(cfg, folder + "cat.png", [("tabby", 0.6), ("Egyptian cat", 0.3)])
    insert_row(cfg, folder + "cup.png", [("espresso", 0.9), ("cup", 0.05)])
    insert_row(cfg, folder + "old-cat.png", [("tiger cat", 0.8)], upload=old)

    def names(**params: str) -> set[str]:
        response = staff.get(reverse("recent_partial"), {"name": folder, **params})
        return {r["image_name"].removeprefix(folder) for r in response.context["rows"]}

    assert names() == {"cat.png", "cup.png"}  # the last day by default: one day's partitions
    assert names(range="7d") == {"cat.png", "cup.png", "old-cat.png"}
    assert names(range="7d", label="CAT") == {"cat.png", "old-cat.png"}
    assert names(label="espresso") == {"cup.png"}
    assert names(range="24h") == {"cat.png", "cup.png"}
    assert names(until=(old + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")) == {"old-cat.png"}
    two_days_back = (old + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert names(before=two_days_back) == {"old-cat.png"}  # "The day before", twice
    assert names(label="100%_") == set()  # LIKE wildcards are plain text here


def test_filters_by_top1_confidence_beside_the_label(staff: Client, cfg: Config, stack: Any) -> None:
    folder = f"t-{uuid.uuid4().hex[:8]}/"
    insert_row(cfg, folder + "sure.png", [("tabby", 0.9), ("lynx", 0.05)])
    insert_row(cfg, folder + "edge.png", [("tabby", 0.5), ("tiger cat", 0.4)])
    insert_row(cfg, folder + "unsure.png", [("carton", 0.3), ("tabby", 0.2)])
    five = [("espresso", 0.4), ("cup", 0.2), ("mug", 0.1), ("plate", 0.05), ("Egyptian cat", 0.01)]
    insert_row(cfg, folder + "fifth.png", five)

    def names(**params: str) -> set[str]:
        response = staff.get(reverse("recent_partial"), {"name": folder, **params})
        assert response.context["refused"] is None
        return {r["image_name"].removeprefix(folder) for r in response.context["rows"]}

    assert names(min_confidence="0.5") == {"sure.png", "edge.png"}  # inclusive
    assert names(max_confidence="0.5") == {"edge.png", "unsure.png", "fifth.png"}
    assert names(min_confidence="0.45", max_confidence="0.55") == {"edge.png"}
    assert names(min_confidence="0.5", max_confidence="0.5") == {"edge.png"}
    assert names(min_confidence="0", max_confidence="1") == {"sure.png", "edge.png", "unsure.png", "fifth.png"}
    # Beside the label, in the same query: the label matches any of the top 5, the range the top-1 only.
    assert names(label="tabby", min_confidence="0.4") == {"sure.png", "edge.png"}
    assert names(label="tabby", max_confidence="0.4") == {"unsure.png"}
    assert names(label="egyptian") == {"fifth.png"}  # the fifth label counts
    with bqaudit.recording() as seen:
        names(label="cat", min_confidence="0.1", max_confidence="0.9", range="7d")
    assert len(seen) == 1 and "@min_confidence" in seen[0].sql and "@max_confidence" in seen[0].sql
    assert bqaudit.verdict(seen[0].sql, {cfg.table_id: "processed_at"}) == {cfg.table_id: bqaudit.PRUNES}


@pytest.mark.parametrize(
    ("low", "high", "reason"),
    [
        ("0.8", "0.2", "The minimum confidence (0.8) is above the maximum (0.2)."),
        ("1.5", "", "must be from 0 to 1"),
        ("", "-0.1", "must be from 0 to 1"),
        ("nan", "", "must be from 0 to 1"),
        ("inf", "", "must be from 0 to 1"),
        ("high", "", "must be a number from 0 to 1, not 'high'"),
    ],
)
def test_a_bad_confidence_range_is_refused_with_a_reason_and_queries_nothing(
    staff: Client, cfg: Config, stack: Any, low: str, high: str, reason: str
) -> None:
    livecache.forget_all()
    params = {"min_confidence": low, "max_confidence": high}
    with bqaudit.recording() as seen:
        response = staff.get(reverse("recent_partial"), params)
    assert response.status_code == 200
    assert reason in response.context["refused"] and response.context["rows"] == []
    assert [q.sql for q in seen] == []
    page = staff.get(reverse("dashboard"), params).content.decode()
    assert 'id="filter-refused"' in page and "No classifications" not in page
    assert f'value="{low}"' in page  # what was typed stays in the form, to correct it


def test_the_live_list_comes_from_the_workers_record_without_a_bigquery_query(
    staff: Client, cfg: Config, stack: Any
) -> None:
    from classifier import stats

    folder = f"t-{uuid.uuid4().hex[:8]}/"
    start = datetime.now(UTC)  # processed now, as a worker's rows are: after the record began
    for i in range(views.PAGE_SIZE + 2):  # more than a page: the record proves the page whenever it began
        insert_row(cfg, f"{folder}{i:02d}.png", [("tabby", 0.5)], upload=start + timedelta(seconds=i))
    livecache.forget_all()
    with bqaudit.recording() as seen:
        response = staff.get(reverse("recent_partial"))
    assert [q.sql for q in seen] == []
    assert response.context["rows_source"] == "redis" and response.context["next_query"]
    shown = [r["image_name"] for r in response.context["rows"]]
    window_start, window_end = response.context["window_start"], response.context["window_end"]
    direct = bigquery.query(
        cfg,
        f"SELECT image_name FROM `{cfg.table_id}` WHERE processed_at >= @start AND processed_at < @end "
        "ORDER BY processed_at DESC, upload DESC LIMIT @n",
        [
            bigquery.param("start", "TIMESTAMP", window_start),
            bigquery.param("end", "TIMESTAMP", window_end),
            bigquery.param("n", "INT64", views.PAGE_SIZE),
        ],
    )
    assert shown == [r["image_name"] for r in direct]
    assert shown[0] == f"{folder}{views.PAGE_SIZE + 1:02d}.png"
    row = response.context["rows"][0]
    assert isinstance(row["processed_at"], datetime) and row["latency_s"] == pytest.approx(2.0)
    assert "no BigQuery query" in response.content.decode()

    # A record that cannot say since when it is complete (Redis lost it) proves nothing: BigQuery answers.
    redis = ledger.connection(cfg)
    since = redis.get(stats.RECENT_SINCE_KEY)
    redis.delete(stats.RECENT_SINCE_KEY)
    try:
        with bqaudit.recording() as seen:
            fallback = staff.get(reverse("recent_partial"))
    finally:
        redis.set(stats.RECENT_SINCE_KEY, since)
    assert len(seen) == 1 and fallback.context["rows_source"] == "bigquery"
    assert [r["image_name"] for r in fallback.context["rows"]] == shown
    assert "from BigQuery" in fallback.content.decode()


def test_newest_first_and_paged(staff: Client, cfg: Config, stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from controlplane import views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    folder = f"t-{uuid.uuid4().hex[:8]}/"
    start = datetime.now(UTC) - timedelta(minutes=5)
    for i in range(5):
        insert_row(cfg, f"{folder}{i}.png", [("tabby", 0.5)], upload=start + timedelta(seconds=i))
    seen = []
    for page in (1, 2, 3):
        response = staff.get(reverse("recent_partial"), {"name": folder, "page": page})
        seen.append([r["image_name"].removeprefix(folder) for r in response.context["rows"]])
    assert seen == [["4.png", "3.png"], ["2.png", "1.png"], ["0.png"]]
    first = staff.get(reverse("dashboard"), {"name": folder}).content.decode()
    assert "Older →" in first and 'hx-trigger="every 3s"' in first
    third = staff.get(reverse("dashboard"), {"name": folder, "page": 3}).content.decode()
    assert "← Newer" in third and "Older →" not in third
    assert f'hx-get="{reverse("recent_partial")}' not in third  # only the first page refreshes itself


def test_thumbnail_and_original_come_through_the_app(viewer: Client, cfg: Config, stack: Any) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}/sub dir/ünï <b>.png"
    data = png((640, 480))
    generation = gcs.upload(cfg, name=name, data=data, content_type="image/png")
    ref = {"bucket": cfg.bucket, "name": name, "generation": generation}
    thumb = viewer.get(reverse("object_image"), {**ref, "size": "thumb"})
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 224
    assert "private" in thumb["Cache-Control"] and "sandbox" in thumb["Content-Security-Policy"]
    original = viewer.get(reverse("object_image"), ref)
    assert original.status_code == 200 and original["Content-Type"] == "image/png"
    assert b"".join(original.streaming_content) == data
    assert viewer.get(reverse("object_image"), {**ref, "generation": generation + 1}).status_code == 404
    assert viewer.get(reverse("object_image"), {**ref, "bucket": "someone-elses-bucket"}).status_code == 404


def test_a_gzip_encoded_image_shows_as_thumbnail_and_original(viewer: Client, cfg: Config, stack: Any) -> None:
    from tests.test_gcs import upload_gzip

    name = f"t-{uuid.uuid4().hex[:8]}/zipped.png"
    data = png((320, 240))
    generation = upload_gzip(cfg, name, data, "image/png")
    ref = {"bucket": cfg.bucket, "name": name, "generation": generation}
    thumb = viewer.get(reverse("object_image"), {**ref, "size": "thumb"})
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size == (224, 168)
    original = viewer.get(reverse("object_image"), ref)
    assert original["Content-Encoding"] == "gzip"  # the stored bytes, as stored: the browser inflates them
    body = b"".join(original.streaming_content)
    assert gzip.decompress(body) == data and original["Content-Length"] == str(len(body))


def test_a_non_image_object_is_a_download_never_inline(viewer: Client, cfg: Config, stack: Any) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}/page.html"
    generation = gcs.upload(cfg, name=name, data=b"<script>alert(1)</script>", content_type="text/html")
    response = viewer.get(reverse("object_image"), {"bucket": cfg.bucket, "name": name, "generation": generation})
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment")
    thumb = viewer.get(
        reverse("object_image"), {"bucket": cfg.bucket, "name": name, "generation": generation, "size": "thumb"}
    )
    assert thumb.status_code == 200 and thumb.content == views._placeholder()  # a grey square, never the HTML


# --- pipeline health ------------------------------------------------------------------------------------------------


def test_health_shows_throughput_latency_and_failures(staff: Client, cfg: Config, stack: Any) -> None:
    folder = f"t-{uuid.uuid4().hex[:8]}/"
    for latency in (1.0, 2.0, 3.0):
        insert_row(cfg, f"{folder}{latency}.png", [("tabby", 0.5)], latency_s=latency)
    livecache.forget_all()  # the figures are shared for a few seconds
    response = staff.get(reverse("health_partial"))
    html = response.content.decode()
    tp = response.context["tp"]
    assert tp["rows"] >= 3 and tp["p50"] is not None and tp["p95"] >= tp["p50"]
    assert response.context["failure_total"] is not None
    for marker in ('id="listener-state"', 'id="queue"', 'id="workers"', 'id="throughput"', 'id="latency"', "<svg"):
        assert marker in html
    assert response.context["queue"]["depth"] >= 0


# --- listener control -----------------------------------------------------------------------------------------------


def test_staff_stop_and_start_the_listener(staff: Client, desired_restored: Any) -> None:
    assert staff.post(reverse("listener_control", kwargs={"action": "stop"})).status_code == 302
    assert listener.desired_get(desired_restored) == "paused"
    partial = staff.post(reverse("listener_control", kwargs={"action": "start"}), HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and 'id="listener-state"' in partial.content.decode()
    assert listener.desired_get(desired_restored) == "running"
    assert staff.post(reverse("listener_control", kwargs={"action": "explode"})).status_code == 404
    assert staff.get(reverse("listener_control", kwargs={"action": "stop"})).status_code == 405


@pytest.fixture
def own_listener(cfg: Config, stack: Any) -> Any:
    """A real `manage.py runlistener` for one test (not the session's pipeline: tests after this one expect none)."""
    service = localstack.listener_service(cfg, localstack.app_env(cfg))
    service.start()
    yield service
    service.stop()


@pytest.mark.e2e
def test_the_running_listener_obeys_the_dashboard(
    staff: Client, cfg: Config, own_listener: Any, desired_restored: Any
) -> None:
    def state() -> str:
        return selectors.listener_status()["state"]

    assert wait_for(lambda: state() == "running", timeout=20), state()
    staff.post(reverse("listener_control", kwargs={"action": "stop"}))
    assert wait_for(lambda: state() == "paused", timeout=10), state()
    staff.post(reverse("listener_control", kwargs={"action": "start"}))
    assert wait_for(lambda: state() == "running", timeout=10), state()


# --- failures -------------------------------------------------------------------------------------------------------


def test_requeue_one_clears_the_outcome_deletes_the_record_and_forces_a_job(
    staff: Client, cfg: Config, stack: Any
) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}/broken.txt"
    failure = insert_failure(cfg, name)
    generation = failure["generation"]
    response = staff.post(reverse("failure_requeue"), {"bucket": cfg.bucket, "name": name, "generation": generation})
    assert response.status_code == 302 and response["Location"] == reverse("failures")
    job_id = jobs.job_id(cfg.bucket, name, generation)
    redis = ledger.connection(cfg)
    assert Job.exists(job_id, redis)
    # A worker (when one runs) may record a new failure for it; the one acted on is gone.
    assert all(f["reason_code"] != "not_an_image" for f in failures_for(cfg, [name])[name])
    assert ledger.outcome_get(redis, ledger.object_key(cfg.bucket, name, generation)) in (None, "failure:object_gone")
    drop_jobs(cfg, [job_id])


def test_requeue_of_an_unknown_failure_says_so(staff: Client, cfg: Config, stack: Any) -> None:
    response = staff.post(
        reverse("failure_requeue"), {"bucket": cfg.bucket, "name": "no/such.png", "generation": 1}, follow=True
    )
    assert "no open failure" in response.content.decode()


def test_dismiss_confirms_then_deletes(staff: Client, cfg: Config, stack: Any) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}/dismiss <me>.txt"
    generation = insert_failure(cfg, name)["generation"]
    ref = {"bucket": cfg.bucket, "name": name, "generation": generation}
    confirm = staff.get(reverse("failure_dismiss"), ref)
    assert confirm.status_code == 200 and "Dismiss this failure?" in confirm.content.decode()
    assert "dismiss &lt;me&gt;.txt" in confirm.content.decode()
    assert failures_for(cfg, [name])[name]  # a GET changes nothing
    response = staff.post(reverse("failure_dismiss"), ref)
    assert response.status_code == 302
    assert failures_for(cfg, [name])[name] == []
    assert ledger.outcome_get(ledger.connection(cfg), ledger.object_key(cfg.bucket, name, generation)) is None


def test_requeue_all_says_how_many_and_refuses_a_stale_count(
    staff: Client, cfg: Config, stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [f"t-{uuid.uuid4().hex[:8]}/all-{i}.txt" for i in range(3)]
    generations = {name: insert_failure(cfg, name)["generation"] for name in names}
    confirm = staff.get(reverse("failure_requeue_all"))
    count = confirm.context["count"]
    assert count >= 3 and f"This requeues <strong>{count}</strong> failed object" in confirm.content.decode()
    stale = staff.post(reverse("failure_requeue_all"), {"expected": count + 1}, follow=True)
    assert "changed since you confirmed" in stale.content.decode()
    assert all(failures_for(cfg, names).values())
    acted_on = selectors.failure_list_all()
    done = staff.post(reverse("failure_requeue_all"), {"expected": count}, follow=True)
    assert f"Requeueing {count} failed object" in done.content.decode()
    op = done.context["operation"]
    assert op["state"] == "queued" and op["total"] == count
    monkeypatch.setattr(failure_ops, "CHUNK", 2)
    with bqaudit.recording() as seen:
        run_background_job(cfg, f"failures-requeue-all-{op['id']}")  # in the background: the rq worker's
    deletes = [q for q in seen if q.sql.startswith("DELETE")]
    assert len(deletes) == -(-count // 2)  # one DELETE per chunk of keys, never one per failure
    assert len(seen) == len(deletes) + 1  # and one SELECT of what to requeue
    op = failure_ops.op_get(ledger.connection(cfg), op["id"])
    assert op["state"] == "done" and op["done"] == count
    page = staff.get(reverse("failures")).content.decode()
    assert f"{count} of {count} requeued" in page
    assert all(f["reason_code"] != "not_an_image" for found in failures_for(cfg, names).values() for f in found)
    assert all(Job.exists(jobs.job_id(cfg.bucket, n, g), ledger.connection(cfg)) for n, g in generations.items())
    # Every open failure was requeued, this test's and any other's: leave none of those jobs queued.
    drop_jobs(cfg, [jobs.job_id(f["bucket"], f["image_name"], f["generation"]) for f in acted_on])


def test_a_delete_the_streaming_buffer_refused_shows_pending_and_is_retried(
    staff: Client, cfg: Config, stack: Any, monkeypatch: Any
) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}/buffered.txt"
    generation = insert_failure(cfg, name)["generation"]
    redis = ledger.connection(cfg)
    real_dml = bigquery.dml

    def refuse(*args: Any, **kwargs: Any) -> int:
        raise bigquery.StreamingBufferBusy("would affect rows in the streaming buffer")

    monkeypatch.setattr(bigquery, "dml", refuse)
    livecache.forget_all()
    redis.delete(failure_ops.RETRY_SCHEDULED_KEY)
    earlier = set(queue(cfg).scheduled_job_registry.get_job_ids())
    before = selectors.failure_count()
    services.failure_dismiss(bucket=cfg.bucket, name=name, generation=generation, actor=Actor(name="test"))
    assert failures_for(cfg, [name])[name]  # still in BigQuery...
    rows = selectors.failure_list(name=name)[0]
    assert [r["pending_delete"] for r in rows] == [True]  # ...shown as pending, not as open
    page = staff.get(reverse("failures"), {"name": name}).content.decode()
    assert "delete pending" in page and 'class="primary small requeue"' not in page
    assert selectors.failure_count() == before - 1
    scheduled = queue(cfg).scheduled_job_registry.get_job_ids()
    retries = [j for j in scheduled if j.startswith(failure_ops.RETRY_JOB_PREFIX) and j not in earlier]
    assert len(retries) == 1  # scheduled once: the rq worker's scheduler runs it
    retry = retries[0]
    failure_ops.retry_pending(cfg, redis)  # still refused: stays pending
    assert ledger.object_key(cfg.bucket, name, generation) in failure_ops.pending(redis)
    monkeypatch.setattr(bigquery, "dml", real_dml)
    run_background_job(cfg, retry)
    assert failures_for(cfg, [name])[name] == []
    assert ledger.object_key(cfg.bucket, name, generation) not in failure_ops.pending(redis)


# --- the object's story ---------------------------------------------------------------------------------------------


def test_object_story_shows_rows_failures_job_and_outcome(staff: Client, cfg: Config, stack: Any) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}/story.png"
    generation = gcs.upload(cfg, name=name, data=png(), content_type="image/png")
    insert_row(cfg, name, [("tabby", 0.7)], generation=generation)
    ledger.outcome_set(ledger.connection(cfg), ledger.object_key(cfg.bucket, name, generation), "row")
    insert_failure(cfg, name, generation=generation - 5, code="undecodable")
    response = staff.get(reverse("object_find"), {"name": name})
    html = response.content.decode()
    story = response.context["story"]
    assert [g["generation"] for g in story["generations"]] == [generation, generation - 5]
    assert story["generations"][0]["outcome"] == "row" and story["generations"][0]["rows"]
    assert "tabby" in html and "undecodable" in html and "live" in html
    assert jobs.job_id(cfg.bucket, name, generation) in html  # the deterministic job id, even without a job


def test_find_by_job_id(staff: Client, cfg: Config, stack: Any) -> None:
    name = f"t-{uuid.uuid4().hex[:8]}/by-job.png"
    job_id, _ = enqueue_classification(cfg, bucket=cfg.bucket, name=name, generation=3, event_time=None)
    response = staff.get(reverse("object_find"), {"name": job_id})
    assert response.context["name"] == name
    assert job_id in response.content.decode() and "Notification handled" in response.content.decode()
    drop_jobs(cfg, [job_id])


def test_unknown_object_suggests_names(staff: Client, cfg: Config, stack: Any) -> None:
    folder = f"t-{uuid.uuid4().hex[:8]}/"
    insert_row(cfg, folder + "needle.png", [("tabby", 0.7)])
    response = staff.get(reverse("object_find"), {"name": folder + "needle"})
    assert folder + "needle.png" in response.context["suggestions"]


# --- upload ---------------------------------------------------------------------------------------------------------


def test_staff_upload_several_files(staff: Client, cfg: Config, stack: Any) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    folder = f"t-{uuid.uuid4().hex[:8]}"
    files = [
        SimpleUploadedFile("a.png", png(), content_type="image/png"),
        SimpleUploadedFile("b ü.png", png(color=(0, 0, 255)), content_type="image/png"),
    ]
    response = staff.post(reverse("upload"), {"folder": folder + "/", "images": files}, follow=True)
    assert "Uploaded 2" in response.content.decode()
    for name in ("a.png", "b ü.png"):
        info = gcs.object_current(cfg, name=f"{folder}/{name}")
        assert info is not None and info.content_type == "image/png"


def test_upload_refuses_bad_names_and_empty_posts(staff: Client, stack: Any) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    bad = SimpleUploadedFile("x.png", png(), content_type="image/png")
    response = staff.post(reverse("upload"), {"folder": "in\x07box", "images": [bad]}, follow=True)
    assert "control characters" in response.content.decode()
    assert "at least one file" in staff.post(reverse("upload"), {}, follow=True).content.decode()


def test_upload_refuses_files_over_the_limit_unread(staff: Client, cfg: Config, stack: Any) -> None:
    import dataclasses

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import override_settings

    name = f"t-{uuid.uuid4().hex[:8]}"
    with override_settings(SIGHTLINE=dataclasses.replace(cfg, max_image_bytes=100)):
        response = staff.post(
            reverse("upload"), {"folder": name, "images": [SimpleUploadedFile("big.png", png())]}, follow=True
        )
    assert "over MAX_IMAGE_BYTES=100" in response.content.decode()
    assert gcs.object_current(cfg, name=f"{name}/big.png") is None
