"""Django settings: 12-factor and strict. Every variable is listed in .env.example."""

from __future__ import annotations

import os
import secrets

from django.core.exceptions import ImproperlyConfigured

from classifier.config import BASE_DIR, ConfigError, envbool, get_config

try:
    SIGHTLINE = get_config()
except ConfigError as exc:
    raise ImproperlyConfigured(str(exc)) from None


def _secret_key() -> str:
    key = os.environ.get("DJANGO_SECRET_KEY", "").strip()
    if key:
        return key
    if not SIGHTLINE.local:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when SIGHTLINE_LOCAL is off")
    # Locally, one random key kept in the data folder so sessions survive restarts.
    path = SIGHTLINE.data_dir / "django-secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


try:
    DEBUG = envbool(os.environ, "DJANGO_DEBUG", False)
except ConfigError as exc:
    raise ImproperlyConfigured(str(exc)) from None
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_rq",
    "controlplane",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "controlplane.context_processors.sightline",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DATABASE_PATH") or str(SIGHTLINE.data_dir / "sightline.sqlite3"),
    }
}

RQ_QUEUES = {SIGHTLINE.queue_name: {"URL": SIGHTLINE.redis_url, "DEFAULT_TIMEOUT": SIGHTLINE.job_timeout_s}}
RQ = {"DEFAULT_RESULT_TTL": 24 * 3600}
# "shared": what every web process and open tab shares (controlplane/livecache.py), in the pipeline's Redis.
# Never `.clear()` it: that flushes the whole Redis database, the outcome ledger and the queue with it.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": SIGHTLINE.redis_url,
        "KEY_PREFIX": "sightline:cache",
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = SIGHTLINE.data_dir / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request when it is missing
# Static files (htmx, our CSS) are served from the packages themselves: no collectstatic step to forget.
WHITENOISE_USE_FINDERS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not SIGHTLINE.local
CSRF_COOKIE_SECURE = not SIGHTLINE.local

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"google": {"level": "WARNING"}, "urllib3": {"level": "WARNING"}},
}
