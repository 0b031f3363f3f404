"""Settings of the django-verifynow example site.

Runs in sandbox mode with SQLite by default: no credentials and no network, the codes
"delivered" are listed on the sandbox inbox page (``/sandbox/inbox/``). Set
``VERIFYNOW_CUSTOMER_ID`` and ``VERIFYNOW_PASSWORD`` in the environment to talk to the
real VerifyNow API instead. Development settings only: never deploy them.

Production-shaped runs (``benchmarks/soak.py``) switch parts to what a deployment uses,
each with one environment variable; with none of them set, nothing changes:

- ``EXAMPLE_DATABASE_URL`` (``postgres://user[:password]@host:port/name``): PostgreSQL
  instead of SQLite, with ``EXAMPLE_CONN_MAX_AGE`` seconds of persistent connections;
- ``EXAMPLE_DB_POOL`` (``min,max``): with PostgreSQL, Django's connection pool;
- ``EXAMPLE_REDIS_URL`` (``redis://host:port/db``): Redis as the shared cache;
- ``EXAMPLE_ALLOWED_HOSTS``: comma-separated ``ALLOWED_HOSTS``; ``DJANGO_DEBUG=0``;
- ``VERIFYNOW_SANDBOX`` (``0`` or ``1``) forces the in-process simulator off or on;
  ``VERIFYNOW_BASE_URL`` (a sandbox server, say), ``VERIFYNOW_TRUSTED_PROXY_COUNT``,
  ``VERIFYNOW_TIMEOUT`` (``connect,read`` seconds), ``VERIFYNOW_DEADLINE``,
  ``VERIFYNOW_CIRCUIT_BREAKER_FAILURES``, ``VERIFYNOW_CIRCUIT_BREAKER_RESET`` and
  ``VERIFYNOW_RATE_LIMITS`` (a JSON object, merged over the default rules).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

# A development key for a development site; a real site reads it from its environment.
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "example-only-not-secret-do-not-deploy"
)
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]
if os.environ.get("EXAMPLE_ALLOWED_HOSTS"):
    ALLOWED_HOSTS = [
        h.strip() for h in os.environ["EXAMPLE_ALLOWED_HOSTS"].split(",") if h.strip()
    ]

HAS_SPECTACULAR = importlib.util.find_spec("drf_spectacular") is not None

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.forms",  # the built-in widget templates, for FORM_RENDERER below
    "rest_framework",
    "phonenumber_field",
    "django_verifynow",
    "demo",
]
if HAS_SPECTACULAR:
    INSTALLED_APPS.append("drf_spectacular")
# The Swagger UI's own files, served locally so the schema page needs no CDN.
HAS_SIDECAR = importlib.util.find_spec("drf_spectacular_sidecar") is not None
if HAS_SIDECAR:
    INSTALLED_APPS.append("drf_spectacular_sidecar")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

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
                "demo.context_processors.sandbox",
            ]
        },
    }
]
# Lets a site override the widget template from its own templates/ directory.
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB", str(BASE_DIR / "db.sqlite3")),
    }
}
# One process (runserver) is all this site runs in, so the local-memory cache is enough
# for the rate limits here. A real deployment uses Redis or Memcached (check W003).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
SILENCED_SYSTEM_CHECKS = ["django_verifynow.W003"]


def _postgres(url: str) -> dict[str, Any]:
    """``DATABASES["default"]`` for ``postgres://user:password@host:port/name``."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.path.strip("/"):
        raise ValueError("EXAMPLE_DATABASE_URL must be postgres://user@host:port/name")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or "postgres"),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
        # Persistent connections, checked before reuse, as a deployment runs them.
        "CONN_MAX_AGE": int(os.environ.get("EXAMPLE_CONN_MAX_AGE", "0")),
        "CONN_HEALTH_CHECKS": True,
    }


if os.environ.get("EXAMPLE_DATABASE_URL"):
    DATABASES = {"default": _postgres(os.environ["EXAMPLE_DATABASE_URL"])}
    if os.environ.get("EXAMPLE_DB_POOL"):
        # Django's psycopg 3 pool (psycopg[pool]), the way to bound connections under
        # ASGI: every thread hands its connection back when it closes it.
        _min, _max = (int(n) for n in os.environ["EXAMPLE_DB_POOL"].split(","))
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        # With a pool, CONN_HEALTH_CHECKS makes every checkout run a query first, and
        # the async API checks a connection out for each phase of a request (before
        # and after the vendor call): three round trips more per verification. The
        # pool itself drops connections that broke while in use.
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
        DATABASES["default"]["OPTIONS"] = {
            "pool": {"min_size": _min, "max_size": _max, "timeout": 30}
        }
