"""System checks for the ``VERIFYNOW`` settings (``manage.py check``).

Ids are stable and documented; silence one with ``SILENCED_SYSTEM_CHECKS`` only when you
understand what it protects. Every check is registered with the tag
``"django_verifynow"`` by :func:`register`, which the app config calls in ``ready()``.

Each check reads settings through :data:`~django_verifynow.conf.verifynow_settings`
and stays quiet when a value is unreadable: ``E003`` reports those, once each.
"""

from __future__ import annotations

import difflib
import importlib
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core import checks
from django.db import router
from django.utils.module_loading import import_string

from .check_messages import (
    CACHE_CLIENTS,
    CACHE_INSTALLS,
    DB_SESSION_ENGINE,
    DEADLINE_WARN_ABOVE,
    UNSUITABLE_CACHES,
    Codes,
    Hints,
    Messages,
)
from .conf import DEFAULTS, setting_property, verifynow_settings
from .exceptions import VerifyNowConfigurationError
from .ratelimit import parse_rules

__all__ = [
    "TAG",
    "Codes",
    "Hints",
    "Messages",
    "check_allowed_countries",
    "check_cache",
    "check_cache_client",
    "check_channels_api_version",
    "check_database_connections",
    "check_database_sessions",
    "check_redis_pool",
    "check_credentials",
    "check_daily_cap",
    "check_deadline",
    "check_otp_length",
    "check_proxy_count_deprecated",
    "check_rate_limits",
    "check_sandbox_debug",
    "check_setting_values",
    "check_test_numbers",
    "check_test_numbers_allowed",
    "check_unknown_keys",
    "register",
    "register_checks",
]

#: Tag every check of this app is registered under (``manage.py check --tag ...``).
TAG = "django_verifynow"

_APP_NAME = "django_verifynow"


CheckFunction = Callable[..., list[checks.CheckMessage]]


def _applies(app_configs: Sequence[AppConfig] | None) -> bool:
    # ``manage.py check otherapp`` passes the app configs to check; skip if not ours.
    return app_configs is None or any(c.name == _APP_NAME for c in app_configs)


def _read(name: str) -> Any:
    """A setting value, or the :data:`_UNREADABLE` marker (E003 reports it)."""
    try:
        return getattr(verifynow_settings, name)
    except Exception:
        return _UNREADABLE


_UNREADABLE = object()


