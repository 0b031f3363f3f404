"""System checks (django_verifynow.checks): every id fires, and stays quiet when fine.

``tests.settings`` silences W002/W003 for ``manage.py check``; the check functions are
called directly here, so silencing hides nothing.
"""

from __future__ import annotations

import sys
from typing import Any
from unittest import mock

import pytest
from django.apps import apps
from django.conf import settings
from django.core import checks as django_checks
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.test import override_settings

from django_verifynow import checks
from django_verifynow.checks import Codes

#: A complete, production-like configuration: no check should fire for it.
GOOD = {
    "CUSTOMER_ID": "C-TEST",
    "PASSWORD": "not-a-real-password",
    "SANDBOX": False,
    "ALLOWED_COUNTRIES": ["IN", "GB"],
    "DAILY_SEND_CAP": 1000,
}
REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
        "OPTIONS": {"pool_class": "django_verifynow.cache.SharedConnectionPool"},
    }
}


def ids(messages: list[django_checks.CheckMessage]) -> list[str]:
    return [m.id for m in messages]


#: The checks of the VERIFYNOW settings; W009 and W010 read Django's own settings
#: (the suite's database and sessions warrant them: tests/settings.py silences them).
SETTINGS_CHECKS = [
    check
    for check in checks.ALL_CHECKS
    if check not in (checks.check_database_connections, checks.check_database_sessions)
]


def run_all(every: bool = False) -> list[django_checks.CheckMessage]:
    return [
        m
        for check in (checks.ALL_CHECKS if every else SETTINGS_CHECKS)
        for m in check()
    ]


def good(**overrides: Any) -> dict[str, Any]:
    return {**GOOD, **overrides}


class SubclassedLocMem(LocMemCache):
    """A site's own LocMem subclass: still private to each process."""


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES:UserWarning")
@override_settings(
    VERIFYNOW=GOOD,
    CACHES=REDIS,
    DEBUG=False,
    DATABASES={"default": {**settings.DATABASES["default"], "CONN_MAX_AGE": 60}},
    SESSION_ENGINE="django.contrib.sessions.backends.cached_db",
)
def test_a_good_configuration_is_quiet() -> None:
    assert run_all(every=True) == []


# -- E001 ---------------------------------------------------------------------------
@override_settings(VERIFYNOW={"SANDBOX": False, "ALLOWED_COUNTRIES": ["IN"]})
def test_e001_both_credentials_missing() -> None:
    messages = checks.check_credentials()
    assert ids(messages) == [Codes.CREDENTIALS_MISSING] * 2
    assert all(isinstance(m, django_checks.Error) for m in messages)
    assert '"CUSTOMER_ID"' in messages[0].msg
    assert '"PASSWORD"' in messages[1].msg
    assert "environment" in messages[0].hint


@override_settings(VERIFYNOW=good(PASSWORD=""))
def test_e001_one_credential_missing_names_it() -> None:
    messages = checks.check_credentials()
    assert ids(messages) == [Codes.CREDENTIALS_MISSING]
    assert '"PASSWORD"' in messages[0].msg
    assert "CUSTOMER_ID" not in messages[0].msg


@pytest.mark.parametrize(
    "verifynow",
    [GOOD, {"SANDBOX": True}, {"SANDBOX": True, "CUSTOMER_ID": None}],
    ids=["credentials", "sandbox", "sandbox-partial"],
)
def test_e001_quiet(verifynow: dict[str, Any]) -> None:
    with override_settings(VERIFYNOW=verifynow):
        assert checks.check_credentials() == []


@override_settings(VERIFYNOW=good(PASSWORD="hunter2-secret", CUSTOMER_ID=None))
def test_e001_never_shows_the_password() -> None:
    messages = checks.check_credentials()
    assert ids(messages) == [Codes.CREDENTIALS_MISSING]
    assert "hunter2" not in messages[0].msg + messages[0].hint


# -- E002 ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("limits", "action"),
    [
        ({"send": "5/fortnight/phone"}, "send"),
        ({"validate": "60/h/email"}, "validate"),
        ({"custom": 5}, "custom"),
        ({"resend": "5/h/phone,"}, "resend"),
    ],
)
def test_e002_unparsable_rate_limit_names_the_action(
    limits: dict[str, Any], action: str
) -> None:
    with override_settings(VERIFYNOW=good(RATE_LIMITS=limits)):
        messages = checks.check_rate_limits()
    assert ids(messages) == [Codes.RATE_LIMITS_INVALID]
    assert isinstance(messages[0], django_checks.Error)
    assert f'["{action}"]' in messages[0].msg
    assert "N/period/key" in messages[0].hint


