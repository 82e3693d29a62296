"""Strict 12-factor settings shared by the web app, the listener and the workers.

Django-free on purpose: `rq worker` imports this without Django. A bad or missing
value raises ConfigError naming the variable, so start-up stops with a readable line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import ParseResult, parse_qs, urlparse

from classifier.logsafe import redacted_url

BASE_DIR = Path(__file__).resolve().parent.parent

MODEL_CHOICES = ("auto", "resnet50", "efficientnet_lite0")
BACKEND_CHOICES = ("auto", "torch", "onnx")

# Loopback ports of the local stack; each can be moved with its own variable.
LOCAL_DEFAULTS = {
    "STORAGE_EMULATOR_HOST": "http://127.0.0.1:4443",
    "PUBSUB_EMULATOR_HOST": "127.0.0.1:8085",
    "BIGQUERY_EMULATOR_HOST": "http://127.0.0.1:9050",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_RESOURCE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$")
_BQ_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")
# A multi-region (US, EU), dual-region (NAM4) or region (europe-west1): one name both Cloud Storage and BigQuery take.
_LOCATION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(-[a-z]+[0-9]+)?$")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message starts with the variable's name."""


def _get(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, default)
    if value is None or value.strip() == "":
        if default is not None:
            return default
        raise ConfigError(f"{name} is required but not set (see .env.example)")
    return value.strip()


def envbool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no)")


