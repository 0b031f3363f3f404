"""Ids, messages and hints of the system checks in :mod:`django_verifynow.checks`,
and the tables they cite (unsuitable caches, cache clients, thresholds).

:mod:`django_verifynow.checks` re-exports :class:`Codes`, :class:`Messages` and
:class:`Hints` (``from django_verifynow.checks import Codes`` keeps working).
"""

from __future__ import annotations

__all__ = [
    "CACHE_CLIENTS",
    "CACHE_INSTALLS",
    "DB_SESSION_ENGINE",
    "DEADLINE_WARN_ABOVE",
    "UNSUITABLE_CACHES",
    "Codes",
    "Hints",
    "Messages",
]

#: Cache backends that are per process, non-atomic or absent, and why: the limits
#: would not be shared or exact.
UNSUITABLE_CACHES: dict[str, str] = {
    "django.core.cache.backends.locmem.LocMemCache": "is private to each process",
    "django.core.cache.backends.filebased.FileBasedCache": ("has no atomic increment"),
    "django.core.cache.backends.db.DatabaseCache": "has no atomic increment",
    "django.core.cache.backends.dummy.DummyCache": "stores nothing",
}

#: The client library each cache backend imports on first use (not when Django
#: starts, so nothing fails until the first send: then every send is refused).
CACHE_CLIENTS: dict[str, str] = {
    "django.core.cache.backends.redis.RedisCache": "redis",
    "django.core.cache.backends.memcached.PyMemcacheCache": "pymemcache",
    "django.core.cache.backends.memcached.PyLibMCCache": "pylibmc",
    "django_redis.cache.RedisCache": "redis",
}

#: How to install a missing module, by its top-level name; others: ``pip install``
#: the module's name.
CACHE_INSTALLS: dict[str, str] = {
    "redis": "pip install django-verifynow[redis]",
    "django_redis": "pip install django-redis",
}

#: Above this ``DEADLINE`` (seconds), W006 warns: a request spending it on VerifyNow
#: leaves under 5 s of gunicorn's default 30 s worker timeout for everything else.
DEADLINE_WARN_ABOVE = 25

#: The session backend that reads the database on every request.
DB_SESSION_ENGINE = "django.contrib.sessions.backends.db"


class Codes:
    """Stable check ids."""

    CREDENTIALS_MISSING = "django_verifynow.E001"
    RATE_LIMITS_INVALID = "django_verifynow.E002"
    SETTING_INVALID = "django_verifynow.E003"
    CACHE_CLIENT_MISSING = "django_verifynow.E004"
    CHANNELS_NEED_V3 = "django_verifynow.E005"
    TEST_NUMBERS_IN_PRODUCTION = "django_verifynow.E006"
    OTP_TOO_SHORT = "django_verifynow.W001"
    SANDBOX_WITHOUT_DEBUG = "django_verifynow.W002"
    CACHE_NOT_SHARED = "django_verifynow.W003"
    NO_COUNTRY_ALLOWLIST = "django_verifynow.W004"
    UNKNOWN_KEYS = "django_verifynow.W005"
    DEADLINE_RISKY = "django_verifynow.W006"
    PROXY_COUNT_DEPRECATED = "django_verifynow.W007"
    NO_DAILY_CAP = "django_verifynow.W008"
    DB_CONNECTION_PER_REQUEST = "django_verifynow.W009"
    DB_SESSIONS = "django_verifynow.W010"
    TEST_NUMBERS_ACKNOWLEDGED = "django_verifynow.W011"
    TEST_NUMBER_NOT_ALLOWED = "django_verifynow.W012"
    REDIS_POOL_PER_INSTANCE = "django_verifynow.I001"


