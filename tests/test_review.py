"""The review queue on the local stack: candidates from rows inserted into the BigQuery emulator, verdicts written by
the service (stored, replaced, refused, audited), and the pages through Django's test client."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from bench import bqaudit
from classifier.cloud import bigquery
from classifier.config import BASE_DIR, Config
from controlplane import livecache
from controlplane.audit import Actor
from controlplane.models import AuditLog
from controlplane.review import selectors, services
from controlplane.review.labels import imagenet_labels
from controlplane.review.models import Review
from controlplane.review.rules import Thresholds

# Top-5s, most confident first. Sure: 0.9 and far ahead; the others are candidates for the default thresholds.
SURE = [("tabby", 0.9), ("tiger cat", 0.05), ("Egyptian cat", 0.03), ("lynx", 0.01), ("Persian cat", 0.01)]
LOW = [("espresso", 0.3), ("cup", 0.1), ("eggnog", 0.05), ("coffee mug", 0.05), ("soup bowl", 0.02)]
LOWEST = [
    ("moped", 0.2),
    ("motor scooter", 0.15),
    ("crash helmet", 0.1),
    ("go-kart", 0.05),
    ("bicycle-built-for-two", 0.01),
]
CLOSE = [("missile", 0.55), ("projectile", 0.5), ("space shuttle", 0.1), ("airliner", 0.02), ("warplane", 0.01)]


def put_row(
    cfg: Config,
    name: str,
    labels: list[tuple[str, float]],
    *,
    model: str,
    generation: int | None = None,
    processed_at: datetime | None = None,
) -> dict[str, Any]:
    """A classification row as a worker writes it, straight into the emulator's table."""
    processed_at = processed_at or datetime.now(UTC) - timedelta(seconds=5)
    row = {
        "image_name": name,
        "upload": (processed_at - timedelta(seconds=1)).isoformat(),
        "classifications": [{"classification": label, "confidence": c} for label, c in labels],
        "bucket": cfg.bucket,
        "generation": generation or time.time_ns() // 1000,
        "content_type": "image/png",
        "size_bytes": 10,
        "model": model,
        "processed_at": processed_at.isoformat(),
    }
    bigquery.insert_row(cfg, cfg.table_id, row, row_id=uuid.uuid4().hex)
    return row


@pytest.fixture
def model() -> str:
    """A model name of this test only: the session's table holds every test's rows, the queue is per model."""
    return f"review-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def actor(db: Any) -> Actor:
    user = User.objects.create_user("reviewer", password="reviewer-pass-0123", is_staff=True)
    return Actor.of(user)


def spec(model: str, range_: str = "24h", thresholds: Thresholds | None = None) -> selectors.QueueSpec:
    return selectors.QueueSpec.of(model=model, range_=range_, thresholds=thresholds or Thresholds())


def queue_names(model: str, **kwargs: Any) -> list[str]:
    livecache.forget_all()
    page, _age = selectors.review_queue(spec=spec(model, **kwargs))
    return [r["image_name"] for r in page.rows]


# --- the queue --------------------------------------------------------------------------------------------------


def test_the_queue_holds_the_unsure_rows_of_the_model_and_window_least_sure_first(
    cfg: Config, stack: Any, db: Any, model: str
) -> None:
    p = f"t-{uuid.uuid4().hex[:8]}/"
    put_row(cfg, p + "sure.png", SURE, model=model)
    put_row(cfg, p + "low.png", LOW, model=model)
    put_row(cfg, p + "lowest.png", LOWEST, model=model)
    put_row(cfg, p + "close.png", CLOSE, model=model)
    put_row(cfg, p + "other-model.png", LOWEST, model=model + "-b")
    put_row(cfg, p + "old.png", LOWEST, model=model, processed_at=datetime.now(UTC) - timedelta(days=3))

    assert queue_names(model) == [p + "lowest.png", p + "low.png", p + "close.png"]
    # Ties (the same top-1 and margin) go oldest first.
    assert queue_names(model, range_="7d") == [p + "old.png", p + "lowest.png", p + "low.png", p + "close.png"]
    livecache.forget_all()
    page, _ = selectors.review_queue(spec=spec(model))
    assert page.pending == 3
    close = page.rows[2]
    assert close["reasons"] == ["top-1 only 5.0% ahead of top-2, under 10%"]
    assert [c["classification"] for c in close["classifications"]] == [label for label, _ in CLOSE]
    # Narrowed for a visit: only top-1 below 25%; the margin rule off.
    assert queue_names(model, thresholds=Thresholds(confidence_below=0.25, margin_below=0.0)) == [p + "lowest.png"]