def envint(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def envfloat(env: Mapping[str, str], name: str, default: float, *, lo: float, hi: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}={value} must be between {lo} and {hi}")
    return value


def _matching(env: Mapping[str, str], name: str, pattern: re.Pattern[str], default: str | None = None) -> str:
    value = _get(env, name, default)
    if not pattern.match(value):
        raise ConfigError(f"{name}={value!r} is not a valid name (expected {pattern.pattern})")
    return value


def _table_id(env: Mapping[str, str], name: str, default: str) -> str:
    value = _get(env, name, default)
    parts = value.split(".")
    if len(parts) != 3 or not _PROJECT_RE.match(parts[0]) or not all(_BQ_NAME_RE.match(p) for p in parts[1:]):
        raise ConfigError(f"{name}={value!r} must be a full table id 'project.dataset.table'")
    return value


_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def _redis_url(env: Mapping[str, str], *, local: bool) -> str:
    value = _get(env, "REDIS_URL", "redis://127.0.0.1:6379/0")
    parsed = urlparse(value)
    if parsed.scheme not in ("redis", "rediss", "unix") or (parsed.scheme != "unix" and not parsed.hostname):
        raise ConfigError(f"REDIS_URL={redacted_url(value)!r} must look like redis://host:port/db")
    if not local:
        _redis_url_production(value, parsed)
    return value


def _redis_url_production(value: str, parsed: ParseResult) -> None:
    """Whoever can write to Redis can queue jobs and rewrite the ledger: in production it needs a password, and TLS
    unless it is on this machine."""
    password = parsed.password or parse_qs(parsed.query).get("password", [""])[0]
    if not password:
        raise ConfigError(
            "REDIS_URL needs a password when SIGHTLINE_LOCAL is off (rediss://:PASSWORD@host:6380/0, "
            "or unix:///path/redis.sock?password=PASSWORD): anyone who can write to Redis can queue jobs"
        )
    host = parsed.hostname or ""
    loopback = host in _LOOPBACK_HOSTS or host.startswith("127.")
    if parsed.scheme == "redis" and not loopback:
        raise ConfigError(
            f"REDIS_URL must use rediss:// (TLS) for {host!r} when SIGHTLINE_LOCAL is off: the password "
            "and every job would cross the network in clear; plain redis:// is for a server on loopback"
        )


def _metrics_token(env: Mapping[str, str]) -> str | None:
    raw = env.get("METRICS_TOKEN")
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip()
    if len(value) < 24 or not re.fullmatch(r"[\x21-\x7e]+", value):
        raise ConfigError(
            "METRICS_TOKEN must be at least 24 printable characters without spaces (e.g. openssl rand -hex 24)"
        )
    return value


def _emulator_host(env: Mapping[str, str], name: str, *, scheme: bool) -> str:
    value = _get(env, name, LOCAL_DEFAULTS[name])
    has_scheme = value.startswith(("http://", "https://"))
    if scheme and not has_scheme:
        raise ConfigError(f"{name}={value!r} needs a scheme, e.g. {LOCAL_DEFAULTS[name]}")
    if not scheme and has_scheme:
        raise ConfigError(f"{name}={value!r} must be host:port without a scheme, e.g. {LOCAL_DEFAULTS[name]}")
    return value


@dataclass(frozen=True)
class Config:
    project: str
    bucket: str
    table_id: str
    failures_table_id: str
    topic: str
    subscription: str
    dead_letter_topic: str
    dead_letter_subscription: str
    redis_url: str = field(repr=False)  # may hold a password: kept out of logs and error pages
    queue_name: str
    model: str
    models_dir: Path
    local: bool
    storage_emulator_host: str | None
    pubsub_emulator_host: str | None
    bigquery_emulator_host: str | None
    data_dir: Path
    max_image_bytes: int
    max_image_pixels: int
    job_timeout_s: int
    torch_threads: int
    inference_backend: str = "auto"
    workers: int = 1
    worker_fork: bool = False
    batch_size: int = 1
    metrics_token: str | None = field(default=None, repr=False)
    destroy_protection: bool = False
    max_bytes_billed: int = 1_000_000_000
    job_result_ttl_s: int = 60
    failed_job_ttl_s: int = 3 * 24 * 3600
    queue_max_jobs: int = 0
    redis_memory_alert_mb: int = 1536
    location: str = "US"

    @property
    def dataset_id(self) -> str:
        return self.table_id.rsplit(".", 1)[0]

    @property
    def topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.topic}"

    @property
    def subscription_path(self) -> str:
        return f"projects/{self.project}/subscriptions/{self.subscription}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        project = _matching(env, "GCP_PROJECT", _PROJECT_RE)
        local = envbool(env, "SIGHTLINE_LOCAL", False)
        table_id = _table_id(env, "BQ_TABLE", f"{project}.sightline.image_classification")
        dataset = table_id.rsplit(".", 1)[0]
        model = _get(env, "MODEL", "auto").lower()
        if model not in MODEL_CHOICES:
            raise ConfigError(f"MODEL={model!r} must be one of {', '.join(MODEL_CHOICES)}")
        hosts = {
            "storage": _emulator_host(env, "STORAGE_EMULATOR_HOST", scheme=True) if local else None,
            "pubsub": _emulator_host(env, "PUBSUB_EMULATOR_HOST", scheme=False) if local else None,
            "bigquery": _emulator_host(env, "BIGQUERY_EMULATOR_HOST", scheme=True) if local else None,
        }
        if not local:
            stray = [n for n in LOCAL_DEFAULTS if env.get(n)]
            if stray:
                raise ConfigError(
                    f"{stray[0]} is set but SIGHTLINE_LOCAL is off: unset it to use real GCP, or set SIGHTLINE_LOCAL=1"
                )
        backend = _get(env, "INFERENCE_BACKEND", "auto").lower()
        if backend not in BACKEND_CHOICES:
            raise ConfigError(f"INFERENCE_BACKEND={backend!r} must be one of {', '.join(BACKEND_CHOICES)}")
        worker_fork = envbool(env, "WORKER_FORK", False)
        if worker_fork and backend == "onnx":
            raise ConfigError("INFERENCE_BACKEND=onnx needs in-process workers: unset WORKER_FORK")
        workers = envint(env, "WORKERS", 2, minimum=1)
        topic = _matching(env, "PUBSUB_TOPIC", _RESOURCE_RE, "sightline-uploads")
        subscription = _matching(env, "PUBSUB_SUBSCRIPTION", _RESOURCE_RE, f"{topic}-workers")
        return cls(
            project=project,
            bucket=_matching(env, "BUCKET_NAME", _BUCKET_RE),
            table_id=table_id,
            failures_table_id=_table_id(env, "BQ_FAILURES_TABLE", f"{dataset}.classification_failures"),
            topic=topic,
            subscription=subscription,
            dead_letter_topic=_matching(env, "PUBSUB_DEAD_LETTER_TOPIC", _RESOURCE_RE, f"{topic}-dead-letter"),
            dead_letter_subscription=f"{topic}-dead-letter-inspect",
            redis_url=_redis_url(env, local=local),
            queue_name=_matching(env, "RQ_QUEUE", re.compile(r"^[a-z0-9_-]{1,64}$"), "classify"),
            model=model,
            models_dir=Path(_get(env, "MODELS_DIR", str(BASE_DIR / "models"))),
            local=local,
            storage_emulator_host=hosts["storage"],
            pubsub_emulator_host=hosts["pubsub"],
            bigquery_emulator_host=hosts["bigquery"],
            data_dir=Path(_get(env, "SIGHTLINE_DATA_DIR", str(BASE_DIR / ".local"))),
            max_image_bytes=envint(env, "MAX_IMAGE_BYTES", 50 * 1024 * 1024, minimum=1),
            max_image_pixels=envint(env, "MAX_IMAGE_PIXELS", 64_000_000, minimum=1),
            job_timeout_s=envint(env, "JOB_TIMEOUT_S", 120, minimum=5),
            torch_threads=envint(env, "TORCH_THREADS", max(1, (os.cpu_count() or 1) // workers), minimum=1),
            inference_backend=backend,
            workers=workers,
            worker_fork=worker_fork,
            batch_size=envint(env, "BATCH_SIZE", 8, minimum=1),
            metrics_token=_metrics_token(env),
            destroy_protection=envbool(env, "DESTROY_PROTECTION", False),
            # BigQuery bills at least 10 MB a query: a smaller cap would refuse every query.
            max_bytes_billed=envint(env, "BQ_MAX_BYTES_BILLED", 1_000_000_000, minimum=10_485_760),
            job_result_ttl_s=envint(env, "JOB_RESULT_TTL_S", 60),
            failed_job_ttl_s=envint(env, "FAILED_JOB_TTL_S", 3 * 24 * 3600, minimum=60),
            queue_max_jobs=envint(env, "QUEUE_MAX_JOBS", 0),
            redis_memory_alert_mb=envint(env, "REDIS_MEMORY_ALERT_MB", 1536, minimum=1),
            location=_matching(env, "GCP_LOCATION", _LOCATION_RE, "US"),
        )

    def export_emulator_env(self) -> None:
        """The official clients read these variables themselves; set them once per process."""
        for name, value in (
            ("STORAGE_EMULATOR_HOST", self.storage_emulator_host),
            ("PUBSUB_EMULATOR_HOST", self.pubsub_emulator_host),
            ("BIGQUERY_EMULATOR_HOST", self.bigquery_emulator_host),
        ):
            if value:
                os.environ[name] = value


_cached: Config | None = None


def get_config() -> Config:
    """The process-wide configuration, read and validated once."""
    global _cached
    if _cached is None:
        _cached = Config.from_env()
        _cached.export_emulator_env()
    return _cached