if os.environ.get("EXAMPLE_REDIS_URL"):
    # Shared by every worker process: the limits, the token and the breaker hold.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["EXAMPLE_REDIS_URL"],
            # One Redis pool per process: under ASGI Django builds the cache per
            # request, and without it each request would connect to Redis anew.
            "OPTIONS": {"pool_class": "django_verifynow.cache.SharedConnectionPool"},
        }
    }
    SILENCED_SYSTEM_CHECKS = []

AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": (
            "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
        )
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
#: django-phonenumber-field's setting: national numbers ("98765 43210") are read as
#: Indian, and the widget's country list opens on India.
PHONENUMBER_DEFAULT_REGION = "IN"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "profile"
LOGOUT_REDIRECT_URL = "home"

REST_FRAMEWORK = {}
if HAS_SPECTACULAR:
    REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "drf_spectacular.openapi.AutoSchema"
    SPECTACULAR_SETTINGS = {
        "TITLE": "django-verifynow example API",
        "DESCRIPTION": "Phone verification endpoints mounted at /api/verify/.",
        "VERSION": "1",
    }
    if HAS_SIDECAR:
        SPECTACULAR_SETTINGS.update(
            SWAGGER_UI_DIST="SIDECAR",
            SWAGGER_UI_FAVICON_HREF="SIDECAR",
            REDOC_DIST="SIDECAR",
        )

_customer_id = os.environ.get("VERIFYNOW_CUSTOMER_ID")
_password = os.environ.get("VERIFYNOW_PASSWORD")
#: Sandbox unless real credentials are in the environment (or VERIFYNOW_SANDBOX says).
SANDBOX = not (_customer_id and _password)
if os.environ.get("VERIFYNOW_SANDBOX") in ("0", "1"):
    SANDBOX = os.environ["VERIFYNOW_SANDBOX"] == "1"

VERIFYNOW = {
    "SANDBOX": SANDBOX,
    "ALLOWED_COUNTRIES": ["IN", "GB", "US", "DE", "FR", "AU", "CA", "SG", "AE"],
    "RESEND_COOLDOWN": int(os.environ.get("VERIFYNOW_RESEND_COOLDOWN", "30")),
    # WhatsApp first, SMS when WhatsApp cannot deliver; the signup lets the user pick.
    # VERIFYNOW_CHANNELS=SMS (comma-separated) for an account without WhatsApp.
    "CHANNELS": os.environ.get("VERIFYNOW_CHANNELS", "WHATSAPP,SMS").split(","),
}
if not SANDBOX:
    VERIFYNOW.update(CUSTOMER_ID=_customer_id, PASSWORD=_password)
    if os.environ.get("VERIFYNOW_EMAIL"):
        VERIFYNOW["EMAIL"] = os.environ["VERIFYNOW_EMAIL"]
    if os.environ.get("VERIFYNOW_BASE_URL"):
        VERIFYNOW["BASE_URL"] = os.environ["VERIFYNOW_BASE_URL"]
if os.environ.get("VERIFYNOW_TRUSTED_PROXY_COUNT"):
    VERIFYNOW["TRUSTED_PROXY_COUNT"] = int(os.environ["VERIFYNOW_TRUSTED_PROXY_COUNT"])
if os.environ.get("VERIFYNOW_TIMEOUT"):
    _connect, _read = os.environ["VERIFYNOW_TIMEOUT"].split(",")
    VERIFYNOW["TIMEOUT"] = (float(_connect), float(_read))
if os.environ.get("VERIFYNOW_DEADLINE"):
    VERIFYNOW["DEADLINE"] = float(os.environ["VERIFYNOW_DEADLINE"])
for _key in ("CIRCUIT_BREAKER_FAILURES", "CIRCUIT_BREAKER_RESET"):
    if os.environ.get(f"VERIFYNOW_{_key}"):
        VERIFYNOW[_key] = int(os.environ[f"VERIFYNOW_{_key}"])
if os.environ.get("VERIFYNOW_RATE_LIMITS"):
    VERIFYNOW["RATE_LIMITS"] = json.loads(os.environ["VERIFYNOW_RATE_LIMITS"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        # Sandbox deliveries (masked number + code) show up in the runserver console
        # too.
        "django_verifynow.sandbox": {"handlers": ["console"], "level": "INFO"},
    },
}
if not DEBUG:
    # Without DEBUG, Django only mails server errors (to no one here): print them,
    # and the package's warnings (vendor faults, limits cache), to stderr instead.
    LOGGING["loggers"].update(
        {
            "django.request": {"handlers": ["console"], "level": "ERROR"},
            "django_verifynow": {"handlers": ["console"], "level": "WARNING"},
        }
    )
    LOGGING["loggers"]["django_verifynow.sandbox"]["propagate"] = False
