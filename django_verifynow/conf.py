"""The ``VERIFYNOW`` settings dict: defaults, one typed property per key, live reads.

Usage::

    from django_verifynow.conf import verifynow_settings
    verifynow_settings.OTP_LENGTH

Every property reads ``settings.VERIFYNOW`` at access time, so ``override_settings``
works without any reload hook. Values are validated when read: a wrong value raises
:class:`~django_verifynow.exceptions.VerifyNowConfigurationError` naming the key.

The defaults and constants (:data:`DEFAULTS`, :data:`DEFAULT_RATE_LIMITS`,
:data:`FLOW_TYPES` …) live in :mod:`django_verifynow.defaults` and are re-exported
here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar, overload

from django.conf import settings
from django.core.signals import setting_changed

from .defaults import (
    _PROXIES_EXAMPLE,
    _PROXY_ENTRY_TYPES,
    DEFAULT_RATE_LIMITS,
    DEFAULTS,
    FLOW_TYPES,
    MAX_CODE_TTL,
    MIN_DEADLINE,
    NUMBER_TYPES,
    IPNetwork,
    _parse_networks,
)
from .exceptions import VerifyNowConfigurationError

__all__ = [
    "DEFAULTS",
    "IPNetwork",
    "VerifyNowSettings",
    "setting_property",
    "verifynow_settings",
]


def _iterable(value: Any) -> bool:
    try:
        iter(value)
    except TypeError:
        return False
    return True


def _bad(key: str, expected: str, value: Any) -> VerifyNowConfigurationError:
    return VerifyNowConfigurationError(
        f'VERIFYNOW["{key}"] must be {expected}; got {type(value).__name__} {value!r}. '
        f"Fix it in the VERIFYNOW dict of your Django settings."
    )


def _test_numbers(value: Mapping[Any, Any], length: int) -> dict[str, str]:
    """``TEST_NUMBERS`` validated: E.164 keys, codes of ``length`` ASCII digits.

    The messages mask the numbers and never show a code: they end up in logs and in
    ``manage.py check`` output.
    """
    from .exceptions import InvalidPhoneNumber
    from .phone import mask, normalize  # phone reads these settings: import late

    numbers: dict[str, str] = {}
    for raw, code in value.items():
        shown = mask(raw) if isinstance(raw, str) else type(raw).__name__
        where = f'VERIFYNOW["TEST_NUMBERS"] entry {shown}'
        if not isinstance(raw, str) or not raw.strip().startswith("+"):
            raise VerifyNowConfigurationError(
                f"{where}: write the number in international format, with its "
                '"+" and country code ("+<country code><number>").'
            )
        try:
            e164 = normalize(raw)
        except InvalidPhoneNumber:
            raise VerifyNowConfigurationError(
                f"{where} is not a valid phone number; pick one that exists in the "
                "numbering plan (the same validation as any number typed by a user)."
            ) from None
        if not (
            isinstance(code, str)
            and len(code) == length
            and code.isascii()
            and code.isdigit()
        ):
            # Not str(int): 012345 written as a number would lose its leading zero.
            raise VerifyNowConfigurationError(
                f"{where}: its code must be a string of exactly {length} ASCII "
                'digits (VERIFYNOW["OTP_LENGTH"]), in quotes.'
            )
        if e164 in numbers:
            raise VerifyNowConfigurationError(
                f"{where} is listed twice (once in another format)."
            )
        numbers[e164] = code
    return numbers


_T = TypeVar("_T")


class setting_property(Generic[_T]):
    """A validated setting, computed once per version of ``settings.VERIFYNOW``.

    A send reads settings dozens of times; validating each read again cost more than
    the policy itself. The memo is dropped whenever ``settings.VERIFYNOW`` is replaced
    (``override_settings``, the ``settings`` fixture) or any setting changes (Django's
    ``setting_changed`` signal), so reads stay live. Mutating the dict in place is not
    seen: assign a new dict instead.
    """

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> setting_property[_T]: ...

    @overload
    def __get__(self, obj: VerifyNowSettings, owner: type | None = None) -> _T: ...

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        memo = obj._memo_for(getattr(settings, "VERIFYNOW", None))
        try:
            return memo[self.name]
        except KeyError:
            value = memo[self.name] = self.func(obj)
            return value


class VerifyNowSettings:
    """Typed, live view of ``settings.VERIFYNOW`` (see :data:`DEFAULTS`)."""

    def __init__(self) -> None:
        self._memo: dict[str, Any] = {}
        self._memo_source: Any = None

    def _memo_for(self, source: Any) -> dict[str, Any]:
        if source is not self._memo_source:
            self._memo = {}
            self._memo_source = source
        return self._memo

    def derived(self, name: str, build: Callable[[], _T]) -> _T:
        """``build()``, made once per version of the settings, like a setting.

        For values computed from several settings on every call (the client of
        :func:`~django_verifynow.client.get_client`): dropped with the validated
        settings, so ``override_settings`` gets a fresh one. Two threads may both
        build it the first time; ``build`` must return equal values.
        """
        memo = self._memo_for(getattr(settings, "VERIFYNOW", None))
        key = f"derived:{name}"  # setting names are upper-case: no clash
        try:
            return memo[key]
        except KeyError:
            value = memo[key] = build()
            return value

    def clear_cache(self) -> None:
        """Forget every validated value (Django's ``setting_changed`` calls this)."""
        self._memo = {}
        self._memo_source = None

    def _raw(self, key: str) -> Any:
        user = getattr(settings, "VERIFYNOW", None) or {}
        if not isinstance(user, dict):
            raise VerifyNowConfigurationError("settings.VERIFYNOW must be a dict.")
        return user.get(key, DEFAULTS[key])

    def _int(self, key: str, lo: int, hi: int | None = None) -> int:
        value = self._raw(key)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < lo
            or (hi is not None and value > hi)
        ):
            bound = f"an integer from {lo} to {hi}" if hi else f"an integer >= {lo}"
            raise _bad(key, bound, value)
        return value

    def _bool(self, key: str) -> bool:
        """A real ``bool`` or a configuration error: ``"False"`` or ``"0"`` from an
        environment variable is truthy, and ``bool()`` would turn it on."""
        value = self._raw(key)
        if not isinstance(value, bool):
            raise _bad(key, "True or False", value)
        return value

    def is_set(self, key: str) -> bool:
        """Whether ``settings.VERIFYNOW`` names ``key`` itself (whatever its value)."""
        user = getattr(settings, "VERIFYNOW", None) or {}
        return isinstance(user, dict) and key in user

    def unknown_keys(self) -> list[str]:
        """Keys in ``settings.VERIFYNOW`` that this version does not know (typos)."""
        user = getattr(settings, "VERIFYNOW", None) or {}
        return (
            sorted(k for k in user if k not in DEFAULTS)
            if isinstance(user, dict)
            else []
        )

    # -- credentials -------------------------------------------------------------------
    @setting_property
    def CUSTOMER_ID(self) -> str | None:
        """VerifyNow customer id (``C-…``); required unless :attr:`SANDBOX`."""
        return self._raw("CUSTOMER_ID") or None

    @setting_property
    def PASSWORD(self) -> str | None:
        """Account password; the client sends its Base64 as ``key``. Never logged."""
        return self._raw("PASSWORD") or None

    @setting_property
    def EMAIL(self) -> str | None:
        """Optional account e-mail sent with token requests."""
        return self._raw("EMAIL") or None

    @setting_property
    def COUNTRY(self) -> str | None:
        """Optional ``country`` sent with token requests."""
        value = self._raw("COUNTRY")
        return str(value) if value not in (None, "") else None

    def require_credentials(self) -> tuple[str, str]:
        """Return ``(CUSTOMER_ID, PASSWORD)`` or raise naming the missing key."""
        for key in ("CUSTOMER_ID", "PASSWORD"):
            if not self._raw(key):
                raise VerifyNowConfigurationError(
                    f'VERIFYNOW["{key}"] is not set. Set it in the VERIFYNOW dict of '
                    "your Django settings (read it from the environment, never commit "
                    'it), or set VERIFYNOW["SANDBOX"] = True to use the built-in '
                    "simulator."
                )
        return self._raw("CUSTOMER_ID"), self._raw("PASSWORD")

    # -- transport ---------------------------------------------------------------------
    @setting_property
    def BASE_URL(self) -> str:
        """Vendor base URL, without a trailing slash."""
        value = self._raw("BASE_URL")
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise _bad("BASE_URL", "an http(s) URL", value)
        return value.rstrip("/")

    @setting_property
    def API_VERSION(self) -> str:
        """``"v3"`` (default) or ``"v2"`` endpoint family."""
        value = self._raw("API_VERSION")
        if value not in ("v2", "v3"):
            raise _bad("API_VERSION", '"v2" or "v3"', value)
        return value

    @setting_property
    def SANDBOX(self) -> bool:
        """Route every vendor call to the in-process simulator (no network).

        A real ``bool``: ``"False"`` from an environment variable is truthy and would
        turn the simulator on in production, so anything else is refused.
        """
        return self._bool("SANDBOX")

    @setting_property
    def SANDBOX_OPTIONS(self) -> dict[str, Any]:
        """Keyword arguments of the in-process
        :class:`~django_verifynow.sandbox.SandboxEngine`."""
        value = self._raw("SANDBOX_OPTIONS")
        if not isinstance(value, dict):
            raise _bad("SANDBOX_OPTIONS", "a dict", value)
        return value

    @setting_property
    def TIMEOUT(self) -> tuple[float, float]:
        """``(connect, read)`` seconds for every vendor call."""
        value = self._raw("TIMEOUT")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = (value, value)
        try:
            connect, read = (float(v) for v in value)
        except (TypeError, ValueError):
            raise _bad("TIMEOUT", "a (connect, read) pair of seconds", value) from None
        if connect <= 0 or read <= 0:
            raise _bad("TIMEOUT", "positive seconds", value)
        return connect, read

    @setting_property
    def DEADLINE(self) -> float:
        """Seconds one vendor call may take in all: token fetches, retries, back-off
        sleeps and the call itself. Each request's timeouts are cut to the time left.

        Keep it well under the web server's worker timeout (gunicorn ``--timeout``,
        30 s by default): a check (W006) warns above 25 s.
        """
        value = self._raw("DEADLINE")
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < MIN_DEADLINE
        ):
            raise _bad("DEADLINE", f"a number of seconds >= {MIN_DEADLINE}", value)
        return float(value)

    @setting_property
    def CIRCUIT_BREAKER_FAILURES(self) -> int:
        """Consecutive vendor failures that open the circuit breaker."""
        return self._int("CIRCUIT_BREAKER_FAILURES", 1)

    @setting_property
    def CIRCUIT_BREAKER_RESET(self) -> int:
        """Seconds the breaker stays open before one probe call is let through."""
        return self._int("CIRCUIT_BREAKER_RESET", 1)

    # -- codes -------------------------------------------------------------------------
    @setting_property
    def OTP_LENGTH(self) -> int:
        """Digits per code, 4–8 (the vendor's range); a system check warns below 6."""
        return self._int("OTP_LENGTH", 4, 8)

    @setting_property
    def FLOW_TYPE(self) -> str:
        """Default channel, ``"SMS"`` or ``"WHATSAPP"``, when :attr:`CHANNELS` is unset.

        ``FLOW_TYPE = "WHATSAPP"`` is ``CHANNELS = ["WHATSAPP"]``: WhatsApp only, no
        fallback. Set ``CHANNELS`` instead to fall back to SMS.
        """
        value = self._raw("FLOW_TYPE")
        if value not in FLOW_TYPES:
            raise _bad("FLOW_TYPE", " or ".join(FLOW_TYPES), value)
        return value

    @setting_property
    def CHANNELS(self) -> tuple[str, ...]:
        """The channels the site allows, most preferred first (``["WHATSAPP", "SMS"]``).

        The first is the default channel; when VerifyNow refuses a channel as not
        deliverable (a number or an account without WhatsApp), the same send goes out
        on the next one. A requested channel (a user's choice, the API's ``channel``)
        must be in the list; the send then starts there and falls back only to the
        channels listed after it, so a user who picks SMS never gets WhatsApp.

        Unset (``None``), it is ``[FLOW_TYPE]``: one channel, no fallback, as before
        ``CHANNELS`` existed. Set, it wins over ``FLOW_TYPE``. Values are drawn from
        ``"SMS"`` and ``"WHATSAPP"``, each at most once, at least one.
        """
        value = self._raw("CHANNELS")
        if value is None:
            return (self.FLOW_TYPE,)
        expected = (
            f"a non-empty list drawn from {FLOW_TYPES}, each once, "
            'e.g. ["WHATSAPP", "SMS"]'
        )
        if isinstance(value, (str, bytes, dict)) or not _iterable(value):
            raise _bad("CHANNELS", expected, value)
        channels = tuple(value)
        if (
            not channels
            or not all(isinstance(c, str) and c in FLOW_TYPES for c in channels)
            or len(set(channels)) != len(channels)
        ):
            raise _bad("CHANNELS", expected, value)
        return channels

    @setting_property
    def CODE_TTL(self) -> int:
        """Our bound on code life in seconds, capped at 600; expiry is min(vendor,
        this)."""
        return min(self._int("CODE_TTL", 1), MAX_CODE_TTL)

    @setting_property
    def MAX_ATTEMPTS(self) -> int:
        """Wrong codes per attempt before it locks."""
        return self._int("MAX_ATTEMPTS", 1, 100)

    @setting_property
    def PROOF_TTL(self) -> int:
        """Seconds after verification during which the proof may be consumed."""
        return self._int("PROOF_TTL", 1)

    # -- policy ------------------------------------------------------------------------
    @setting_property
    def RATE_LIMITS(self) -> Mapping[str, str]:
        """Rate-limit rules per action, merged over :data:`DEFAULT_RATE_LIMITS`.

        Set an action to ``""`` to disable its limits.
        """
        value = self._raw("RATE_LIMITS")
        if not isinstance(value, dict):
            raise _bad("RATE_LIMITS", 'a dict like {"send": "5/h/phone"}', value)
        # Read-only: the memo hands the same mapping to every caller.
        return MappingProxyType({**DEFAULT_RATE_LIMITS, **value})

    @setting_property
    def RESEND_COOLDOWN(self) -> int:
        """Seconds before the first resend to a phone; doubles with each later send."""
        return self._int("RESEND_COOLDOWN", 0)

    @setting_property
    def RESEND_COOLDOWN_MAX(self) -> int:
        """Ceiling of the growing resend cooldown, in seconds."""
        return self._int("RESEND_COOLDOWN_MAX", 0)

    @setting_property
    def PREFIX_BLOCK_SECONDS(self) -> int:
        """How long a prefix stays blocked after its send rate was exceeded."""
        return self._int("PREFIX_BLOCK_SECONDS", 0)

    @setting_property
    def ALLOWED_COUNTRIES(self) -> frozenset[str] | None:
        """ISO 3166 alpha-2 allow-list, or ``None`` for every country (W004 warns)."""
        value = self._raw("ALLOWED_COUNTRIES")
        if value is None:
            return None
        if (
            isinstance(value, str)
            or not _iterable(value)
            or not all(isinstance(c, str) and len(c) == 2 for c in value)
        ):
            raise _bad(
                "ALLOWED_COUNTRIES", 'a list of ISO codes like ["IN", "GB"]', value
            )
        return frozenset(c.upper() for c in value)

    @setting_property
    def ALLOWED_NUMBER_TYPES(self) -> frozenset[str]:
        """libphonenumber number types accepted (names of ``PhoneNumberType``)."""
        value = self._raw("ALLOWED_NUMBER_TYPES")
        if (
            isinstance(value, str)
            or not _iterable(value)
            or not all(v in NUMBER_TYPES for v in value)
        ):
            raise _bad(
                "ALLOWED_NUMBER_TYPES", f"a list drawn from {NUMBER_TYPES}", value
            )
        return frozenset(value)

    @setting_property
    def DAILY_SEND_CAP(self) -> int | None:
        """Global cap on vendor sends per day, or ``None``."""
        if self._raw("DAILY_SEND_CAP") is None:
            return None
        return self._int("DAILY_SEND_CAP", 1)

    @setting_property
    def RETENTION_DAYS(self) -> int:
        """Days attempts and checks are kept before ``verifynow_purge`` deletes them."""
        return self._int("RETENTION_DAYS", 1)

    @setting_property
    def CACHE(self) -> str:
        """Cache alias for the token, the limits and the circuit breaker."""
        value = self._raw("CACHE")
        if not isinstance(value, str) or value not in settings.CACHES:
            raise _bad(
                "CACHE", f"one of the CACHES aliases {sorted(settings.CACHES)}", value
            )
        return value

    @setting_property
    def TRUSTED_PROXIES(self) -> tuple[IPNetwork, ...]:
        """Networks of the reverse proxies whose ``X-Forwarded-For`` is believed.

        A list of networks in CIDR form or single addresses (``strict=False``: host bits
        are dropped); empty (the default) or ``None`` trusts no proxy. Networks of
        prefix length 0 are refused. When set, :attr:`TRUSTED_PROXY_COUNT` is ignored.
        """
        value = self._raw("TRUSTED_PROXIES")
        if value is None:
            return ()
        if isinstance(value, (str, bytes, dict)) or not _iterable(value):
            # A bare string would be read character by character.
            raise _bad(
                "TRUSTED_PROXIES",
                f"a list of IP networks or addresses like {_PROXIES_EXAMPLE}",
                value,
            )
        entries = list(value)
        for entry in entries:
            if not isinstance(entry, _PROXY_ENTRY_TYPES):
                raise VerifyNowConfigurationError(
                    f'VERIFYNOW["TRUSTED_PROXIES"] entry {entry!r} '
                    f"({type(entry).__name__}) is not an IP network; write networks "
                    f"as strings like {_PROXIES_EXAMPLE}. Fix it in the VERIFYNOW "
                    "dict of your Django settings."
                )
        return _parse_networks(tuple(str(e) for e in entries))

    @setting_property
    def TRUSTED_PROXY_COUNT(self) -> int:
        """Deprecated: how many ``X-Forwarded-For`` entries to trust by hop count.

        Read only while :attr:`TRUSTED_PROXIES` is empty; a check (W007) warns. It
        believes the header whoever connects, so a client that reaches the app directly
        chooses its own address.
        """
        return self._int("TRUSTED_PROXY_COUNT", 0, 10)

    # -- test numbers ------------------------------------------------------------------
    @setting_property
    def TEST_NUMBERS(self) -> Mapping[str, str]:
        """Numbers answered locally with a fixed code, for app-store reviewers and
        automated tests in live mode: ``{"+12015550123": "246810"}``. Empty (the
        default) turns the feature off.

        A send to a listed number goes through every check and limit like any other
        (country, number type, cooldown, rate limits, daily cap) and is recorded as
        usual, but nothing is sent to VerifyNow: the number's code is the fixed one,
        checked here in constant time. Keys are numbers in international format
        (normalised to E.164 once); each code is a string of exactly
        :attr:`OTP_LENGTH` ASCII digits. Every use is logged as a WARNING
        ``test_number_used`` event, and the admin marks those attempts as test
        numbers.

        With ``DEBUG`` off, a system check (E006) refuses to start until
        :attr:`ALLOW_TEST_NUMBERS_IN_PRODUCTION` is set too. See the "Test numbers"
        page.
        """
        value = self._raw("TEST_NUMBERS")
        if value is None:
            return MappingProxyType({})
        if not isinstance(value, Mapping):
            raise VerifyNowConfigurationError(
                'VERIFYNOW["TEST_NUMBERS"] must be a dict of numbers to fixed codes, '
                'like {"+<country code><number>": "<code>"}; got '
                f"{type(value).__name__}. Fix it in the VERIFYNOW dict of your Django "
                "settings."
            )
        return MappingProxyType(_test_numbers(value, self.OTP_LENGTH))

    @setting_property
    def ALLOW_TEST_NUMBERS_IN_PRODUCTION(self) -> bool:
        """The site accepts :attr:`TEST_NUMBERS` while ``DEBUG`` is off: anyone who
        knows a listed number and its code can verify it, within the usual limits.

        Without it, test numbers on a production site are a configuration error
        (E006); with it, a warning (W011) still lists them at every start and
        ``manage.py verifynow_check`` reports them, so they are never forgotten.
        """
        return self._bool("ALLOW_TEST_NUMBERS_IN_PRODUCTION")


#: The settings object used everywhere in the package.
verifynow_settings = VerifyNowSettings()


def _forget_settings(**kwargs: Any) -> None:
    verifynow_settings.clear_cache()


setting_changed.connect(_forget_settings, dispatch_uid="django_verifynow.conf")
