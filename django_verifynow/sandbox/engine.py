"""The VerifyNow simulator's state machine: pure Python, no Django, no I/O.

:class:`SandboxEngine` answers the three vendor calls (token, send, validate) the way
Message Central does as far as its documentation and public integrations show, and
picks a plausible behaviour where the vendor is silent. The same engine sits behind the
in-process ``requests`` adapter (:mod:`.transport`), the WSGI app (:mod:`.wsgi`) and the
threaded HTTP server (:mod:`.server`); those faces only translate requests and faults.

Everything that depends on time reads the injectable clock, so tests move time with
:class:`FakeClock` (or ``time-machine``, which the default clock follows) instead of
sleeping.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from ..codes import ResponseCode

__all__ = [
    "ENDPOINTS",
    "FAULT_KINDS",
    "PROFILES",
    "SANDBOX_CUSTOMER_ID",
    "SANDBOX_PASSWORD",
    "Clock",
    "Fault",
    "FakeClock",
    "OutboxMessage",
    "RecordedRequest",
    "SandboxEngine",
    "SimResponse",
    "SystemClock",
    "http_status_for",
    "mask_number",
]

logger = logging.getLogger("django_verifynow.sandbox")

#: Customer id of the built-in sandbox account (used when no account is configured).
SANDBOX_CUSTOMER_ID = "C-SANDBOX"
#: Password of the built-in sandbox account; the token call sends its Base64 as ``key``.
SANDBOX_PASSWORD = "sandbox"

#: Endpoint names used by faults, the request log and :meth:`SandboxEngine.count`.
ENDPOINTS = ("token", "send", "validate")

#: Fault kinds accepted by :meth:`SandboxEngine.inject_fault`.
FAULT_KINDS = (
    "latency",
    "timeout",
    "http_500",
    "malformed_json",
    "drop_connection",
    "connect_error",
    "response_code",
)
# Faults that replace the vendor's work: the request is refused or answered before the
# state machine sees it. The others let the engine process the request first.
_UNPROCESSED_FAULTS = frozenset(
    {"http_500", "malformed_json", "connect_error", "response_code"}
)

_C = ResponseCode

#: HTTP status per body ``responseCode``, per profile; codes not listed answer HTTP 200.
#: The vendor documents no mapping and public integrations disagree, so a client must
#: decide on the body alone and be tested against every profile.
PROFILES: dict[str, dict[int, int]] = {
    # Best evidence: body errors on HTTP 200, except 506 (seen as HTTP 400), 500, auth.
    "default": {
        _C.REQUEST_ALREADY_EXISTS: 400,
        _C.SERVER_ERROR: 500,
        _C.UNAUTHORIZED: 401,
    },
    # Every client-side code as a 4xx, spread over several statuses on purpose so that a
    # client keying on one status value gets caught.
    "strict-4xx": {
        _C.BAD_REQUEST: 400,
        _C.UNAUTHORIZED: 401,
        _C.DUPLICATE_RESOURCE: 409,
        _C.SERVER_ERROR: 500,
        _C.INVALID_CUSTOMER_ID: 400,
        _C.INVALID_VERIFICATION_ID: 404,
        _C.REQUEST_ALREADY_EXISTS: 409,
        _C.INSUFFICIENT_BALANCE: 402,
        _C.INVALID_COUNTRY_CODE: 400,
        _C.VERIFICATION_FAILED: 400,
        _C.WRONG_OTP_PROVIDED: 400,
        _C.ALREADY_VERIFIED: 409,
        _C.VERIFICATION_EXPIRED: 410,
        _C.MAXIMUM_LIMIT_REACHED: 429,
    },
    # Everything on HTTP 200, auth failures and server errors included.
    "all-200": {},
}

_VALIDATE_POST_MODES = ("405", "accept")
_FLOW_TYPES = ("SMS", "WHATSAPP")
_DEFAULT_TIMEOUT_FAULT_DELAY = 30.0
# A truncated success body: valid JSON up to the cut, so only a real parser notices.
_MALFORMED_BODY = b'{"responseCode":200,"message":"SUCCESS","data":{"verificationId":'


def http_status_for(profile: str, response_code: int) -> int:
    """Return the HTTP status that ``profile`` gives a body ``response_code``."""
    return PROFILES[profile].get(int(response_code), 200)


def mask_number(country_code: str, mobile_number: str) -> str:
    """Mask a number for logs: calling code and last 2 digits (``+91******10``)."""
    hidden = max(len(mobile_number) - 2, 0)
    return f"+{country_code}{'*' * hidden}{mobile_number[-2:]}"


# -- clocks ----------------------------------------------------------------------------


class Clock(Protocol):
    """Anything with a ``now()`` returning epoch seconds."""

    def now(self) -> float:
        """Return the current time as epoch seconds."""


class SystemClock:
    """The real clock: reads :func:`time.time` per call (``time-machine`` moves it)."""

    def now(self) -> float:
        """Return :func:`time.time`."""
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock that only moves when told to; thread-safe."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        """Return the current fake time."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (not backwards) and return the new time."""
        if seconds < 0:
            raise ValueError("FakeClock.advance() only moves forward.")
        with self._lock:
            self._now += float(seconds)
            return self._now

    def set(self, epoch_seconds: float) -> None:
        """Jump to ``epoch_seconds`` (either direction)."""
        with self._lock:
            self._now = float(epoch_seconds)

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"