def test_the_queue_pages_and_counts_what_is_pending(cfg: Config, stack: Any, db: Any, model: str) -> None:
    p = f"t-{uuid.uuid4().hex[:8]}/"
    for i in range(7):
        put_row(cfg, f"{p}{i}.png", [("espresso", 0.1 + i / 100), ("cup", 0.05)], model=model)
    livecache.forget_all()
    first, _ = selectors.review_queue(spec=spec(model), limit=3, offset=0)
    third, _ = selectors.review_queue(spec=spec(model), limit=3, offset=6)
    assert [r["image_name"] for r in first.rows] == [f"{p}{i}.png" for i in range(3)]
    assert [r["image_name"] for r in third.rows] == [f"{p}6.png"] and third.pending == 7
    beyond, _ = selectors.review_queue(spec=spec(model), limit=3, offset=30)
    assert beyond.offset == 6 and [r["image_name"] for r in beyond.rows] == [f"{p}6.png"]


def test_reviewed_objects_leave_the_queue(cfg: Config, stack: Any, actor: Actor, model: str) -> None:
    p = f"t-{uuid.uuid4().hex[:8]}/"
    low = put_row(cfg, p + "low.png", LOW, model=model)
    put_row(cfg, p + "lowest.png", LOWEST, model=model)
    assert queue_names(model) == [p + "lowest.png", p + "low.png"]
    services.review_record(
        bucket=cfg.bucket,
        name=low["image_name"],
        generation=low["generation"],
        model=model,
        verdict="unclear",
        actor=actor,
    )
    page, _ = selectors.review_queue(spec=spec(model))  # no forget: the verdict changed the query
    assert [r["image_name"] for r in page.rows] == [p + "lowest.png"] and page.pending == 1


def test_every_review_query_is_capped_and_prunes(cfg: Config, stack: Any, actor: Actor, model: str) -> None:
    row = put_row(cfg, f"t-{uuid.uuid4().hex[:8]}/a.png", LOW, model=model)
    livecache.forget_all()
    with bqaudit.recording() as seen:
        selectors.review_queue(spec=spec(model, range_="30d"))
        selectors.models_in_window(start=datetime.now(UTC) - timedelta(days=1), end=datetime.now(UTC))
        services.review_record(
            bucket=cfg.bucket,
            name=row["image_name"],
            generation=row["generation"],
            model=model,
            verdict="correct",
            actor=actor,
        )
    parts = {cfg.table_id: "processed_at", cfg.failures_table_id: "failed_at"}
    assert len(seen) == 3
    assert all(q.max_bytes == cfg.max_bytes_billed for q in seen)
    assert [bqaudit.verdict(q.sql, parts) for q in seen] == [{cfg.table_id: bqaudit.PRUNES}] * 3


def test_the_models_of_the_window(cfg: Config, stack: Any, db: Any, model: str) -> None:
    put_row(cfg, f"t-{uuid.uuid4().hex[:8]}/a.png", LOW, model=model)
    livecache.forget_all()
    now = datetime.now(UTC)
    found = selectors.models_in_window(start=now - timedelta(hours=1), end=now + timedelta(minutes=5))
    assert {"model": model, "rows": 1} in found


# --- verdicts ---------------------------------------------------------------------------------------------------


def _record(cfg: Config, row: dict[str, Any], model: str, actor: Actor, verdict: str, label: str = "") -> Review:
    return services.review_record(
        bucket=cfg.bucket,
        name=row["image_name"],
        generation=row["generation"],
        model=model,
        verdict=verdict,
        true_label=label,
        actor=actor,
    )


def test_a_verdict_is_stored_with_what_it_judged_and_audited(cfg: Config, stack: Any, actor: Actor, model: str) -> None:
    row = put_row(cfg, f"t-{uuid.uuid4().hex[:8]}/espresso.png", LOW, model=model)
    review = _record(cfg, row, model, actor, "correct", "ignored for correct")
    stored = Review.objects.get(image_name=row["image_name"])
    assert (stored.pk, stored.verdict, stored.true_label) == (review.pk, "correct", "espresso")
    assert (stored.predicted_label, stored.predicted_confidence, stored.model) == ("espresso", 0.3, model)
    assert (stored.bucket, stored.generation, stored.reviewer, stored.reviewer_name) == (
        cfg.bucket,
        row["generation"],
        actor.user,
        "reviewer",
    )
    assert datetime.now(UTC) - stored.reviewed_at < timedelta(minutes=1)
    entry = AuditLog.objects.get(action=AuditLog.Action.REVIEW)
    assert entry.outcome == AuditLog.Outcome.SUCCEEDED and entry.actor == "reviewer"
    assert row["image_name"] in entry.summary and "correct" in entry.summary


