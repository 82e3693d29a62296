"""Settings are strict: a bad or missing value stops start-up with a message naming the variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from classifier.config import Config, ConfigError

BASE = {"GCP_PROJECT": "my-project-1", "BUCKET_NAME": "my-images"}
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-metrics-token-0123456789abcdef"


def test_defaults_follow_the_original_layout():
    cfg = Config.from_env(BASE)
    assert cfg.table_id == "my-project-1.sightline.image_classification"
    assert cfg.failures_table_id == "my-project-1.sightline.classification_failures"
    assert cfg.subscription_path == "projects/my-project-1/subscriptions/sightline-uploads-workers"
    assert cfg.local is False and cfg.storage_emulator_host is None
    assert cfg.location == "US"  # where Cloud Storage and BigQuery put a bucket or dataset given no location
    assert Config.from_env({**BASE, "GCP_LOCATION": "europe-west1"}).location == "europe-west1"


def test_local_switch_points_clients_at_emulators():
    cfg = Config.from_env({**BASE, "SIGHTLINE_LOCAL": "1"})
    assert cfg.storage_emulator_host == "http://127.0.0.1:4443"
    assert cfg.pubsub_emulator_host == "127.0.0.1:8085"
    assert cfg.bigquery_emulator_host == "http://127.0.0.1:9050"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"BUCKET_NAME": "b-ok"}, "GCP_PROJECT"),
        ({"GCP_PROJECT": "my-project-1"}, "BUCKET_NAME"),
        ({**BASE, "GCP_PROJECT": "Bad_Project"}, "GCP_PROJECT"),
        ({**BASE, "BUCKET_NAME": "UPPER"}, "BUCKET_NAME"),
        ({**BASE, "SIGHTLINE_LOCAL": "maybe"}, "SIGHTLINE_LOCAL"),
        ({**BASE, "BQ_TABLE": "just_a_table"}, "BQ_TABLE"),
        ({**BASE, "REDIS_URL": "http://x"}, "REDIS_URL"),
        ({**BASE, "MODEL": "vgg"}, "MODEL"),
        ({**BASE, "JOB_TIMEOUT_S": "soon"}, "JOB_TIMEOUT_S"),
        ({**BASE, "TORCH_THREADS": "0"}, "TORCH_THREADS"),
        ({**BASE, "SIGHTLINE_LOCAL": "1", "STORAGE_EMULATOR_HOST": "127.0.0.1:4443"}, "STORAGE_EMULATOR_HOST"),
        ({**BASE, "SIGHTLINE_LOCAL": "1", "PUBSUB_EMULATOR_HOST": "http://127.0.0.1:8085"}, "PUBSUB_EMULATOR_HOST"),
        ({**BASE, "PUBSUB_EMULATOR_HOST": "127.0.0.1:8085"}, "PUBSUB_EMULATOR_HOST"),
        ({**BASE, "GCP_LOCATION": "europe west1"}, "GCP_LOCATION"),
    ],
)
def test_bad_value_names_the_variable(env, variable):
    with pytest.raises(ConfigError) as excinfo:
        Config.from_env(env)
    assert str(excinfo.value).startswith(variable)


def test_env_example_lists_every_variable_the_code_reads():
    example = (ROOT / ".env.example").read_text()
    sources = "".join(p.read_text() for p in [ROOT / "classifier" / "config.py", ROOT / "controlplane" / "settings.py"])
    read = set(re.findall(r'(?:env, |environ\.get\(|environ, )"([A-Z][A-Z0-9_]+)"', sources))
    read |= set(re.findall(r'\("([A-Z]+_EMULATOR_HOST)"', sources))
    assert {"GCP_PROJECT", "BUCKET_NAME", "DJANGO_SECRET_KEY", "STORAGE_EMULATOR_HOST"} <= read
    missing = sorted(name for name in read if f"{name}=" not in example)
    assert not missing, f".env.example lacks {missing}"


def test_the_token_setting_is_strict() -> None:
    assert Config.from_env({**BASE, "METRICS_TOKEN": "  "}).metrics_token is None
    assert Config.from_env({**BASE, "METRICS_TOKEN": TOKEN}).metrics_token == TOKEN
    for bad in ("short", "has a space in it 0123456789abcdef"):
        with pytest.raises(ConfigError, match="METRICS_TOKEN"):
            Config.from_env({**BASE, "METRICS_TOKEN": bad})
