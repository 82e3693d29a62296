"""Django settings: 12-factor and strict. Every variable is listed in .env.example."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from classifier.config import BASE_DIR, ConfigError, envbool, envfloat, envint, get_config
from controlplane import security
from controlplane.review import rules as review_rules
from controlplane.secretfiles import secret_read_or_create

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
    return secret_read_or_create(SIGHTLINE.data_dir / "django-secret-key", lambda: secrets.token_urlsafe(50))


try:
    DEBUG = envbool(os.environ, "DJANGO_DEBUG", False)
    HSTS_SECONDS = envint(os.environ, "DJANGO_HSTS_SECONDS", 0 if SIGHTLINE.local else 365 * 24 * 3600)
    PROXY_HOPS = envint(os.environ, "DJANGO_TRUSTED_PROXY_HOPS", 0)
    LOGIN_FAILURE_LIMIT = envint(os.environ, "LOGIN_FAILURE_LIMIT", 5, minimum=1)
    LOGIN_LOCKOUT_MINUTES = envint(os.environ, "LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
    # Rows one download (controlplane/insight exports) holds at most; the export page states it.
    EXPORT_MAX_ROWS = envint(os.environ, "EXPORT_MAX_ROWS", 50_000, minimum=1)
except ConfigError as exc:
    raise ImproperlyConfigured(str(exc)) from None
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = security.origins(os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", ""), local=SIGHTLINE.local)
if not SIGHTLINE.local:
    security.refuse_insecure_production(debug=DEBUG, allowed_hosts=ALLOWED_HOSTS, secret_key=SECRET_KEY)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_rq",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "controlplane",
    "controlplane.alerts",
    "controlplane.api",
    "controlplane.review",
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
    "axes.middleware.AxesMiddleware",  # last: it answers for the views behind it when a login is locked out
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

# Our jobs are JSON (pickle runs code on load); django-rq must read them the same way or its job pages fail.
RQ_QUEUES = {
    SIGHTLINE.queue_name: {
        "URL": SIGHTLINE.redis_url,
        "DEFAULT_TIMEOUT": SIGHTLINE.job_timeout_s,
        "SERIALIZER": "rq.serializers.JSONSerializer",
    }
}
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
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes counts failed logins on both login pages (ours and the admin's): LOGIN_FAILURE_LIMIT failures
# lock that username, and the address they came from, for LOGIN_LOCKOUT_MINUTES. Either alone would leave a
# gap: per address, a guesser spreads over addresses; per username, one address tries every username.
# Staff see and clear lockouts in the admin (Axes: access attempts) or with `manage.py axes_reset`.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = security.ClientAddress(PROXY_HOPS)
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_ENABLE_ACCESS_FAILURE_LOG = True
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
# Behind a load balancer that ends TLS: it says which scheme the browser used (GCP's sets X-Forwarded-Proto).
SECURE_PROXY_SSL_HEADER = None if SIGHTLINE.local else ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = not SIGHTLINE.local
# Prometheus scrapes inside the network, plain http: a redirect would fail the scrape, and its token guards it.
SECURE_REDIRECT_EXEMPT = [r"^metrics$"]
SECURE_HSTS_SECONDS = HSTS_SECONDS
# Subdomains and the browsers' preload list bind every site of the domain, for months: the domain's owner
# decides, not this app; `check --deploy` would warn about both, so the two checks are silenced.
SECURE_HSTS_INCLUDE_SUBDOMAINS = False
SECURE_HSTS_PRELOAD = False
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# The debug page also hides REDIS_URL, RQ_QUEUES and SIGHTLINE (its Redis URL and metrics token).
DEFAULT_EXCEPTION_REPORTER_FILTER = "controlplane.security.SettingsFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"google": {"level": "WARNING"}, "urllib3": {"level": "WARNING"}},
}

# --- The API (controlplane/api/): bearer tokens from the user's page, or the dashboard's session ----------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "controlplane.api.auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["controlplane.api.auth.StaffWrites"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Sightline API",
    "DESCRIPTION": "The dashboard's reads and actions for scripts. Send `Authorization: Bearer <token>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SCHEMA_PATH_PREFIX": "/api/v1/",
}

# --- Alerts and the objective (controlplane/alerts/) ---------------------------------------------------------------
try:
    # "SLO_TARGET_PERCENT of uploads become a row within SLO_LATENCY_S seconds over SLO_WINDOW_DAYS days."
    SLO_TARGET_PERCENT = envfloat(os.environ, "SLO_TARGET_PERCENT", 99.0, lo=50.0, hi=99.999)
    SLO_LATENCY_S = envfloat(os.environ, "SLO_LATENCY_S", 60.0, lo=0.1, hi=86_400.0)
    SLO_WINDOW_DAYS = envint(os.environ, "SLO_WINDOW_DAYS", 30, minimum=1)
    ALERTS_EVERY_S = envfloat(os.environ, "ALERTS_EVERY_S", 30.0, lo=1.0, hi=3600.0)
    EMAIL_PORT = envint(os.environ, "EMAIL_PORT", 25, minimum=1)
    EMAIL_USE_TLS = envbool(os.environ, "EMAIL_USE_TLS", False)
except ConfigError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# Alert e-mail goes through Django's mail settings; locally it is printed to the alert process's log.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND") or (
    "django.core.mail.backends.console.EmailBackend"
    if SIGHTLINE.local
    else "django.core.mail.backends.smtp.EmailBackend"
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "sightline@localhost")
# The dashboard's address, for links in alert messages (e.g. https://sightline.example.com); empty = no links.
SIGHTLINE_BASE_URL = os.environ.get("SIGHTLINE_BASE_URL", "").rstrip("/")

# --- The review queue (controlplane/review/): which classifications queue up for an operator's verdict -------------
try:
    REVIEW_THRESHOLDS = review_rules.thresholds_from_env(os.environ)
except ConfigError as exc:
    raise ImproperlyConfigured(str(exc)) from None