def check_credentials(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E001: ``CUSTOMER_ID`` and ``PASSWORD`` are required unless ``SANDBOX`` is on."""
    if not _applies(app_configs) or _read("SANDBOX") in (True, _UNREADABLE):
        return []
    errors: list[checks.CheckMessage] = []
    for key in ("CUSTOMER_ID", "PASSWORD"):
        if _read(key) is None:
            errors.append(
                checks.Error(
                    Messages.CREDENTIALS_MISSING.format(key=key),
                    hint=Hints.CREDENTIALS_MISSING,
                    id=Codes.CREDENTIALS_MISSING,
                )
            )
    return errors


def check_rate_limits(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E002: every ``RATE_LIMITS`` entry parses."""
    limits = _read("RATE_LIMITS")
    if not _applies(app_configs) or limits is _UNREADABLE:
        return []
    errors: list[checks.CheckMessage] = []
    for action, spec in limits.items():
        try:
            parse_rules(spec if spec is not None else "")
        except ValueError as exc:
            errors.append(
                checks.Error(
                    Messages.RATE_LIMITS_INVALID.format(action=action, error=exc),
                    hint=Hints.RATE_LIMITS_INVALID,
                    id=Codes.RATE_LIMITS_INVALID,
                )
            )
    return errors


def check_setting_values(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E003: every ``VERIFYNOW`` value can be read (each property validates its key)."""
    if not _applies(app_configs):
        return []
    errors: list[checks.CheckMessage] = []
    seen: set[str] = set()
    for key in _setting_properties():
        try:
            getattr(verifynow_settings, key)
        except VerifyNowConfigurationError as exc:
            message = str(exc)
        except Exception as exc:
            # A value of a shape the property does not expect at all (e.g. a number
            # where a list belongs). Never echo the value: it might be a secret.
            message = Messages.SETTING_INVALID_FALLBACK.format(
                key=key, type=type(exc).__name__
            )
        else:
            continue
        if message not in seen:  # e.g. VERIFYNOW not a dict: one error, not twenty
            seen.add(message)
            errors.append(
                checks.Error(
                    message, hint=Hints.SETTING_INVALID, id=Codes.SETTING_INVALID
                )
            )
    return errors


def _setting_properties() -> list[str]:
    cls = type(verifynow_settings)
    return [
        k
        for k in DEFAULTS
        if isinstance(getattr(cls, k, None), (property, setting_property))
    ]


def check_channels_api_version(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E005: WhatsApp among the channels (``CHANNELS`` or ``FLOW_TYPE``) on the v2 API,
    which documents ``flowType`` as SMS only: every WhatsApp send would be refused."""
    version, channels = _read("API_VERSION"), _read("CHANNELS")
    if (
        not _applies(app_configs)
        or version != "v2"
        or channels is _UNREADABLE  # E003 says so
        or "WHATSAPP" not in channels
    ):
        return []
    return [
        checks.Error(
            Messages.CHANNELS_NEED_V3.format(channels=", ".join(channels)),
            hint=Hints.CHANNELS_NEED_V3,
            id=Codes.CHANNELS_NEED_V3,
        )
    ]


def check_otp_length(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W001: codes shorter than 6 digits."""
    length = _read("OTP_LENGTH")
    if not _applies(app_configs) or length is _UNREADABLE or length >= 6:
        return []
    bits = f"{length * math.log2(10):.1f}"
    return [
        checks.Warning(
            Messages.OTP_TOO_SHORT.format(length=length, bits=bits),
            hint=Hints.OTP_TOO_SHORT,
            id=Codes.OTP_TOO_SHORT,
        )
    ]


def check_sandbox_debug(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W002: the simulator is on while ``DEBUG`` is off (a production site, usually)."""
    if not _applies(app_configs) or _read("SANDBOX") is not True or settings.DEBUG:
        return []
    return [
        checks.Warning(
            Messages.SANDBOX_WITHOUT_DEBUG,
            hint=Hints.SANDBOX_WITHOUT_DEBUG,
            id=Codes.SANDBOX_WITHOUT_DEBUG,
        )
    ]


def check_cache(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W003: the cache alias is not shared between processes or has no atomic incr."""
    alias = _read("CACHE")
    if not _applies(app_configs) or alias is _UNREADABLE:
        return []
    backend = settings.CACHES[alias].get("BACKEND", "")
    problem = _unsuitable(backend)
    if problem is None:
        return []
    if problem == UNSUITABLE_CACHES["django.core.cache.backends.dummy.DummyCache"]:
        message = Messages.CACHE_DUMMY.format(alias=alias)
    else:
        name = backend.rsplit(".", 1)[-1]
        message = Messages.CACHE_NOT_SHARED.format(
            alias=alias, backend=name, problem=problem
        )
    return [
        checks.Warning(message, hint=Hints.CACHE_NOT_SHARED, id=Codes.CACHE_NOT_SHARED)
    ]


def _unsuitable(backend: str) -> str | None:
    """Why ``backend`` (a dotted path) is unsuitable, also for subclasses; else None."""
    if backend in UNSUITABLE_CACHES:
        return UNSUITABLE_CACHES[backend]
    try:
        cls = import_string(backend)
    except ImportError:
        return None  # E004 reports a backend that cannot be imported
    return next(
        (why for path, why in UNSUITABLE_CACHES.items() if _subclass_of(cls, path)),
        None,
    )


def check_cache_client(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E004: the cache backend, or the client library it needs, does not import."""
    alias = _read("CACHE")
    if not _applies(app_configs) or alias is _UNREADABLE:
        return []
    backend = settings.CACHES[alias].get("BACKEND", "")
    module = _missing_cache_module(backend)
    if module is None:
        return []
    install = CACHE_INSTALLS.get(module, f"pip install {module}")
    return [
        checks.Error(
            Messages.CACHE_CLIENT_MISSING.format(
                alias=alias, backend=backend, module=module
            ),
            hint=Hints.CACHE_CLIENT_MISSING.format(install=install),
            id=Codes.CACHE_CLIENT_MISSING,
        )
    ]


def _missing_cache_module(backend: str) -> str | None:
    """The top-level module ``backend`` needs and cannot import, or None."""
    if not backend:
        return None  # no BACKEND at all: Django's own error says so on first use
    try:
        cls = import_string(backend)
    except ImportError as exc:
        # ModuleNotFoundError names the module (django_redis, or the redis it
        # imports); a path that names no class is the module path itself.
        return (exc.name or backend.rsplit(".", 1)[0]).split(".")[0]
    for path, module in CACHE_CLIENTS.items():
        if backend == path or _subclass_of(cls, path):
            try:
                importlib.import_module(module)
            except ImportError:
                return module
    return None


def _subclass_of(cls: Any, path: str) -> bool:
    try:
        base = import_string(path)
    except ImportError:  # e.g. django-redis not installed: cls cannot derive from it
        return False
    return isinstance(cls, type) and issubclass(cls, base)


def check_allowed_countries(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W004: no country allow-list (or an empty one)."""
    countries = _read("ALLOWED_COUNTRIES")
    if not _applies(app_configs) or countries is _UNREADABLE:
        return []
    if countries is None:
        message, hint = Messages.NO_COUNTRY_ALLOWLIST, Hints.NO_COUNTRY_ALLOWLIST
    elif not countries:
        message, hint = Messages.EMPTY_COUNTRY_ALLOWLIST, Hints.EMPTY_COUNTRY_ALLOWLIST
    else:
        return []
    return [checks.Warning(message, hint=hint, id=Codes.NO_COUNTRY_ALLOWLIST)]


def check_unknown_keys(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W005: keys in ``VERIFYNOW`` this version does not know (usually typos)."""
    if not _applies(app_configs):
        return []
    try:
        unknown = verifynow_settings.unknown_keys()
    except TypeError:  # keys of mixed types do not sort; list them as they come
        unknown = [k for k in settings.VERIFYNOW if k not in DEFAULTS]
    if not unknown:
        return []
    names = []
    for key in unknown:
        close = difflib.get_close_matches(str(key).upper(), list(DEFAULTS), n=1)
        names.append(f'"{key}" (did you mean "{close[0]}"?)' if close else f'"{key}"')
    return [
        checks.Warning(
            Messages.UNKNOWN_KEYS.format(keys=", ".join(names)),
            hint=Hints.UNKNOWN_KEYS.format(known=", ".join(DEFAULTS)),
            id=Codes.UNKNOWN_KEYS,
        )
    ]


def check_deadline(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W006: ``DEADLINE`` above 25 s, or below the connect timeout."""
    deadline = _read("DEADLINE")
    timeout = _read("TIMEOUT")
    unreadable = deadline is _UNREADABLE or timeout is _UNREADABLE  # E003 says so
    if not _applies(app_configs) or unreadable:
        return []
    connect = timeout[0]
    if deadline > DEADLINE_WARN_ABOVE:
        message = Messages.DEADLINE_TOO_LONG.format(deadline=deadline)
        hint = Hints.DEADLINE_TOO_LONG
    elif deadline < connect:
        message = Messages.DEADLINE_BELOW_CONNECT.format(
            deadline=deadline, connect=connect
        )
        hint = Hints.DEADLINE_BELOW_CONNECT
    else:
        return []
    return [checks.Warning(message, hint=hint, id=Codes.DEADLINE_RISKY)]


def check_proxy_count_deprecated(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W007: the deprecated ``TRUSTED_PROXY_COUNT`` is set (ignored with
    ``TRUSTED_PROXIES``)."""
    if not _applies(app_configs) or not verifynow_settings.is_set(
        "TRUSTED_PROXY_COUNT"
    ):
        return []
    proxies = _read("TRUSTED_PROXIES")
    if proxies is _UNREADABLE or _read("TRUSTED_PROXY_COUNT") is _UNREADABLE:
        return []
    if proxies:
        message, hint = Messages.PROXY_COUNT_IGNORED, Hints.PROXY_COUNT_IGNORED
    else:
        message, hint = Messages.PROXY_COUNT_DEPRECATED, Hints.PROXY_COUNT_DEPRECATED
    return [checks.Warning(message, hint=hint, id=Codes.PROXY_COUNT_DEPRECATED)]


def check_daily_cap(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W008: no ``DAILY_SEND_CAP`` while real SMS are sent (``SANDBOX`` off)."""
    if not _applies(app_configs) or _read("SANDBOX") is not False:
        return []
    if _read("DAILY_SEND_CAP") is not None:  # a cap, or unreadable (E003)
        return []
    return [
        checks.Warning(
            Messages.NO_DAILY_CAP, hint=Hints.NO_DAILY_CAP, id=Codes.NO_DAILY_CAP
        )
    ]


def check_database_connections(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W009: with ``DEBUG`` off, the app's database opens a connection per request."""
    if not _applies(app_configs) or settings.DEBUG:
        return []
    from .models import VerificationAttempt

    alias = router.db_for_write(VerificationAttempt)
    config = settings.DATABASES.get(alias) or {}
    engine = str(config.get("ENGINE", ""))
    options = config.get("OPTIONS") or {}
    if (
        "sqlite" in engine  # a file on this machine: opening it costs nothing
        or engine.endswith(".dummy")
        or not engine
        or config.get("CONN_MAX_AGE", 0) != 0
        or (isinstance(options, dict) and options.get("pool"))
    ):
        return []
    return [
        checks.Warning(
            Messages.DB_CONNECTION_PER_REQUEST.format(alias=alias, engine=engine),
            hint=Hints.DB_CONNECTION_PER_REQUEST.format(alias=alias),
            id=Codes.DB_CONNECTION_PER_REQUEST,
        )
    ]


def check_database_sessions(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W010: with ``DEBUG`` off, sessions are read from the database per request."""
    if (
        not _applies(app_configs)
        or settings.DEBUG
        or not apps.is_installed("django.contrib.sessions")
        or settings.SESSION_ENGINE != DB_SESSION_ENGINE
    ):
        return []
    return [
        checks.Warning(
            Messages.DB_SESSIONS.format(engine=settings.SESSION_ENGINE),
            hint=Hints.DB_SESSIONS,
            id=Codes.DB_SESSIONS,
        )
    ]


#: Django's own Redis backend, whose pool is per instance (django-redis shares its
#: pools per process already).
DJANGO_REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"
#: Session engines that keep sessions in a cache (``SESSION_CACHE_ALIAS``).
CACHE_SESSION_ENGINES = (
    "django.contrib.sessions.backends.cache",
    "django.contrib.sessions.backends.cached_db",
)


def check_redis_pool(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """I001: with ``DEBUG`` off, the limits' or the sessions' cache is Django's
    ``RedisCache`` with its default, per-instance connection pool.

    Information, not a warning: it costs a connection per request only under ASGI,
    which the settings do not reveal.
    """
    alias = _read("CACHE")
    if not _applies(app_configs) or settings.DEBUG or alias is _UNREADABLE:
        return []
    uses: dict[str, list[str]] = {str(alias): ["the limits"]}
    if settings.SESSION_ENGINE in CACHE_SESSION_ENGINES:
        uses.setdefault(str(settings.SESSION_CACHE_ALIAS), []).append("the sessions")
    found: list[checks.CheckMessage] = []
    for name, what in uses.items():
        config = settings.CACHES.get(name) or {}
        options: Any = config.get("OPTIONS") or {}
        if config.get("BACKEND") != DJANGO_REDIS_CACHE or (
            isinstance(options, dict) and options.get("pool_class")
        ):
            continue
        found.append(
            checks.Info(
                Messages.REDIS_POOL_PER_INSTANCE.format(
                    alias=name, use=" and ".join(what)
                ),
                hint=Hints.REDIS_POOL_PER_INSTANCE,
                id=Codes.REDIS_POOL_PER_INSTANCE,
            )
        )
    return found


def _masked_list(numbers: Iterable[str]) -> str:
    from .phone import mask

    return ", ".join(mask(n) for n in numbers)


def check_test_numbers(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E006 / W011: ``TEST_NUMBERS`` set while ``DEBUG`` is off: an error unless
    ``ALLOW_TEST_NUMBERS_IN_PRODUCTION`` acknowledges it, then still a warning."""
    numbers = _read("TEST_NUMBERS")
    if not _applies(app_configs) or numbers is _UNREADABLE or not numbers:
        return []
    if settings.DEBUG:
        return []
    fields = {"count": len(numbers), "numbers": _masked_list(numbers)}
    if _read("ALLOW_TEST_NUMBERS_IN_PRODUCTION") is True:
        return [
            checks.Warning(
                Messages.TEST_NUMBERS_ACKNOWLEDGED.format(**fields),
                hint=Hints.TEST_NUMBERS_ACKNOWLEDGED,
                id=Codes.TEST_NUMBERS_ACKNOWLEDGED,
            )
        ]
    return [
        checks.Error(
            Messages.TEST_NUMBERS_IN_PRODUCTION.format(**fields),
            hint=Hints.TEST_NUMBERS_IN_PRODUCTION,
            id=Codes.TEST_NUMBERS_IN_PRODUCTION,
        )
    ]


def check_test_numbers_allowed(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W012: a ``TEST_NUMBERS`` entry that ``ALLOWED_COUNTRIES`` or
    ``ALLOWED_NUMBER_TYPES`` refuses (it could never be used)."""
    numbers = _read("TEST_NUMBERS")
    if not _applies(app_configs) or numbers is _UNREADABLE or not numbers:
        return []
    if _UNREADABLE in (_read("ALLOWED_COUNTRIES"), _read("ALLOWED_NUMBER_TYPES")):
        return []
    from .exceptions import PhoneNumberNotAllowed
    from .phone import check_allowed, mask
    from .reasons import Reason

    found: list[checks.CheckMessage] = []
    for number in numbers:
        try:
            check_allowed(number)
        except PhoneNumberNotAllowed as exc:
            setting = (
                "ALLOWED_COUNTRIES"
                if exc.reason is Reason.COUNTRY
                else "ALLOWED_NUMBER_TYPES"
            )
            found.append(
                checks.Warning(
                    Messages.TEST_NUMBER_NOT_ALLOWED.format(
                        number=mask(number), setting=setting
                    ),
                    hint=Hints.TEST_NUMBER_NOT_ALLOWED,
                    id=Codes.TEST_NUMBER_NOT_ALLOWED,
                )
            )
    return found


#: Every check of the app, in id order.
ALL_CHECKS: tuple[CheckFunction, ...] = (
    check_credentials,
    check_rate_limits,
    check_setting_values,
    check_cache_client,
    check_channels_api_version,
    check_test_numbers,
    check_otp_length,
    check_sandbox_debug,
    check_cache,
    check_allowed_countries,
    check_unknown_keys,
    check_deadline,
    check_proxy_count_deprecated,
    check_daily_cap,
    check_database_connections,
    check_database_sessions,
    check_test_numbers_allowed,
    check_redis_pool,
)


def register(functions: Iterable[CheckFunction] = ALL_CHECKS) -> None:
    """Register the checks with Django under :data:`TAG`; safe to call twice."""
    for function in functions:
        checks.register(function, TAG)


#: Alias, for app configs that prefer the longer name.
register_checks = register