def test_a_new_verdict_replaces_the_earlier_one(cfg: Config, stack: Any, actor: Actor, model: str) -> None:
    row = put_row(cfg, f"t-{uuid.uuid4().hex[:8]}/espresso.png", LOW, model=model)
    _record(cfg, row, model, actor, "correct")
    _record(cfg, row, model, actor, "wrong", "  Coffee MUG ")
    stored = Review.objects.get(image_name=row["image_name"])
    assert (stored.verdict, stored.true_label) == ("wrong", "coffee mug")
    _record(cfg, row, model, actor, "unclear", "cup")
    assert list(Review.objects.filter(image_name=row["image_name"]).values_list("verdict", "true_label")) == [
        ("unclear", "")
    ]
    summaries = list(AuditLog.objects.filter(action=AuditLog.Action.REVIEW).values_list("summary", flat=True))
    assert len(summaries) == 3 and sum("replaced the earlier verdict" in s for s in summaries) == 2


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"generation": 1}, "no row of"),
        ({"name": "no-such-object.png"}, "no row of"),
        ({"model": "another-model"}, "no row of"),
        ({"verdict": "maybe"}, "unknown verdict"),
        ({"verdict": "wrong", "true_label": "not a label at all"}, "not one of the 1000 ImageNet labels"),
        ({"verdict": "wrong", "true_label": ""}, "not one of the 1000 ImageNet labels"),
        ({"verdict": "wrong", "true_label": "espresso"}, "the model's own label"),
    ],
)
def test_a_verdict_is_refused_for_an_unknown_row_or_label_and_the_refusal_audited(
    cfg: Config, stack: Any, actor: Actor, model: str, change: dict[str, Any], why: str
) -> None:
    row = put_row(cfg, f"t-{uuid.uuid4().hex[:8]}/espresso.png", LOW, model=model)
    args = {
        "bucket": cfg.bucket,
        "name": row["image_name"],
        "generation": row["generation"],
        "model": model,
        "verdict": "correct",
        "true_label": "",
        **change,
    }
    with pytest.raises(services.ReviewRefused, match=why):
        services.review_record(actor=actor, **args)
    assert not Review.objects.exists()
    entry = AuditLog.objects.get(action=AuditLog.Action.REVIEW)
    assert entry.outcome == AuditLog.Outcome.REFUSED and why in entry.error


def test_a_verdict_on_a_row_older_than_the_lookback_is_refused(
    cfg: Config, stack: Any, actor: Actor, model: str
) -> None:
    old = datetime.now(UTC) - selectors.LOOKBACK - timedelta(hours=1)
    row = put_row(cfg, f"t-{uuid.uuid4().hex[:8]}/old.png", LOW, model=model, processed_at=old)
    with pytest.raises(services.ReviewRefused, match="no row of"):
        _record(cfg, row, model, actor, "correct")


def test_the_label_list_is_torchvisions() -> None:
    from torchvision.models import ResNet50_Weights

    assert imagenet_labels() == tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


# --- the pages --------------------------------------------------------------------------------------------------


def test_the_queue_needs_a_login_and_verdicts_need_staff(
    client: Client, viewer: Client, cfg: Config, stack: Any
) -> None:
    assert client.get(reverse("review:queue")).status_code == 302
    assert client.post(reverse("review:verdict")).status_code == 302
    assert viewer.post(reverse("review:verdict"), {"verdict": "correct"}).status_code == 403


def test_viewers_see_the_queue_read_only(viewer: Client, cfg: Config, stack: Any, model: str) -> None:
    p = f"t-{uuid.uuid4().hex[:8]}/"
    put_row(cfg, p + "lowest.png", LOWEST, model=model)
    put_row(cfg, p + '<img src=x onerror="alert(1)">.png', LOW, model=model)
    livecache.forget_all()
    page = viewer.get(reverse("review:queue"), {"model": model}).content.decode()
    assert p + "lowest.png" in page and "2</strong> pending" in page
    assert "verdict-correct" not in page and "true-label" not in page and "read-only" in page
    assert "imagenet-labels" not in page
    assert '<img src=x onerror="alert(1)">' not in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    # j: the next candidate, as the part of the page htmx swaps in.
    panel = viewer.get(reverse("review:queue"), {"model": model, "at": "1"}, HTTP_HX_REQUEST="true").content.decode()
    assert panel.startswith('<div id="review"') and "this is 2 of 2" in panel
    assert 'data-image="' + p + "&lt;img" in panel