@override_settings(VERIFYNOW=good(RATE_LIMITS={"send": "x", "validate": "y"}))
def test_e002_one_error_per_bad_action() -> None:
    assert ids(checks.check_rate_limits()) == [Codes.RATE_LIMITS_INVALID] * 2


@pytest.mark.parametrize(
    "limits",
    [{}, {"send": "1/m/ip,3/10m/session"}, {"send": ""}, {"send": None}],
    ids=["defaults", "custom", "disabled", "none"],
)
def test_e002_quiet(limits: dict[str, Any]) -> None:
    with override_settings(VERIFYNOW=good(RATE_LIMITS=limits)):
        assert checks.check_rate_limits() == []


# -- E003 ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("OTP_LENGTH", 3, '"OTP_LENGTH"'),
        ("BASE_URL", "ftp://example.com", '"BASE_URL"'),
        ("API_VERSION", "v9", '"API_VERSION"'),
        ("FLOW_TYPE", "PIGEON", '"FLOW_TYPE"'),
        ("TIMEOUT", "soon", '"TIMEOUT"'),
        ("CACHE", "no-such-alias", '"CACHE"'),
        ("TRUSTED_PROXY_COUNT", -1, '"TRUSTED_PROXY_COUNT"'),
        ("RATE_LIMITS", "5/h/phone", '"RATE_LIMITS"'),
        ("ALLOWED_COUNTRIES", ["INDIA"], '"ALLOWED_COUNTRIES"'),
        ("DAILY_SEND_CAP", 0, '"DAILY_SEND_CAP"'),
        ("SANDBOX_OPTIONS", [], '"SANDBOX_OPTIONS"'),
        ("DEADLINE", 0, '"DEADLINE"'),
        ("TRUSTED_PROXIES", ["10.0.0.0/8", "10.0.0.0/99"], "'10.0.0.0/99'"),
        ("TRUSTED_PROXIES", ["0.0.0.0/0"], "trusts every address"),
        ("TRUSTED_PROXIES", "10.0.0.0/8", '"TRUSTED_PROXIES"'),
    ],
)
def test_e003_invalid_value(key: str, value: Any, fragment: str) -> None:
    with override_settings(VERIFYNOW=good(**{key: value})):
        messages = checks.check_setting_values()
    assert ids(messages) == [Codes.SETTING_INVALID]
    assert isinstance(messages[0], django_checks.Error)
    assert fragment in messages[0].msg


@pytest.mark.parametrize(
    ("key", "value"), [("ALLOWED_COUNTRIES", 12345), ("ALLOWED_NUMBER_TYPES", 67890)]
)
def test_e003_wrong_type_is_reported_with_the_key(key: str, value: int) -> None:
    with override_settings(VERIFYNOW=good(**{key: value})):
        messages = checks.check_setting_values()
    assert ids(messages) == [Codes.SETTING_INVALID]
    assert f'VERIFYNOW["{key}"] must be' in messages[0].msg


@override_settings(VERIFYNOW="not a dict")
def test_e003_verifynow_not_a_dict_is_one_error_and_other_checks_stay_calm() -> None:
    messages = run_all()
    assert ids(messages) == [Codes.SETTING_INVALID]
    assert "must be a dict" in messages[0].msg


@override_settings(VERIFYNOW=good(OTP_LENGTH=3, CACHE="nope"))
def test_e003_reports_each_bad_key() -> None:
    messages = checks.check_setting_values()
    assert ids(messages) == [Codes.SETTING_INVALID] * 2
    # The other checks leave unreadable values to E003 instead of crashing.
    assert checks.check_otp_length() == []
    assert checks.check_cache() == []


@override_settings(VERIFYNOW=GOOD)
def test_e003_quiet() -> None:
    assert checks.check_setting_values() == []