class Messages:
    """Check messages; ``{placeholders}`` are filled in by the checks."""

    CREDENTIALS_MISSING = (
        'VERIFYNOW["{key}"] is not set and VERIFYNOW["SANDBOX"] is off, so no code can '
        "be sent."
    )
    RATE_LIMITS_INVALID = 'VERIFYNOW["RATE_LIMITS"]["{action}"]: {error}.'
    CHANNELS_NEED_V3 = (
        'VERIFYNOW["API_VERSION"] is "v2", whose send documents SMS only, but the '
        "channels include WhatsApp ({channels})."
    )
    SETTING_INVALID_FALLBACK = 'VERIFYNOW["{key}"] has an invalid value ({type}).'
    OTP_TOO_SHORT = (
        'VERIFYNOW["OTP_LENGTH"] is {length}: a {length}-digit code carries {bits} '
        "bits, under 20 bits (NIST SP 800-63B asks for at least 6 digits)."
    )
    SANDBOX_WITHOUT_DEBUG = (
        'VERIFYNOW["SANDBOX"] is on while DEBUG is off: no real SMS is sent, and codes '
        "are written to the log and the sandbox outbox."
    )
    CACHE_NOT_SHARED = (
        'The cache VERIFYNOW["CACHE"] = "{alias}" uses {backend}, which {problem}: '
        "rate limits, cooldowns, the daily cap, the token and the circuit breaker are "
        "not enforced across processes."
    )
    CACHE_CLIENT_MISSING = (
        'The cache VERIFYNOW["CACHE"] = "{alias}" ({backend}) cannot work: the module '
        '"{module}" it needs is not installed, so every send is refused (the limits '
        "cannot be counted) and nothing is sent to VerifyNow."
    )
    CACHE_DUMMY = (
        'The cache VERIFYNOW["CACHE"] = "{alias}" uses DummyCache, which stores '
        "nothing: rate limits, cooldowns and the daily send cap are not enforced at "
        "all."
    )
    NO_COUNTRY_ALLOWLIST = (
        'VERIFYNOW["ALLOWED_COUNTRIES"] is not set, so codes may be sent to any '
        "country: this is the main exposure to SMS pumping (toll fraud)."
    )
    EMPTY_COUNTRY_ALLOWLIST = (
        'VERIFYNOW["ALLOWED_COUNTRIES"] is empty, so every phone number is refused.'
    )
    UNKNOWN_KEYS = "Unknown VERIFYNOW setting(s): {keys}."
    DEADLINE_TOO_LONG = (
        'VERIFYNOW["DEADLINE"] is {deadline:g} s: a request that spends that long on '
        "VerifyNow leaves under 5 s of a 30 s worker timeout (gunicorn's default) "
        "for the rest of its work, and a killed worker never records the failure."
    )
    DEADLINE_BELOW_CONNECT = (
        'VERIFYNOW["DEADLINE"] is {deadline:g} s, below the connect timeout of '
        '{connect:g} s (VERIFYNOW["TIMEOUT"]): a slow connection fails before it '
        "could have succeeded, and no retry ever fits."
    )
    PROXY_COUNT_DEPRECATED = (
        'VERIFYNOW["TRUSTED_PROXY_COUNT"] is deprecated and will be removed in the '
        "next release: it believes X-Forwarded-For by hop count whoever connects, so "
        "a client that reaches the app directly chooses its own address for the "
        "per-IP rate limits."
    )
    PROXY_COUNT_IGNORED = (
        'VERIFYNOW["TRUSTED_PROXY_COUNT"] is deprecated and ignored: '
        'VERIFYNOW["TRUSTED_PROXIES"] is set too, and TRUSTED_PROXIES wins.'
    )
    NO_DAILY_CAP = (
        'VERIFYNOW["DAILY_SEND_CAP"] is not set, so there is no daily cap on vendor '
        "sends: an SMS-pumping attack is bounded only by the per-IP/per-phone limits."
    )

    DB_CONNECTION_PER_REQUEST = (
        'DATABASES["{alias}"] ({engine}) opens a new connection for every request '
        "(CONN_MAX_AGE is 0 and no connection pool is configured): each send, check "
        "and status poll pays a connection set-up, which limits throughput."
    )
    REDIS_POOL_PER_INSTANCE = (
        'CACHES["{alias}"] ({use}) is Django\'s RedisCache, whose connection pool '
        "lives on the cache instance: under ASGI, where Django builds caches per "
        "request, every request that uses it connects to Redis anew."
    )
    DB_SESSIONS = (
        'SESSION_ENGINE is "{engine}": every API request of the widget reads the '
        "session from the database, one query per request on top of the app's own."
    )
    TEST_NUMBERS_IN_PRODUCTION = (
        'VERIFYNOW["TEST_NUMBERS"] lists {count} number(s) ({numbers}) while DEBUG is '
        "off: anyone who knows one of them and its fixed code can verify it on this "
        "site, without any SMS."
    )
    TEST_NUMBERS_ACKNOWLEDGED = (
        'VERIFYNOW["TEST_NUMBERS"] is in use on this production site: {count} '
        "number(s) ({numbers}) accept a fixed code, answered without VerifyNow "
        '(acknowledged by VERIFYNOW["ALLOW_TEST_NUMBERS_IN_PRODUCTION"]).'
    )
    TEST_NUMBER_NOT_ALLOWED = (
        'VERIFYNOW["TEST_NUMBERS"] entry {number} is refused by '
        'VERIFYNOW["{setting}"]: a send to it fails like any refused number, so the '
        "test number cannot be used."
    )