def test_staff_review_through_the_page_and_the_next_candidate_loads(
    staff: Client, cfg: Config, stack: Any, model: str
) -> None:
    p = f"t-{uuid.uuid4().hex[:8]}/"
    lowest = put_row(cfg, p + "lowest.png", LOWEST, model=model)
    put_row(cfg, p + "low.png", LOW, model=model)
    livecache.forget_all()
    page = staff.get(reverse("review:queue"), {"model": model}).content.decode()
    assert 'id="verdict-correct"' in page and 'role="combobox"' in page and '"imagenet-labels"' in page
    assert page.index(p + "lowest.png") < page.index(p + "low.png")
    verdict = {
        "bucket": cfg.bucket,
        "name": lowest["image_name"],
        "generation": lowest["generation"],
        "verdict_model": model,
        "model": model,
        "at": "0",
    }
    refused = staff.post(
        reverse("review:verdict"), {**verdict, "verdict": "wrong", "true_label": "mopedd"}, HTTP_HX_REQUEST="true"
    )
    assert "not one of the 1000 ImageNet labels" in refused.content.decode() and not Review.objects.exists()
    panel = staff.post(
        reverse("review:verdict"),
        {**verdict, "verdict": "wrong", "true_label": "Motor Scooter"},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert panel.startswith('<div id="review"') and "Recorded" in panel and "wrong, really motor scooter" in panel
    assert f'data-image="{p}low.png"' in panel and "1</strong> pending" in panel
    stored = Review.objects.get()
    assert (stored.verdict, stored.true_label, stored.predicted_label, stored.reviewer_name) == (
        "wrong",
        "motor scooter",
        "moped",
        "op-staff",
    )
    # Without htmx: a redirect back to the same place in the queue, with a message.
    response = staff.post(reverse("review:verdict"), {**verdict, "verdict": "unclear"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("review:queue"))
    assert "model=" + model in response["Location"]
    assert Review.objects.get().verdict == "unclear"


def test_the_verdict_shows_in_the_objects_story(
    staff: Client, cfg: Config, stack: Any, actor: Actor, model: str
) -> None:
    row = put_row(cfg, f"t-{uuid.uuid4().hex[:8]}/<b>espresso</b>.png", LOW, model=model)
    _record(cfg, row, model, actor, "wrong", "cup")
    page = staff.get(reverse("object_find"), {"name": row["image_name"]}).content.decode()
    assert "Reviewed: wrong" in page and "really <strong>cup</strong>" in page and "by reviewer" in page
    assert "espresso” (30%)" in page
    assert "<b>espresso</b>" not in page  # the name is text, never markup


def test_the_queue_shows_the_live_model_by_default_as_its_rows_name_it(staff: Client, cfg: Config, stack: Any) -> None:
    live = selectors.live_model()
    for _ in range(3):  # more rows than any other test's model with the live name
        put_row(cfg, f"t-{uuid.uuid4().hex[:8]}/a.png", LOW, model=f"{live} (review-weights.pth)")
    livecache.forget_all()
    response = staff.get(reverse("review:queue"))
    shown = response.context["q"].spec.model
    assert shown.startswith(live + " (") and response.context["q"].raw["model"] == shown
    assert f'<option value="{shown}" selected>' in response.content.decode()


def test_bad_queue_parameters_are_refused_with_a_reason(staff: Client, stack: Any) -> None:
    for params, why in [
        ({"confidence_below": "0.9"}, "confidence_below=0.9 must be between 0 and 0.5"),
        ({"margin_below": "nan"}, "margin_below=nan must be between"),
        ({"confidence_below": "lots"}, "is not a number"),
        ({"range": "10y"}, "range=&#x27;10y&#x27; is not one of 24h, 7d, 30d"),
    ]:
        page = staff.get(reverse("review:queue"), params).content.decode()
        assert why in page, (params, why)
    assert staff.get(reverse("review:queue"), {"at": "-5"}).status_code == 200
    assert staff.get(reverse("review:queue"), {"at": "x" * 100}).status_code == 200


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"REVIEW_CONFIDENCE_BELOW": "50%"}, "REVIEW_CONFIDENCE_BELOW"),
        ({"REVIEW_MARGIN_BELOW": "2"}, "REVIEW_MARGIN_BELOW"),
    ],
)
def test_start_up_refuses_a_bad_threshold_naming_it(tmp_path: Path, env: dict[str, str], variable: str) -> None:
    argv = [sys.executable, str(BASE_DIR / "manage.py"), "check"]
    full = {**os.environ, "SIGHTLINE_DATA_DIR": str(tmp_path), **env}
    out = subprocess.run(argv, env=full, capture_output=True, text=True, timeout=120, cwd=BASE_DIR)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"configuration error: {variable}=") and "Traceback" not in out.stderr