# -- W001 ---------------------------------------------------------------------------
@pytest.mark.parametrize(("length", "bits"), [(4, "13.3"), (5, "16.6")])
def test_w001_short_codes(length: int, bits: str) -> None:
    with override_settings(VERIFYNOW=good(OTP_LENGTH=length)):
        messages = checks.check_otp_length()
    assert ids(messages) == [Codes.OTP_TOO_SHORT]
    assert isinstance(messages[0], django_checks.Warning)
    assert f"{bits} bits" in messages[0].msg
    assert "under 20 bits" in messages[0].msg


@pytest.mark.parametrize("length", [6, 7, 8])
def test_w001_quiet(length: int) -> None:
    with override_settings(VERIFYNOW=good(OTP_LENGTH=length)):
        assert checks.check_otp_length() == []


# -- W002 ---------------------------------------------------------------------------
@override_settings(VERIFYNOW={"SANDBOX": True}, DEBUG=False)
def test_w002_sandbox_without_debug() -> None:
    messages = checks.check_sandbox_debug()
    assert ids(messages) == [Codes.SANDBOX_WITHOUT_DEBUG]
    assert isinstance(messages[0], django_checks.Warning)


@pytest.mark.parametrize(
    ("sandbox", "debug"), [(True, True), (False, False), (False, True)]
)
def test_w002_quiet(sandbox: bool, debug: bool) -> None:
    with override_settings(VERIFYNOW=good(SANDBOX=sandbox), DEBUG=debug):
        assert checks.check_sandbox_debug() == []


# -- W003 ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("backend", "fragment"),
    [
        ("django.core.cache.backends.locmem.LocMemCache", "private to each process"),
        ("django.core.cache.backends.filebased.FileBasedCache", "no atomic increment"),
        ("django.core.cache.backends.db.DatabaseCache", "no atomic increment"),
        ("django.core.cache.backends.dummy.DummyCache", "not enforced at all"),
        ("tests.test_checks.SubclassedLocMem", "private to each process"),
    ],
)
def test_w003_unsuitable_cache(backend: str, fragment: str) -> None:
    caches = {"default": {"BACKEND": backend, "LOCATION": "/tmp/unused"}}
    with override_settings(VERIFYNOW=GOOD, CACHES=caches):
        messages = checks.check_cache()
    assert ids(messages) == [Codes.CACHE_NOT_SHARED]
    assert isinstance(messages[0], django_checks.Warning)
    assert fragment in messages[0].msg
    assert "Redis" in messages[0].hint


@pytest.mark.parametrize(
    "backend",
    [
        "django.core.cache.backends.redis.RedisCache",
        "django.core.cache.backends.memcached.PyMemcacheCache",
        "no.such.module.Cache",  # Django itself reports it when the cache is used
    ],
)
def test_w003_quiet_for_shared_caches(backend: str) -> None:
    caches = {"default": {"BACKEND": backend, "LOCATION": "127.0.0.1:1"}}
    with override_settings(VERIFYNOW=GOOD, CACHES=caches):
        assert checks.check_cache() == []


def test_w003_looks_at_the_configured_alias() -> None:
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "shared": REDIS["default"],
    }
    with override_settings(VERIFYNOW=good(CACHE="shared"), CACHES=caches):
        assert checks.check_cache() == []
    swapped = {"default": REDIS["default"], "local": caches["default"]}
    with override_settings(VERIFYNOW=good(CACHE="local"), CACHES=swapped):
        messages = checks.check_cache()
    assert ids(messages) == [Codes.CACHE_NOT_SHARED]
    assert '"local"' in messages[0].msg


# -- W004 ---------------------------------------------------------------------------
@override_settings(VERIFYNOW=good(ALLOWED_COUNTRIES=None))
def test_w004_no_allowlist() -> None:
    messages = checks.check_allowed_countries()
    assert ids(messages) == [Codes.NO_COUNTRY_ALLOWLIST]
    assert isinstance(messages[0], django_checks.Warning)
    assert "SMS pumping" in messages[0].msg


@override_settings(VERIFYNOW=good(ALLOWED_COUNTRIES=[]))
def test_w004_empty_allowlist_refuses_everything() -> None:
    messages = checks.check_allowed_countries()
    assert ids(messages) == [Codes.NO_COUNTRY_ALLOWLIST]
    assert "every phone number is refused" in messages[0].msg


@override_settings(
    VERIFYNOW={k: v for k, v in GOOD.items() if k != "ALLOWED_COUNTRIES"}
)
def test_w004_fires_by_default() -> None:
    assert ids(checks.check_allowed_countries()) == [Codes.NO_COUNTRY_ALLOWLIST]