class _CallableClock:
    """Adapts a zero-argument callable (``time.time``-like) to :class:`Clock`."""

    def __init__(self, func: Callable[[], float]) -> None:
        self._func = func

    def now(self) -> float:
        return float(self._func())


# -- records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SimResponse:
    """The engine's answer to one request.

    ``body`` is a JSON-able dict, or raw bytes (a malformed answer). ``fault`` tells the
    transport how to deliver it: ``None`` (normally), ``"latency"`` (after ``delay``
    seconds), ``"timeout"`` (processed, but the answer comes only after ``delay``
    seconds, i.e. too late), ``"drop_connection"`` (processed, then the connection is
    closed without an answer) or ``"connect_error"`` (refused, nothing processed;
    ``status`` is 0).
    """

    status: int
    body: dict[str, Any] | bytes
    fault: str | None = None
    delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def content(self) -> bytes:
        """The body as bytes (compact JSON for dict bodies)."""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode()

    @property
    def content_type(self) -> str:
        """``Content-Type`` to send with :attr:`content`."""
        return "application/json"

    def json(self) -> Any:
        """The decoded body (raises ``ValueError`` for a malformed one)."""
        return json.loads(self.content)


@dataclass(frozen=True)
class OutboxMessage:
    """One message the sandbox "delivered" (``code`` is ``None`` for MessageNow)."""

    customer_id: str
    country_code: str
    mobile_number: str
    code: str | None
    verification_id: str | None
    flow_type: str
    sent_at: float
    text: str | None = None

    @property
    def e164(self) -> str:
        """The recipient as E.164 (``+`` calling code and national number)."""
        return f"+{self.country_code}{self.mobile_number}"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the fields."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the engine saw it (header names lower-cased).

    ``endpoint`` is ``"token"``, ``"send"``, ``"validate"`` or ``"other"``; ``fault``
    the injected fault it met, if any. Query and form stay separate so tests can check
    where a client put its parameters.
    """

    endpoint: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)
    fault: str | None = None

    @property
    def params(self) -> dict[str, str]:
        """Form and query parameters merged (the query wins), as the engine reads."""
        return {**self.form, **self.query}

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the fields."""
        return dataclasses.asdict(self)


