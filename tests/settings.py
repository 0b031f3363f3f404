"""Settings for the test suite.

SQLite and the local-memory cache by default, so the suite runs anywhere. With
``VERIFYNOW_TEST_DATABASE_URL`` (``postgres://user@host:port/name``) and
``VERIFYNOW_TEST_REDIS_URL`` (``redis://host:port/db``) set, as ``.ci/run`` sets them,
the same suite runs on PostgreSQL with the Redis cache, and the concurrency tests run.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "phonenumber_field",
    "django_verifynow",
    # The django-otp device (tests/test_contrib_otp*.py). Harmless for the rest: it adds
    # one table and no middleware; the OTP tests add django-otp's middleware themselves.
    "django_otp",
    "django_verifynow.contrib.otp",
    # The allauth phone flows (tests/test_contrib_allauth*.py). allauth's apps need its
    # middleware below; its phone settings are set by those tests only.
    "allauth",
    "allauth.account",
    "django_verifynow.contrib.allauth",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Required by allauth.account (its ready() refuses to start without it); it only
    # records the request for allauth's views.
    "allauth.account.middleware.AccountMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"

_db_url = os.environ.get("VERIFYNOW_TEST_DATABASE_URL")
if _db_url:
    _u = urlparse(_db_url)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _u.path.lstrip("/") or "test",
            "USER": _u.username or "postgres",
            "PASSWORD": _u.password or "",
            "HOST": _u.hostname or "127.0.0.1",
            "PORT": str(_u.port or 5432),
            # Own test database per run: a shared server, or parallel runs, are never
            # clobbered.
            "TEST": {"NAME": f"test_django_verifynow_{os.getpid()}"},
        }
    }
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    }

_redis_url = os.environ.get("VERIFYNOW_TEST_REDIS_URL")
if _redis_url:
    # Typed: django-stubs infers settings.CACHES from this file.
    CACHES: dict[str, dict[str, Any]] = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _redis_url,
            "KEY_PREFIX": "verifynow-tests",
            "OPTIONS": {"pool_class": "django_verifynow.cache.SharedConnectionPool"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

VERIFYNOW = {
    "SANDBOX": True,
    "ALLOWED_COUNTRIES": ["IN", "GB", "US", "DE"],
}

# The suite runs with DEBUG=False, the sandbox, the local-memory cache, a database
# connection per test and database sessions on purpose; the warnings for those are
# tested in test_checks.py.
SILENCED_SYSTEM_CHECKS = [
    "django_verifynow.W002",
    "django_verifynow.W003",
    "django_verifynow.W009",
    "django_verifynow.W010",
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "root": {"handlers": ["null"], "level": "DEBUG"},
}