@override_settings(VERIFYNOW=good(ALLOWED_COUNTRIES=["in"]))
def test_w004_quiet() -> None:
    assert checks.check_allowed_countries() == []


# -- W005 ---------------------------------------------------------------------------
@override_settings(VERIFYNOW=good(OTP_LENGHT=6, RATE_LIMIT={}, FROBNICATE=True))
def test_w005_unknown_keys_are_named_with_suggestions() -> None:
    messages = checks.check_unknown_keys()
    assert ids(messages) == [Codes.UNKNOWN_KEYS]
    assert isinstance(messages[0], django_checks.Warning)
    msg = messages[0].msg
    assert '"OTP_LENGHT" (did you mean "OTP_LENGTH"?)' in msg
    assert '"RATE_LIMIT" (did you mean "RATE_LIMITS"?)' in msg
    assert '"FROBNICATE"' in msg
    assert "CUSTOMER_ID" in messages[0].hint


@override_settings(VERIFYNOW={**GOOD, 1: "x"})
def test_w005_odd_keys_do_not_crash() -> None:
    messages = checks.check_unknown_keys()
    assert ids(messages) == [Codes.UNKNOWN_KEYS]
    assert '"1"' in messages[0].msg


@override_settings(VERIFYNOW=GOOD)
def test_w005_quiet() -> None:
    assert checks.check_unknown_keys() == []


# -- W006 ---------------------------------------------------------------------------
@pytest.mark.parametrize("deadline", [25.5, 30, 60])
def test_w006_deadline_too_close_to_the_worker_timeout(deadline: float) -> None:
    with override_settings(VERIFYNOW=good(DEADLINE=deadline)):
        messages = checks.check_deadline()
    assert ids(messages) == [Codes.DEADLINE_RISKY]
    assert isinstance(messages[0], django_checks.Warning)
    assert f"is {deadline:g} s" in messages[0].msg
    assert "--timeout" in messages[0].hint


@override_settings(VERIFYNOW=good(DEADLINE=2, TIMEOUT=(3.05, 10)))
def test_w006_deadline_below_the_connect_timeout() -> None:
    messages = checks.check_deadline()
    assert ids(messages) == [Codes.DEADLINE_RISKY]
    assert "below the connect timeout of 3.05 s" in messages[0].msg


@pytest.mark.parametrize(
    "overrides",
    [{}, {"DEADLINE": 25}, {"DEADLINE": 3.05}, {"DEADLINE": 2, "TIMEOUT": (1, 5)}],
    ids=["default", "25s", "equal-to-connect", "short-connect"],
)
def test_w006_quiet(overrides: dict[str, Any]) -> None:
    with override_settings(VERIFYNOW=good(**overrides)):
        assert checks.check_deadline() == []


@pytest.mark.parametrize(
    "overrides", [{"DEADLINE": "soon"}, {"DEADLINE": 40, "TIMEOUT": "fast"}]
)
def test_w006_leaves_unreadable_values_to_e003(overrides: dict[str, Any]) -> None:
    with override_settings(VERIFYNOW=good(**overrides)):
        assert checks.check_deadline() == []
        assert Codes.SETTING_INVALID in ids(checks.check_setting_values())


# -- W007 ---------------------------------------------------------------------------
@pytest.mark.parametrize("count", [1, 2, 0])
def test_w007_hop_count_is_deprecated(count: int) -> None:
    with override_settings(VERIFYNOW=good(TRUSTED_PROXY_COUNT=count)):
        messages = checks.check_proxy_count_deprecated()
    assert ids(messages) == [Codes.PROXY_COUNT_DEPRECATED]
    assert isinstance(messages[0], django_checks.Warning)
    assert messages[0].id == "django_verifynow.W007"
    assert '"TRUSTED_PROXY_COUNT"] is deprecated' in messages[0].msg
    assert "chooses its own address" in messages[0].msg
    assert 'VERIFYNOW["TRUSTED_PROXIES"]' in messages[0].hint
    assert "docs/deployment.md" in messages[0].hint