@dataclass
class Fault:
    """A pending injected fault (see :meth:`SandboxEngine.inject_fault`)."""

    kind: str
    endpoint: str = "any"
    times: int | None = 1
    delay: float | None = None
    code: int | None = None

    def matches(self, endpoint: str) -> bool:
        """Whether this fault applies to a request for ``endpoint``."""
        return endpoint in ENDPOINTS and self.endpoint in ("any", endpoint)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the fields."""
        return dataclasses.asdict(self)


@dataclass
class _Verification:
    id: int
    customer_id: str
    country_code: str
    mobile_number: str
    code: str
    flow_type: str
    created_at: float
    expires_at: float
    transaction_id: str
    attempts: int = 0
    locked: bool = False
    verified_at: float | None = None

    def state(self, now: float) -> str:
        if self.verified_at is not None:
            return "verified"
        if self.locked:
            return "locked"
        if now >= self.expires_at:
            return "expired"
        return "pending"

    def is_live(self, now: float) -> bool:
        # Live: unexpired and unverified, a locked one included (the vendor does not
        # say; this is the simulator's choice).
        return self.verified_at is None and now < self.expires_at


AccountsArg = Mapping[str, str] | Iterable[tuple[str, str]] | None
ClockArg = Clock | Callable[[], float] | None


# -- helpers ---------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _is_digits(value: str, lo: int, hi: int) -> bool:
    return value.isascii() and value.isdigit() and lo <= len(value) <= hi


def _check_int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {value!r}.")
    return value


def _spring_error(status: int, error: str, path: str, now: float) -> dict[str, Any]:
    # What a Spring Boot service answers for routing errors (404, 405): no envelope.
    stamp = datetime.fromtimestamp(now, tz=timezone.utc).isoformat(
        timespec="milliseconds"
    )
    return {"timestamp": stamp, "status": status, "error": error, "path": path}


_ROUTES: dict[str, tuple[str, str]] = {
    "/auth/v1/authentication/token": ("token", "v3"),
    "/verification/v3/send": ("send", "v3"),
    "/verification/v3/validateOtp": ("validate", "v3"),
    "/verification/v2/verification/send": ("send", "v2"),
    "/verification/v2/verification/validateOtp": ("validate", "v2"),
}
_ALLOWED_METHODS = {"token": "GET", "send": "POST", "validate": "GET"}


def route_for(path: str) -> tuple[str, str] | None:
    """``(endpoint, api_version)`` of a vendor path (trailing slash ok), or None."""
    path = path.split("?", 1)[0]
    normalised = path.rstrip("/") or "/"
    return _ROUTES.get(normalised)


# -- the engine ------------------------------------------------------------------------


class SandboxEngine:
    """A faithful, thread-safe VerifyNow simulator.

    :param clock: object with ``now()`` (epoch seconds) or a zero-argument callable;
        default :class:`SystemClock`.
    :param profile: HTTP-status profile, a key of :data:`PROFILES`.
    :param accounts: ``{customer_id: password}`` or ``(customer_id, password)`` pairs;
        default the sandbox account (:data:`SANDBOX_CUSTOMER_ID`,
        :data:`SANDBOX_PASSWORD`).
    :param otp_timeout: seconds a code stays valid (the vendor allows 20-300; any
        positive value is accepted here so tests can use short ones).
    :param max_attempts: wrong codes per verification; the last one locks it (later
        validates answer 800).
    :param sends_per_window: new codes per number within ``send_window`` seconds before
        sends answer 800.
    :param token_ttl: lifetime of issued tokens (default 5 years, as observed).
    :param fixed_code: use this code for every send instead of random digits.
    :param country_codes: allow-list of calling codes (``["91", "44"]``); ``None``
        allows every 1-4 digit code. Others answer 511.
    :param credits: sends per account before 508; ``None`` is unlimited.
    :param validate_post: ``"405"`` (a POST to validateOtp gets HTTP 405) or
        ``"accept"``.
    :param flow_types: accepted ``flowType`` values (``RCS``/``SAUTH`` answer 400
        unless listed here). ``["SMS"]`` is an account without the WhatsApp channel:
        its WhatsApp sends answer 400 BAD_REQUEST.
    :param no_whatsapp: numbers that are not on WhatsApp (``"+919876543210"`` or the
        digits ``"919876543210"``): a WhatsApp send to one answers 400 BAD_REQUEST,
        sends nothing and costs no credit; SMS works. The vendor documents no answer
        for either case; 400 is the assumption the client's fallback to another
        channel is built on (``client.results.refuses_channel``).
    :param announce: called with the one-line notice of each delivered code (masked
        number, code); default: logged at INFO on ``django_verifynow.sandbox``.
    """

    # The settings: set by configure(), which the constructor calls with every key.
    profile: str
    otp_timeout: int
    max_attempts: int
    sends_per_window: int
    send_window: int
    token_ttl: int
    fixed_code: str | None
    country_codes: frozenset[str] | None
    validate_post: str
    flow_types: tuple[str, ...]
    no_whatsapp: frozenset[str]

    def __init__(
        self,
        *,
        clock: ClockArg = None,
        profile: str = "default",
        accounts: AccountsArg = None,
        otp_timeout: int = 60,
        max_attempts: int = 5,
        sends_per_window: int = 5,
        send_window: int = 3600,
        token_ttl: int = 157_680_000,
        fixed_code: str | None = None,
        country_codes: Iterable[str | int] | None = None,
        credits: int | None = None,
        validate_post: str = "405",
        flow_types: Iterable[str] = _FLOW_TYPES,
        no_whatsapp: Iterable[str] = (),
        announce: Callable[[str], None] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self.announce: Callable[[str], None] = announce or logger.info
        if clock is None:
            clock = SystemClock()
        elif not hasattr(clock, "now") and callable(clock):
            clock = _CallableClock(clock)
        self.clock: Clock = clock  # type: ignore[assignment]
        self._accounts: dict[str, str] = {}
        self._credits: int | None = None
        self._balance: dict[str, int] = {}
        self.configure(
            profile=profile,
            accounts=accounts,
            otp_timeout=otp_timeout,
            max_attempts=max_attempts,
            sends_per_window=sends_per_window,
            send_window=send_window,
            token_ttl=token_ttl,
            fixed_code=fixed_code,
            country_codes=country_codes,
            credits=credits,
            validate_post=validate_post,
            flow_types=flow_types,
            no_whatsapp=no_whatsapp,
        )
        # Ids look like the vendor's 7-8 digit ones and never repeat, even over reset().
        self._next_id = 1_000_000
        self._clear_state()

    # -- configuration -----------------------------------------------------------------
    def configure(self, **options: Any) -> None:
        """Change settings at run time; keys as in the constructor (``clock`` excluded).

        ``credits`` refills every account's balance; ``accounts`` replaces the
        accounts. Raises ``ValueError`` (``TypeError`` for an unknown key) and then
        changes nothing.
        """
        unknown = set(options) - {
            "profile", "accounts", "otp_timeout", "max_attempts", "sends_per_window",
            "send_window", "token_ttl", "fixed_code", "country_codes", "credits",
            "validate_post", "flow_types", "no_whatsapp",
        }  # fmt: skip
        if unknown:
            raise TypeError(f"Unknown sandbox option(s): {', '.join(sorted(unknown))}.")
        new: dict[str, Any] = {}
        if "profile" in options:
            if options["profile"] not in PROFILES:
                raise ValueError(
                    f"Unknown profile {options['profile']!r}; "
                    f"use one of {sorted(PROFILES)}."
                )
            new["profile"] = options["profile"]
        for name, lo in (
            ("otp_timeout", 1),
            ("max_attempts", 1),
            ("sends_per_window", 1),
            ("send_window", 1),
            ("token_ttl", 1),
        ):
            if name in options:
                new[name] = _check_int(name, options[name], lo)
        if "fixed_code" in options:
            code = options["fixed_code"]
            if code is not None:
                code = str(code)
                if not _is_digits(code, 1, 12):
                    raise ValueError("fixed_code must be a string of digits.")
            new["fixed_code"] = code
        if "country_codes" in options:
            codes = options["country_codes"]
            if codes is not None:
                if isinstance(codes, (str, int)):
                    codes = [codes]
                codes = frozenset(str(c).lstrip("+") for c in codes)
                if not all(_is_digits(c, 1, 4) for c in codes):
                    raise ValueError(
                        "country_codes must be calling codes of 1-4 digits."
                    )
            new["country_codes"] = codes
        if "credits" in options and options["credits"] is not None:
            _check_int("credits", options["credits"], 0)
        if "validate_post" in options:
            if str(options["validate_post"]) not in _VALIDATE_POST_MODES:
                raise ValueError(
                    f"validate_post must be one of {_VALIDATE_POST_MODES}."
                )
            new["validate_post"] = str(options["validate_post"])
        if "flow_types" in options:
            new["flow_types"] = tuple(str(f) for f in options["flow_types"])
        if "no_whatsapp" in options:
            numbers = options["no_whatsapp"]
            if isinstance(numbers, str):
                numbers = [numbers]
            digits = frozenset(str(n).strip().lstrip("+") for n in numbers)
            if not all(_is_digits(d, 7, 18) for d in digits):
                raise ValueError(
                    "no_whatsapp must list phone numbers in E.164 (+ and digits)."
                )
            new["no_whatsapp"] = digits
        accounts: dict[str, str] | None = None
        if "accounts" in options:
            accounts = self._parse_accounts(options["accounts"])
        with self._lock:
            for name, value in new.items():
                setattr(self, name, value)
            if accounts is not None:
                self._accounts = accounts
            if "credits" in options:
                self._credits = options["credits"]
            if accounts is not None or "credits" in options:
                self._refill()

    @staticmethod
    def _parse_accounts(accounts: AccountsArg) -> dict[str, str]:
        if accounts is None:
            return {SANDBOX_CUSTOMER_ID: SANDBOX_PASSWORD}
        pairs = accounts.items() if isinstance(accounts, Mapping) else accounts
        result = {}
        for pair in pairs:
            customer_id, password = pair
            if not customer_id or not password:
                raise ValueError(
                    "Every sandbox account needs a customer id and a password."
                )
            result[str(customer_id)] = str(password)
        if not result:
            raise ValueError("The sandbox needs at least one account.")
        return result

    def _refill(self) -> None:
        self._balance = (
            {} if self._credits is None else {c: self._credits for c in self._accounts}
        )

    def set_profile(self, name: str) -> None:
        """Switch the HTTP-status profile (a key of :data:`PROFILES`)."""
        self.configure(profile=name)

    def config(self) -> dict[str, Any]:
        """The current settings as a JSON-able dict (passwords left out)."""
        with self._lock:
            return {
                "profile": self.profile,
                "customer_ids": sorted(self._accounts),
                "otp_timeout": self.otp_timeout,
                "max_attempts": self.max_attempts,
                "sends_per_window": self.sends_per_window,
                "send_window": self.send_window,
                "token_ttl": self.token_ttl,
                "fixed_code": self.fixed_code,
                "country_codes": (
                    None if self.country_codes is None else sorted(self.country_codes)
                ),
                "credits": self._credits,
                "balance": dict(self._balance) if self._credits is not None else None,
                "validate_post": self.validate_post,
                "flow_types": list(self.flow_types),
                "no_whatsapp": sorted(f"+{d}" for d in self.no_whatsapp),
                "fake_clock": isinstance(self.clock, FakeClock),
            }

    # -- state -------------------------------------------------------------------------
    def _clear_state(self) -> None:
        self._verifications: dict[int, _Verification] = {}
        self._outbox: list[OutboxMessage] = []
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._send_times: dict[tuple[str, str, str], list[float]] = {}
        self._token_seq = 0
        self._issued: dict[str, int] = {}
        self._revoked_seq = 0
        self._revoked_at: float | None = None
        self._refill()

    def reset(self) -> None:
        """Forget every verification, message, request, fault, revocation and spent
        credit. Settings (profile, accounts, limits, clock) are kept."""
        with self._lock:
            self._clear_state()

    def revoke_tokens(self) -> None:
        """Make every token issued so far answer 401 (a new token call still works)."""
        with self._lock:
            self._revoked_seq = self._token_seq
            self._revoked_at = self.clock.now()

    def expire(self, verification_id: int | str) -> None:
        """End the validity window of a verification now (later validates answer 705).

        Raises ``KeyError`` for an unknown id.
        """
        with self._lock:
            v = self._verifications[int(verification_id)]
            v.expires_at = min(v.expires_at, self.clock.now())

    def verification(self, verification_id: int | str) -> dict[str, Any] | None:
        """A JSON-able snapshot of one verification (code included), or ``None``."""
        try:
            key = int(verification_id)
        except (TypeError, ValueError):
            return None
        with self._lock:
            v = self._verifications.get(key)
            if v is None:
                return None
            now = self.clock.now()
            snap = dataclasses.asdict(v)
            snap["id"] = str(v.id)
            snap["state"] = v.state(now)
            snap["remaining"] = max(0, math.ceil(v.expires_at - now))
            return snap

    @property
    def outbox(self) -> list[OutboxMessage]:
        """Every delivered message, oldest first (a copy)."""
        with self._lock:
            return list(self._outbox)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request the engine received, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def count(self, endpoint: str | None = None) -> int:
        """Requests that reached ``endpoint`` (``None``: all), faulted ones included."""
        with self._lock:
            if endpoint is None:
                return len(self._requests)
            return sum(1 for r in self._requests if r.endpoint == endpoint)

    def messages_to(self, e164: str) -> list[OutboxMessage]:
        """Messages whose calling code + national number are the digits of ``e164``."""
        digits = "".join(ch for ch in e164 if ch.isdigit())
        with self._lock:
            return [
                m for m in self._outbox if m.country_code + m.mobile_number == digits
            ]

    def codes_for(self, country_code: str | int, mobile_number: str) -> list[str]:
        """Codes delivered to one number, oldest first."""
        cc = str(country_code).lstrip("+")
        with self._lock:
            return [
                m.code
                for m in self._outbox
                if m.code is not None
                and m.country_code == cc
                and m.mobile_number == mobile_number
            ]

    def last_code(self, country_code: str | int, mobile_number: str) -> str | None:
        """The latest code delivered to one number, or ``None``."""
        codes = self.codes_for(country_code, mobile_number)
        return codes[-1] if codes else None

    # -- faults ------------------------------------------------------------------------
    def inject_fault(
        self,
        kind: str,
        *,
        endpoint: str = "any",
        times: int | None = 1,
        delay: float | None = None,
        code: int | None = None,
    ) -> Fault:
        """Make the next ``times`` requests to ``endpoint`` fail with ``kind``.

        ``endpoint`` is ``"any"``, ``"token"``, ``"send"`` or ``"validate"``;
        ``times=None`` keeps the fault until :meth:`clear_faults` or :meth:`reset`.
        Faults are used in the order injected, one per request. Kinds:

        - ``"latency"`` (needs ``delay``): answers normally after the delay;
        - ``"timeout"``: processes the request, answers only after ``delay`` (default
          30 s), i.e. too late for the client;
        - ``"drop_connection"``: processes, then closes without an answer;
        - ``"http_500"``, ``"malformed_json"``, ``"response_code"`` (needs ``code``;
          that body code with the profile's HTTP status): answer without processing;
        - ``"connect_error"``: refused before anything is processed.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"Unknown fault kind {kind!r}; use one of {FAULT_KINDS}.")
        if endpoint not in ("any", *ENDPOINTS):
            raise ValueError(
                f"Unknown endpoint {endpoint!r}; use any, token, send, validate."
            )
        if times is not None:
            _check_int("times", times, 1)
        if delay is not None:
            if (
                isinstance(delay, bool)
                or not isinstance(delay, (int, float))
                or delay < 0
            ):
                raise ValueError("delay must be a number of seconds >= 0.")
            delay = float(delay)
        if kind == "latency" and delay is None:
            raise ValueError('A "latency" fault needs a delay.')
        if kind == "response_code":
            if code is None:
                raise ValueError('A "response_code" fault needs a code.')
            code = _check_int("code", code, 0)
        fault = Fault(kind=kind, endpoint=endpoint, times=times, delay=delay, code=code)
        with self._lock:
            self._faults.append(fault)
        return dataclasses.replace(fault)

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> list[Fault]:
        """Faults not used up yet (copies)."""
        with self._lock:
            return [dataclasses.replace(f) for f in self._faults]

    def _take_fault(self, endpoint: str) -> Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.matches(endpoint):
                taken = dataclasses.replace(fault)
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._faults[index]
                return taken
        return None

    # -- tokens ------------------------------------------------------------------------
    @staticmethod
    def _secret(customer_id: str, password: str) -> bytes:
        # Derived, not random: tokens survive a new engine with the same account (the
        # client caches them across tests) but die when the password changes.
        material = f"django-verifynow-sandbox:{customer_id}:{password}".encode()
        return hashlib.sha512(material).digest()

    def issue_token(self, customer_id: str | None = None) -> str:
        """Issue a valid token without a token request (for tests)."""
        with self._lock:
            customer_id = customer_id or next(iter(self._accounts))
            return self._issue(customer_id)

    def _issue(self, customer_id: str) -> str:
        iat = int(self.clock.now())
        header = _b64url(b'{"alg":"HS512"}')
        payload = json.dumps(
            {"sub": customer_id, "iat": iat, "exp": iat + self.token_ttl},
            separators=(",", ":"),
        ).encode()
        signing_input = f"{header}.{_b64url(payload)}"
        secret = self._secret(customer_id, self._accounts[customer_id])
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha512).digest()
        token = f"{signing_input}.{_b64url(signature)}"
        self._token_seq += 1
        self._issued[token] = self._token_seq
        return token

    def _authenticate(self, token: str | None) -> str | None:
        """The token's customer id, or None when missing, bad, expired or revoked."""
        if not token:
            return None
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except (ValueError, UnicodeError):
            return None
        if not isinstance(header, dict) or header.get("alg") != "HS512":
            return None
        if not isinstance(claims, dict):
            return None
        customer_id = claims.get("sub")
        if not isinstance(customer_id, str):
            return None
        password = self._accounts.get(customer_id)
        if password is None:
            return None
        expected = hmac.new(
            self._secret(customer_id, password),
            f"{parts[0]}.{parts[1]}".encode(),
            hashlib.sha512,
        ).digest()
        if not hmac.compare_digest(expected, signature):
            return None
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int) or not isinstance(iat, int):
            return None
        if self.clock.now() >= exp:
            return None
        if self._revoked_at is not None:
            seq = self._issued.get(token)
            if seq is not None:
                # Issued here: revoked unless re-issued after the revocation (an
                # identical token string can come back within the same second).
                if seq <= self._revoked_seq:
                    return None
            elif iat <= self._revoked_at:
                return None  # issued by an earlier engine before the revocation
        return customer_id

    # -- request handling --------------------------------------------------------------
    def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> SimResponse:
        """Answer one request. ``path`` without the query string; ``query`` and ``form``
        are single-valued parameter maps (either may carry any parameter; the query wins
        on a clash); header names are case-insensitive."""
        method = method.upper()
        path = path.split("?", 1)[0] or "/"
        query_d = {str(k): str(v) for k, v in (query or {}).items()}
        form_d = {str(k): str(v) for k, v in (form or {}).items()}
        headers_d = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
        route = route_for(path)
        endpoint = route[0] if route else "other"
        with self._lock:
            fault = self._take_fault(endpoint)
            self._requests.append(
                RecordedRequest(
                    endpoint=endpoint,
                    method=method,
                    path=path,
                    query=query_d,
                    headers=headers_d,
                    form=form_d,
                    fault=fault.kind if fault else None,
                )
            )
            if fault is not None and fault.kind in _UNPROCESSED_FAULTS:
                return self._fault_answer(fault, endpoint)
            response = self._dispatch(
                route, method, path, {**form_d, **query_d}, headers_d
            )
            if fault is None:
                return response
            if fault.kind == "timeout":
                delay = (
                    _DEFAULT_TIMEOUT_FAULT_DELAY if fault.delay is None else fault.delay
                )
            else:
                delay = fault.delay or 0.0
            return dataclasses.replace(response, fault=fault.kind, delay=delay)

    def _fault_answer(self, fault: Fault, endpoint: str) -> SimResponse:
        if fault.kind == "connect_error":
            return SimResponse(status=0, body=b"", fault="connect_error")
        delay = fault.delay or 0.0
        if fault.kind == "malformed_json":
            return SimResponse(status=200, body=_MALFORMED_BODY, delay=delay)
        if fault.kind == "http_500":
            return SimResponse(
                status=500, body=self._envelope(_C.SERVER_ERROR), delay=delay
            )
        code = int(fault.code or 0)
        if endpoint == "token":
            body = {"status": code, "error": ResponseCode.name_of(code)}
        else:
            body = self._envelope(code)
        return SimResponse(status=self._status(code), body=body, delay=delay)

    def _dispatch(
        self,
        route: tuple[str, str] | None,
        method: str,
        path: str,
        params: dict[str, str],
        headers: dict[str, str],
    ) -> SimResponse:
        now = self.clock.now()
        if route is None:
            return SimResponse(404, _spring_error(404, "Not Found", path, now))
        endpoint, version = route
        allowed = _ALLOWED_METHODS[endpoint]
        post_ok = endpoint == "validate" and self.validate_post == "accept"
        if method != allowed and not (post_ok and method == "POST"):
            return SimResponse(
                405,
                _spring_error(405, "Method Not Allowed", path, now),
                headers={"Allow": allowed},
            )
        if endpoint == "token":
            return self._token(params)
        customer_id = self._authenticate(headers.get("authtoken"))
        if customer_id is None:
            return self._answer(_C.UNAUTHORIZED)
        if endpoint == "send":
            return self._send(customer_id, version, params)
        return self._validate(customer_id, version, params, headers)

    def _status(self, code: int) -> int:
        return http_status_for(self.profile, code)

    @staticmethod
    def _envelope(code: int, data: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "responseCode": int(code),
            "message": ResponseCode.name_of(code),
            "data": data,
        }

    def _answer(self, code: int, data: dict[str, Any] | None = None) -> SimResponse:
        return SimResponse(self._status(code), self._envelope(code, data))

    def _token(self, params: dict[str, str]) -> SimResponse:
        customer_id = params.get("customerId", "")
        password = self._accounts.get(customer_id)
        if password is None:
            return self._token_error("customerId is invalid")
        expected = base64.b64encode(password.encode()).decode("ascii")
        if not hmac.compare_digest(params.get("key", "").encode(), expected.encode()):
            return self._token_error("password is wrong")
        return SimResponse(200, {"status": 200, "token": self._issue(customer_id)})

    def _token_error(self, error: str) -> SimResponse:
        # Public integrations see HTTP 200 with an in-body status; strict-4xx makes it
        # a 400.
        return SimResponse(
            self._status(_C.BAD_REQUEST), {"status": 400, "error": error}
        )

    def _customer_problem(
        self, customer_id: str, version: str, params: dict[str, str]
    ) -> int | None:
        given = params.get("customerId")
        if not given:
            # v2 documents customerId as required; v3 does not list it.
            return _C.BAD_REQUEST if version == "v2" else None
        return _C.INVALID_CUSTOMER_ID if given != customer_id else None

    def _send(
        self, customer_id: str, version: str, params: dict[str, str]
    ) -> SimResponse:
        now = self.clock.now()
        country_code = params.get("countryCode", "")
        mobile = params.get("mobileNumber", "")
        flow_type = params.get("flowType", "")
        if not (country_code and mobile and flow_type):
            return self._answer(_C.BAD_REQUEST)
        problem = self._customer_problem(customer_id, version, params)
        if problem is not None:
            return self._answer(problem)
        if not _is_digits(country_code, 1, 4) or (
            self.country_codes is not None and country_code not in self.country_codes
        ):
            return self._answer(_C.INVALID_COUNTRY_CODE)
        if not _is_digits(mobile, 6, 14) or flow_type not in self.flow_types:
            return self._answer(_C.BAD_REQUEST)
        if flow_type == "WHATSAPP" and (
            # v2 documents flowType as "SMS only for now".
            version == "v2" or country_code + mobile in self.no_whatsapp
        ):
            # Not deliverable on this channel: refused before any work (assumed).
            return self._answer(_C.BAD_REQUEST)
        otp_length_raw = params.get("otpLength", "") or "4"
        if not _is_digits(otp_length_raw, 1, 2) or not 4 <= int(otp_length_raw) <= 8:
            return self._answer(_C.BAD_REQUEST)
        kind = params.get("type", "") or "OTP"
        if kind == "SMS" and params.get("message"):
            return self._message_now(
                customer_id, country_code, mobile, flow_type, params
            )
        if kind != "OTP":
            return self._answer(_C.BAD_REQUEST)

        for v in self._verifications.values():
            if (
                v.customer_id == customer_id
                and v.country_code == country_code
                and v.mobile_number == mobile
                and v.is_live(now)
            ):
                # No new code: the caller reuses the pending id and its remaining time.
                remaining = max(1, math.ceil(v.expires_at - now))
                return self._answer(
                    _C.REQUEST_ALREADY_EXISTS,
                    self._send_data(v, "506", str(remaining), "REQUEST_ALREADY_EXISTS"),
                )
        window_key = (customer_id, country_code, mobile)
        recent = [
            t
            for t in self._send_times.get(window_key, [])
            if t > now - self.send_window
        ]
        self._send_times[window_key] = recent
        if len(recent) >= self.sends_per_window:
            return self._answer(_C.MAXIMUM_LIMIT_REACHED)
        if not self._charge(customer_id):
            return self._answer(_C.INSUFFICIENT_BALANCE)

        length = int(otp_length_raw)
        code = self.fixed_code or "".join(
            secrets.choice("0123456789") for _ in range(length)
        )
        verification = _Verification(
            id=self._next_id,
            customer_id=customer_id,
            country_code=country_code,
            mobile_number=mobile,
            code=code,
            flow_type=flow_type,
            created_at=now,
            expires_at=now + self.otp_timeout,
            transaction_id=str(uuid.uuid4()),
        )
        self._next_id += 1
        self._verifications[verification.id] = verification
        recent.append(now)
        self._deliver(
            OutboxMessage(
                customer_id=customer_id,
                country_code=country_code,
                mobile_number=mobile,
                code=code,
                verification_id=str(verification.id),
                flow_type=flow_type,
                sent_at=now,
            )
        )
        return self._answer(
            _C.SUCCESS,
            self._send_data(verification, "200", str(self.otp_timeout), None),
        )

    @staticmethod
    def _send_data(
        v: _Verification, response_code: str, timeout: str, error: str | None
    ) -> dict[str, Any]:
        # Field for field as the vendor's v3 send answer: the id is a string here.
        return {
            "verificationId": str(v.id),
            "mobileNumber": v.mobile_number,
            "responseCode": response_code,
            "errorMessage": error,
            "timeout": timeout,
            "smsCLI": None,
            "transactionId": v.transaction_id,
        }

    def _charge(self, customer_id: str) -> bool:
        if self._credits is None:
            return True
        left = self._balance.get(customer_id, 0)
        if left <= 0:
            return False
        self._balance[customer_id] = left - 1
        return True

    def _message_now(
        self,
        customer_id: str,
        country_code: str,
        mobile: str,
        flow_type: str,
        params: dict[str, str],
    ) -> SimResponse:
        # MessageNow (own text, no OTP): record and charge, nothing to validate later.
        if not self._charge(customer_id):
            return self._answer(_C.INSUFFICIENT_BALANCE)
        transaction_id = str(uuid.uuid4())
        self._outbox.append(
            OutboxMessage(
                customer_id=customer_id,
                country_code=country_code,
                mobile_number=mobile,
                code=None,
                verification_id=None,
                flow_type=flow_type,
                sent_at=self.clock.now(),
                text=params["message"],
            )
        )
        data = {
            "verificationId": None,
            "mobileNumber": mobile,
            "responseCode": "200",
            "errorMessage": None,
            "timeout": "30.0",
            "smsCLI": None,
            "transactionId": transaction_id,
        }
        return self._answer(_C.SUCCESS, data)

    def _deliver(self, message: OutboxMessage) -> None:
        self._outbox.append(message)
        # A development tool: showing the code is its purpose. The number stays masked.
        self.announce(
            f"VerifyNow sandbox: {message.flow_type} code {message.code} for "
            f"{mask_number(message.country_code, message.mobile_number)} "
            f"(verification {message.verification_id}, valid {self.otp_timeout}s)"
        )

    def _validate(
        self,
        customer_id: str,
        version: str,
        params: dict[str, str],
        headers: dict[str, str],
    ) -> SimResponse:
        now = self.clock.now()
        raw_id = params.get("verificationId", "")
        code = params.get("code", "")
        if not raw_id or not code or not _is_digits(raw_id, 1, 18):
            return self._answer(_C.BAD_REQUEST)
        problem = self._customer_problem(customer_id, version, params)
        if problem is not None:
            return self._answer(problem)
        v = self._verifications.get(int(raw_id))
        if v is None or v.customer_id != customer_id:
            return self._answer(_C.INVALID_VERIFICATION_ID)
        if v.verified_at is not None:
            return self._answer(_C.ALREADY_VERIFIED)
        if v.locked:
            return self._answer(_C.MAXIMUM_LIMIT_REACHED)
        if now >= v.expires_at:
            return self._answer(_C.VERIFICATION_EXPIRED)
        if not hmac.compare_digest(code.encode(), v.code.encode()):
            v.attempts += 1
            if v.attempts >= self.max_attempts:
                v.locked = True
            return self._answer(_C.WRONG_OTP_PROVIDED)
        v.verified_at = now
        data = {
            # A JSON number here, as the vendor's validate answer has it (send gives a
            # string).
            "verificationId": v.id,
            "mobileNumber": v.mobile_number,
            "responseCode": "200",
            "errorMessage": None,
            "verificationStatus": "VERIFICATION_COMPLETED",
            # v3 answers null; the v2 example carried a JWT here.
            "authToken": headers.get("authtoken") if version == "v2" else None,
            "transactionId": v.transaction_id,
        }
        return self._answer(_C.SUCCESS, data)

    def __repr__(self) -> str:
        return f"<SandboxEngine profile={self.profile!r} clock={self.clock!r}>"
