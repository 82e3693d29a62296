"""What reaches a log line from outside: object names escaped, passwords out of URLs."""

from __future__ import annotations

import logging

import pytest

from classifier.cloud.pubsub import Pulled
from classifier.config import Config
from classifier.listener import Listener
from classifier.logsafe import redacted_url, shown


@pytest.mark.parametrize(
    ("name", "logged"),
    [
        ("dir/with space/çat.png", "dir/with space/çat.png"),  # readable names stay readable
        ("x.png\n12:00:00 INFO classifier: classified admin", "x.png\\n12:00:00 INFO classifier: classified admin"),
        ("\x1b[2J\x1b[31mred.png", "\\x1b[2J\\x1b[31mred.png"),
        ("gnp.\u202eevil.exe", "gnp.\\u202eevil.exe"),  # a right-to-left override would reverse what follows
        ("a\\nb", "a\\\\nb"),  # a literal backslash-n stays distinguishable from an escaped newline
        ("cr\rnul\x00del\x7f", "cr\\rnul\\x00del\\x7f"),
    ],
)
def test_shown_escapes_what_could_forge_or_repaint_a_log_line(name, logged):
    assert shown(name) == logged


def test_shown_bounds_the_length():
    assert len(shown("x" * 5000)) == 301


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:s3cret@redis.internal:6379/0", "redis://:***@redis.internal:6379/0"),
        ("rediss://sightline:p%40ss@redis.example:6380/1", "rediss://sightline:***@redis.example:6380/1"),
        ("unix:///run/redis.sock?password=s3cret&db=2", "unix:///run/redis.sock?password=***&db=2"),
    ],
)
def test_redacted_url_hides_the_password(url, logged):
    assert redacted_url(url) == logged


def test_the_listener_logs_attacker_chosen_names_escaped(caplog):
    cfg = Config.from_env({"GCP_PROJECT": "sightline-local", "BUCKET_NAME": "sightline-images", "SIGHTLINE_LOCAL": "1"})
    forged = "x.png\n00:00:00 INFO classifier.listener: enqueued sightline-images/admin.png#1\x1b[8m"
    attributes = {"eventType": "OBJECT_DELETE", "bucketId": cfg.bucket, "objectId": forged}
    message = Pulled(cfg, "sub", "ack", "1", b"{}", attributes)
    with caplog.at_level(logging.INFO, logger="classifier.listener"):
        assert Listener(cfg).handle_message(message) == "ignored"
    lines = [r.getMessage() for r in caplog.records]
    assert lines and all("\n" not in line and "\x1b" not in line for line in lines), lines
    assert any("x.png\\n00:00:00 INFO" in line for line in lines)