@override_settings(
    VERIFYNOW=good(TRUSTED_PROXY_COUNT=1, TRUSTED_PROXIES=["10.0.0.0/8"])
)
def test_w007_says_trusted_proxies_win_when_both_are_set() -> None:
    messages = checks.check_proxy_count_deprecated()
    assert ids(messages) == [Codes.PROXY_COUNT_DEPRECATED]
    assert "ignored" in messages[0].msg
    assert "TRUSTED_PROXIES wins" in messages[0].msg
    assert messages[0].hint == 'Remove VERIFYNOW["TRUSTED_PROXY_COUNT"].'


@pytest.mark.parametrize(
    "overrides",
    [{}, {"TRUSTED_PROXIES": ["10.0.0.0/8"]}, {"TRUSTED_PROXIES": []}],
    ids=["default", "proxies", "empty-proxies"],
)
def test_w007_quiet(overrides: dict[str, Any]) -> None:
    with override_settings(VERIFYNOW=good(**overrides)):
        assert checks.check_proxy_count_deprecated() == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"TRUSTED_PROXY_COUNT": -1},
        {"TRUSTED_PROXY_COUNT": 1, "TRUSTED_PROXIES": ["nope"]},
    ],
)
def test_w007_leaves_unreadable_values_to_e003(overrides: dict[str, Any]) -> None:
    with override_settings(VERIFYNOW=good(**overrides)):
        assert checks.check_proxy_count_deprecated() == []
        assert Codes.SETTING_INVALID in ids(checks.check_setting_values())


# -- W008 ---------------------------------------------------------------------------
@override_settings(VERIFYNOW=good(DAILY_SEND_CAP=None))
def test_w008_no_daily_cap() -> None:
    messages = checks.check_daily_cap()
    assert ids(messages) == [Codes.NO_DAILY_CAP]
    assert isinstance(messages[0], django_checks.Warning)
    assert messages[0].id == "django_verifynow.W008"
    assert (
        "no daily cap on vendor sends: an SMS-pumping attack is bounded only by the "
        "per-IP/per-phone limits" in messages[0].msg
    )
    assert 'VERIFYNOW["DAILY_SEND_CAP"]' in messages[0].hint
    assert "busiest day" in messages[0].hint


@override_settings(VERIFYNOW={k: v for k, v in GOOD.items() if k != "DAILY_SEND_CAP"})
def test_w008_fires_by_default() -> None:
    assert ids(checks.check_daily_cap()) == [Codes.NO_DAILY_CAP]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"DAILY_SEND_CAP": 1},
        {"DAILY_SEND_CAP": None, "SANDBOX": True},
        {"DAILY_SEND_CAP": 0},  # unreadable: E003 reports it
    ],
    ids=["cap", "cap-1", "sandbox", "unreadable"],
)
def test_w008_quiet(overrides: dict[str, Any]) -> None:
    with override_settings(VERIFYNOW=good(**overrides)):
        assert checks.check_daily_cap() == []


# -- registration ---------------------------------------------------------------------
def test_every_id_is_distinct_and_namespaced() -> None:
    values = [v for k, v in vars(Codes).items() if not k.startswith("_")]
    assert len(values) == len(set(values)) == 19
    assert all(v.startswith("django_verifynow.") for v in values)


def test_register_adds_every_check_under_the_tag() -> None:
    checks.register()
    checks.register()  # idempotent
    registered = django_checks.registry.registry.get_checks()
    for function in checks.ALL_CHECKS:
        assert function in registered
        assert checks.TAG in function.tags
    assert checks.register_checks is checks.register