class Hints:
    """How to fix what each check reports."""

    CHANNELS_NEED_V3 = (
        'Use API_VERSION "v3" (the default) for WhatsApp, or set CHANNELS = ["SMS"].'
    )

    CREDENTIALS_MISSING = (
        "Read CUSTOMER_ID and PASSWORD from the environment into the VERIFYNOW dict "
        '(never commit them), or set VERIFYNOW["SANDBOX"] = True for development.'
    )
    RATE_LIMITS_INVALID = (
        'Use comma-separated "N/period/key" rules such as "5/h/phone,10/d/ip": '
        "periods s, m, h, d with an optional multiplier (10m); keys phone, ip, "
        'session, prefix, global. Use "" to disable an action\'s limits.'
    )
    SETTING_INVALID = (
        "Each key's type and range are listed in the settings table of the "
        "django-verifynow documentation."
    )
    OTP_TOO_SHORT = 'Set VERIFYNOW["OTP_LENGTH"] to 6 or more.'
    SANDBOX_WITHOUT_DEBUG = (
        'Set VERIFYNOW["SANDBOX"] = False in production and configure real '
        "credentials. Silence django_verifynow.W002 only for a staging site that must "
        "not send SMS."
    )
    CACHE_CLIENT_MISSING = (
        "Install it: {install}; then run manage.py verifynow_check to test the cache."
    )
    CACHE_NOT_SHARED = (
        'Point VERIFYNOW["CACHE"] at a cache alias whose BACKEND is Redis '
        "(django.core.cache.backends.redis.RedisCache) or Memcached."
    )
    NO_COUNTRY_ALLOWLIST = (
        'List the countries you serve, e.g. VERIFYNOW["ALLOWED_COUNTRIES"] = '
        '["IN", "GB"].'
    )
    EMPTY_COUNTRY_ALLOWLIST = (
        "List the ISO 3166 alpha-2 codes of the countries you serve, or set None to "
        "allow every country."
    )
    UNKNOWN_KEYS = "Check the spelling; known keys: {known}."
    DEADLINE_TOO_LONG = (
        'Keep VERIFYNOW["DEADLINE"] at 25 s or less (default 15), and the worker '
        "timeout (gunicorn --timeout) above DEADLINE plus the rest of the request, "
        "e.g. DEADLINE 15 with --timeout 30."
    )
    DEADLINE_BELOW_CONNECT = (
        'Raise VERIFYNOW["DEADLINE"] to a few times the connect timeout, or lower '
        'the connect part of VERIFYNOW["TIMEOUT"].'
    )
    PROXY_COUNT_DEPRECATED = (
        'Set VERIFYNOW["TRUSTED_PROXIES"] to the networks your reverse proxies '
        'connect from (e.g. ["10.0.0.0/8"]) and remove TRUSTED_PROXY_COUNT; see '
        '"Behind a proxy" in docs/deployment.md.'
    )
    PROXY_COUNT_IGNORED = 'Remove VERIFYNOW["TRUSTED_PROXY_COUNT"].'
    NO_DAILY_CAP = (
        'Set VERIFYNOW["DAILY_SEND_CAP"] to about 3 times the sends of your busiest '
        "day (the dashboard's daily figures show it), raised ahead of a launch: it "
        "bounds what a day of abuse can cost; past it, sends are refused until UTC "
        "midnight."
    )
    DB_CONNECTION_PER_REQUEST = (
        'Keep connections open: set DATABASES["{alias}"]["CONN_MAX_AGE"] = 60 with '
        '"CONN_HEALTH_CHECKS": True (or, on PostgreSQL with Django 5.1+, '
        '"OPTIONS": {{"pool": True}}). Silence django_verifynow.W009 if a pooler '
        "such as PgBouncer runs next to each web server."
    )
    TEST_NUMBERS_IN_PRODUCTION = (
        "Remove TEST_NUMBERS from production settings, or, for an app-store review, "
        'also set VERIFYNOW["ALLOW_TEST_NUMBERS_IN_PRODUCTION"] = True (a warning, '
        "W011, then reminds you at every start). Keep the codes out of version "
        "control; see the Test numbers page of the documentation."
    )
    TEST_NUMBERS_ACKNOWLEDGED = (
        "Remove the numbers once the review is over; every use is logged as a "
        "WARNING test_number_used event on the django_verifynow.events logger."
    )
    TEST_NUMBER_NOT_ALLOWED = (
        "Pick a number of an allowed country and type, or add its country to "
        'VERIFYNOW["ALLOWED_COUNTRIES"] / its type to '
        'VERIFYNOW["ALLOWED_NUMBER_TYPES"].'
    )
    REDIS_POOL_PER_INSTANCE = (
        'Add "pool_class": "django_verifynow.cache.SharedConnectionPool" to its '
        '"OPTIONS": one pool per process for every instance (harmless under WSGI).'
    )
    DB_SESSIONS = (
        'Use SESSION_ENGINE = "django.contrib.sessions.backends.cached_db" (reads '
        'from the cache) or "django.contrib.sessions.backends.cache" (sessions may '
        "be lost when the cache evicts them)."
    )