@override_settings(
    VERIFYNOW={
        "SANDBOX": False,
        "OTP_LENGTH": 4,
        "TYPO": 1,
        "DEADLINE": 28,
        "TRUSTED_PROXY_COUNT": 1,
    },
    CACHES={"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}},
    DEBUG=False,
    SESSION_ENGINE="django.contrib.sessions.backends.db",
)
def test_run_checks_with_the_tag_reports_everything() -> None:
    found = set(ids(django_checks.run_checks(tags=[checks.TAG])))
    assert found == {
        Codes.CREDENTIALS_MISSING,
        Codes.OTP_TOO_SHORT,
        Codes.CACHE_NOT_SHARED,
        Codes.NO_COUNTRY_ALLOWLIST,
        Codes.UNKNOWN_KEYS,
        Codes.DEADLINE_RISKY,
        Codes.PROXY_COUNT_DEPRECATED,
        Codes.NO_DAILY_CAP,
        Codes.DB_SESSIONS,
    } | ({Codes.DB_CONNECTION_PER_REQUEST} if _per_request_connections() else set())


def _per_request_connections() -> bool:
    """Whether the suite's own database warrants W009 (PostgreSQL, as .ci/run sets)."""
    default = settings.DATABASES["default"]
    return "sqlite" not in default["ENGINE"] and not default.get("CONN_MAX_AGE")


def test_the_suite_settings_only_raise_the_silenced_warnings() -> None:
    found = set(ids(run_all(every=True)))
    assert found <= set(settings.SILENCED_SYSTEM_CHECKS)
    assert Codes.SANDBOX_WITHOUT_DEBUG in found  # DEBUG=False with the sandbox


@override_settings(VERIFYNOW={"SANDBOX": False, "OTP_LENGTH": 4})
def test_checks_skip_when_another_app_is_checked() -> None:
    other = [apps.get_app_config("auth")]
    assert [m for check in checks.ALL_CHECKS for m in check(app_configs=other)] == []
    ours = [apps.get_app_config("django_verifynow")]
    assert Codes.OTP_TOO_SHORT in ids(checks.check_otp_length(app_configs=ours))


# -- E004 ---------------------------------------------------------------------------
MEMCACHED = "django.core.cache.backends.memcached.PyMemcacheCache"


def absent(module: str) -> Any:
    """``import module`` fails inside the block, as for a package not installed
    (None in sys.modules). Restored on leaving the block, before the suite's fixtures
    clear the caches (a Redis cache imports redis then)."""
    return mock.patch.dict(sys.modules, {module: None})


def _cache(backend: str, alias: str = "default") -> dict[str, Any]:
    return {alias: {"BACKEND": backend, "LOCATION": "127.0.0.1:1"}}


@pytest.mark.parametrize(
    "backend, module, install",
    [
        (REDIS["default"]["BACKEND"], "redis", "pip install django-verifynow[redis]"),
        (MEMCACHED, "pymemcache", "pip install pymemcache"),
        (
            "django.core.cache.backends.memcached.PyLibMCCache",
            "pylibmc",
            "pip install pylibmc",
        ),
    ],
)
def test_e004_the_cache_client_is_not_installed(
    backend: str, module: str, install: str
) -> None:
    with absent(module), override_settings(CACHES=_cache(backend), VERIFYNOW=GOOD):
        [error] = checks.check_cache_client()
    assert error.id == Codes.CACHE_CLIENT_MISSING and error.is_serious()
    assert f'"{module}"' in error.msg and backend in error.msg
    assert install in error.hint and "verifynow_check" in error.hint


def test_e004_a_backend_that_does_not_import_is_named() -> None:
    with (
        absent("django_redis"),
        override_settings(
            CACHES=_cache("django_redis.cache.RedisCache"), VERIFYNOW=GOOD
        ),
    ):
        [error] = checks.check_cache_client()
    assert '"django_redis"' in error.msg and "pip install django-redis" in error.hint


def test_e004_looks_at_the_configured_alias() -> None:
    caches = {
        **_cache("django.core.cache.backends.locmem.LocMemCache"),
        **_cache(REDIS["default"]["BACKEND"], alias="limits"),
    }
    with absent("redis"):
        with override_settings(CACHES=caches, VERIFYNOW=good(CACHE="limits")):
            assert ids(checks.check_cache_client()) == [Codes.CACHE_CLIENT_MISSING]
        with override_settings(CACHES=caches, VERIFYNOW=GOOD):
            assert checks.check_cache_client() == []


class SiteRedisCache(RedisCache):
    """A site's own subclass of Django's Redis backend: still needs redis."""


def test_e004_subclasses_need_the_client_too() -> None:
    path = f"{__name__}.SiteRedisCache"
    with absent("redis"), override_settings(CACHES=_cache(path), VERIFYNOW=GOOD):
        assert ids(checks.check_cache_client()) == [Codes.CACHE_CLIENT_MISSING]


@pytest.mark.parametrize(
    "backend",
    [REDIS["default"]["BACKEND"], "django.core.cache.backends.locmem.LocMemCache", ""],
)
def test_e004_quiet_when_the_client_imports(backend: str) -> None:
    with override_settings(CACHES=_cache(backend), VERIFYNOW=GOOD):
        assert checks.check_cache_client() == []


# -- I001 -----------------------------------------------------------------------------
REDIS_CACHE = {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": "redis://127.0.0.1:6379/0",
}
SHARED = {"pool_class": "django_verifynow.cache.SharedConnectionPool"}


@override_settings(
    DEBUG=False,
    CACHES={"default": REDIS_CACHE, "sessions": REDIS_CACHE},
    SESSION_ENGINE="django.contrib.sessions.backends.cached_db",
    SESSION_CACHE_ALIAS="sessions",
    VERIFYNOW=GOOD,
)
def test_i001_redis_caches_with_a_pool_per_instance() -> None:
    found = checks.check_redis_pool()
    assert [m.id for m in found] == [Codes.REDIS_POOL_PER_INSTANCE] * 2
    assert all(m.level == django_checks.INFO for m in found)
    assert 'CACHES["default"] (the limits)' in found[0].msg
    assert 'CACHES["sessions"] (the sessions)' in found[1].msg
    assert "SharedConnectionPool" in found[0].hint


@override_settings(
    DEBUG=False,
    CACHES={"default": REDIS_CACHE},
    SESSION_ENGINE="django.contrib.sessions.backends.cache",
    VERIFYNOW=GOOD,
)
def test_i001_one_message_for_a_cache_both_use() -> None:
    [info] = checks.check_redis_pool()
    assert 'CACHES["default"] (the limits and the sessions)' in info.msg


@pytest.mark.parametrize(
    "debug, cache, engine",
    [
        (True, REDIS_CACHE, "django.contrib.sessions.backends.cache"),
        (
            False,
            {**REDIS_CACHE, "OPTIONS": SHARED},
            "django.contrib.sessions.backends.cache",
        ),
        (False, {**REDIS_CACHE, "BACKEND": "django_redis.cache.RedisCache"}, "x.db"),
        (False, {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}, "x.db"),
    ],
    ids=["debug", "shared-pool", "django-redis", "locmem"],
)
def test_i001_quiet(debug: bool, cache: dict[str, Any], engine: str) -> None:
    with override_settings(
        DEBUG=debug, CACHES={"default": cache}, SESSION_ENGINE=engine, VERIFYNOW=GOOD
    ):
        assert checks.check_redis_pool() == []


# -- W009, W010 -----------------------------------------------------------------------
POSTGRES = {"ENGINE": "django.db.backends.postgresql", "NAME": "site"}
# Reading DATABASES under override_settings is all these checks do.
databases_override = pytest.mark.filterwarnings(
    "ignore:Overriding setting DATABASES:UserWarning"
)


@databases_override
@override_settings(DEBUG=False, DATABASES={"default": POSTGRES})
def test_w009_a_connection_per_request() -> None:
    [warning] = checks.check_database_connections()
    assert warning.id == Codes.DB_CONNECTION_PER_REQUEST
    assert 'DATABASES["default"]' in warning.msg and "postgresql" in warning.msg
    assert '"CONN_MAX_AGE"] = 60' in warning.hint and '{"pool": True}' in warning.hint


@databases_override
@pytest.mark.parametrize(
    "debug, database",
    [
        (True, POSTGRES),
        (False, {**POSTGRES, "CONN_MAX_AGE": 60}),
        (False, {**POSTGRES, "CONN_MAX_AGE": None}),
        (False, {**POSTGRES, "OPTIONS": {"pool": True}}),
        (False, {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}),
    ],
)
def test_w009_quiet(debug: bool, database: dict[str, Any]) -> None:
    with override_settings(DEBUG=debug, DATABASES={"default": database}):
        assert checks.check_database_connections() == []


@override_settings(DEBUG=False, SESSION_ENGINE="django.contrib.sessions.backends.db")
def test_w010_sessions_in_the_database() -> None:
    [warning] = checks.check_database_sessions()
    assert warning.id == Codes.DB_SESSIONS
    assert "one query per request" in warning.msg and "cached_db" in warning.hint


@pytest.mark.parametrize(
    "debug, engine",
    [
        (True, "django.contrib.sessions.backends.db"),
        (False, "django.contrib.sessions.backends.cached_db"),
        (False, "django.contrib.sessions.backends.signed_cookies"),
    ],
)
def test_w010_quiet(debug: bool, engine: str) -> None:
    with override_settings(DEBUG=debug, SESSION_ENGINE=engine):
        assert checks.check_database_sessions() == []
