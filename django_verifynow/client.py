"""The VerifyNow wire protocol: token, send, validate.

This module is the only place that talks to Message Central (or to the sandbox, which
speaks the same protocol). It knows nothing of models or policy: it turns a call into
HTTP, and the vendor's answer into a :class:`SendResult`, a :class:`ValidateResult` or an
exception from :mod:`django_verifynow.exceptions`.

Vendor quirks handled here (see ``verifynow-api.md``):

* Parameters travel in the query string, the body is empty; ``key`` is the Base64 of the
  password, URL-encoded (``requests`` encodes ``+ / =``).
* The outcome is in the body's ``responseCode`` whatever the HTTP status: errors arrive as
  HTTP 200 or 4xx depending on the code. We parse JSON on every status and decide on the
  body (:func:`django_verifynow.codes.outcome_for`); the status only tells us about
  transport-level faults (5xx without a usable body, 401/403).
* Token errors arrive as HTTP 200 with ``{"status": 400, "error": "..."}``.
* ``verificationId`` is a string in send answers and a number in validate answers;
  ``timeout`` is ``"60"`` or ``"60.0"``; ``data`` is ``null`` on failures.
* 506 (a code is already pending) carries the pending ``verificationId`` to reuse.

Secrets: the password's ``key``, the token and the user's code all travel in URLs or
headers. ``requests`` and ``urllib3`` put full URLs in exception messages and debug logs,
so no ``requests`` exception ever escapes or is chained from here, and urllib3's
connection-pool logger gets a redacting filter (R37).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from django.core.cache import caches
from requests.adapters import HTTPAdapter

from . import __version__
from .codes import Call, Outcome, ResponseCode, outcome_for
from .conf import verifynow_settings
from .exceptions import (
    ProviderAuthError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)

__all__ = ["SendResult", "ValidateResult", "VerifyNowClient", "get_client"]

logger = logging.getLogger(__name__)

#: Patched by tests (and time-machine moves it): seconds since the epoch.
_now: Callable[[], float] = time.time
#: Patched by tests so retry back-off does not slow the suite down.
_sleep: Callable[[float], None] = time.sleep

TOKEN_PATH = "/auth/v1/authentication/token"
PATHS = {
    "v3": {"send": "/verification/v3/send", "validate": "/verification/v3/validateOtp"},
    "v2": {
        "send": "/verification/v2/verification/send",
        "validate": "/verification/v2/verification/validateOtp",
    },
}

#: Refresh a cached token this long before the ``exp`` in its JWT (R34).
TOKEN_EXPIRY_MARGIN = 60
#: Cache lifetime of a token whose expiry cannot be read.
TOKEN_DEFAULT_TTL = 3600
#: Token fetch retry policy (R32): attempts, back-off base, largest Retry-After honoured.
TOKEN_ATTEMPTS = 3
TOKEN_BACKOFF = 0.5
TOKEN_MAX_RETRY_AFTER = 5
TOKEN_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: How long a refresh may hold the cross-process token lock.
TOKEN_LOCK_TIMEOUT = 15
#: Retry-After suggested when the vendor's own limit (800) is hit.
PROVIDER_LIMIT_RETRY_AFTER = 300


# -- redaction ------------------------------------------------------------------------

_QUERY_RE = re.compile(r"\?[^\s\"']*")


def redact(text: str) -> str:
    """Remove every query string from ``text`` (``?key=…&code=…`` → ``?<redacted>``)."""
    return _QUERY_RE.sub("?<redacted>", text)


class RedactQueryStringFilter(logging.Filter):
    """Logging filter that strips query strings from a record's message and args.

    Installed on ``urllib3.connectionpool``, whose DEBUG lines carry the full request
    line, token ``key`` and user ``code`` included.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


_urllib3_logger = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, RedactQueryStringFilter) for f in _urllib3_logger.filters):
    _urllib3_logger.addFilter(RedactQueryStringFilter())


# -- results --------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    """A code was sent (or one is already pending, ``reused=True``, vendor code 506)."""

    verification_id: str
    #: Seconds the vendor keeps the code valid, if it said so.
    timeout: int | None
    transaction_id: str | None
    response_code: int
    reused: bool = False


@dataclass(frozen=True)
class ValidateResult:
    """The vendor's verdict on a code: an expected outcome, not an error."""

    outcome: Outcome
    response_code: int

    @property
    def verified(self) -> bool:
        """True when the code was right (or the verification had already succeeded)."""
        return self.outcome in (Outcome.VERIFIED, Outcome.ALREADY_VERIFIED)


# -- transport failures ---------------------------------------------------------------


class _TransportFailure(Exception):
    """A request that got no usable HTTP answer. ``kind`` says in which phase.

    * ``connect``: nothing reached the vendor (refused, DNS, connect timeout): safe to
      retry once, even for a send.
    * ``read_timeout`` / ``dropped``: the request may have been processed: never resent.
    """

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _classify(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.ConnectTimeout):
        return "connect"
    if isinstance(exc, requests.ReadTimeout):
        return "read_timeout"
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, urllib3.exceptions.MaxRetryError):
            reason = reason.reason
        if isinstance(
            reason,
            (
                urllib3.exceptions.NewConnectionError,
                urllib3.exceptions.ConnectTimeoutError,
            ),
        ):
            return "connect"
        # "Connection aborted", reset mid-answer: the request was sent.
        return "dropped"
    return "dropped"


# -- circuit breaker ------------------------------------------------------------------


class CircuitBreaker:
    """Consecutive-failure breaker whose state lives in the Django cache (R36).

    Keyed by base URL, so every worker process sharing the cache shares the breaker.
    Closed → open after ``fail_max`` consecutive failures; open → one probe call after
    ``reset_timeout`` seconds (half-open); the probe's success closes it, its failure
    reopens it. Cache errors never block a call: the breaker then fails open.
    """

    def __init__(
        self, cache_alias: str, base_url: str, fail_max: int, reset_timeout: int
    ):
        self.cache_alias = cache_alias
        key = hashlib.sha256(base_url.encode()).hexdigest()[:16]
        self.failures_key = f"verifynow:cb:{key}:failures"
        self.open_key = f"verifynow:cb:{key}:open_until"
        self.probe_key = f"verifynow:cb:{key}:probe"
        self.fail_max = fail_max
        self.reset_timeout = reset_timeout

    @property
    def cache(self) -> Any:
        return caches[self.cache_alias]

    def before_call(self, endpoint: str) -> None:
        """Raise :class:`ProviderUnavailable` without any I/O while the breaker is open."""
        try:
            open_until = self.cache.get(self.open_key)
            if open_until is None:
                return
            remaining = open_until - _now()
            if remaining > 0:
                raise ProviderUnavailable(
                    retry_after=math.ceil(remaining), endpoint=endpoint
                )
            # Half-open: exactly one caller (across processes) gets to probe.
            if self.cache.add(self.probe_key, 1, timeout=max(self.reset_timeout, 30)):
                logger.info(
                    "VerifyNow circuit breaker half-open: probing with %s", endpoint
                )
                return
        except ProviderUnavailable:
            raise
        except Exception:  # noqa: BLE001 - a broken cache must not stop vendor calls
            logger.warning("VerifyNow circuit breaker state unavailable (cache error)")
            return
        raise ProviderUnavailable(
            retry_after=min(self.reset_timeout, 5), endpoint=endpoint
        )

    def record_success(self) -> None:
        """Close the breaker (forget earlier failures)."""
        try:
            was_open = self.cache.get(self.open_key) is not None
            self.cache.delete_many([self.failures_key, self.open_key, self.probe_key])
        except Exception:  # noqa: BLE001
            return
        if was_open:
            logger.warning("VerifyNow circuit breaker closed: the vendor answers again")

    def record_failure(self) -> None:
        """Count a failure; open (or reopen) the breaker at the threshold."""
        try:
            half_open = self.cache.get(self.probe_key) is not None
            self.cache.add(self.failures_key, 0, timeout=self.reset_timeout * 10)
            failures = self.cache.incr(self.failures_key)
            if failures >= self.fail_max or half_open:
                self.cache.set(
                    self.open_key,
                    _now() + self.reset_timeout,
                    timeout=self.reset_timeout * 10,
                )
                self.cache.delete(self.probe_key)
                logger.warning(
                    "VerifyNow circuit breaker opened after %d consecutive failures; "
                    "calls fail fast for %d s",
                    failures,
                    self.reset_timeout,
                )
        except Exception:  # noqa: BLE001
            logger.warning("VerifyNow circuit breaker state unavailable (cache error)")


# -- the client -----------------------------------------------------------------------


def _jwt_exp(token: str) -> float | None:
    """Read ``exp`` from a JWT payload without verifying it (we only need a cache TTL)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        exp = json.loads(base64.urlsafe_b64decode(payload)).get("exp")
        return float(exp) if isinstance(exp, (int, float)) else None
    except (IndexError, ValueError, binascii.Error, AttributeError, UnicodeDecodeError):
        return None


def _as_id(value: Any) -> str | None:
    """Normalise a ``verificationId`` (string in send, number in validate) to ``str``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text if text and len(text) <= 64 and text.isalnum() else None


def _as_seconds(value: Any) -> int | None:
    """Parse ``timeout`` (``"60"``, ``"60.0"``, ``60``) to whole seconds."""
    try:
        seconds = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if seconds > 0 else None


def _response_code(body: Mapping[str, Any]) -> int | None:
    code: Any = body.get("responseCode")
    try:
        return int(code) if not isinstance(code, bool) else None
    except (TypeError, ValueError):
        return None


class VerifyNowClient:
    """Thread-safe client for one VerifyNow account.

    Build it with :func:`get_client` (from settings) rather than directly. One pooled
    ``requests.Session`` per thread (R38); timeouts on every call (R31); per-call retry
    policy (R32); token cached in the Django cache and refreshed once on 401/403 (R34);
    circuit breaker (R36).
    """

    def __init__(
        self,
        *,
        customer_id: str,
        password: str,
        base_url: str = "https://cpaas.messagecentral.com",
        api_version: str = "v3",
        timeout: tuple[float, float] = (3.05, 10),
        email: str | None = None,
        country: str | None = None,
        cache_alias: str = "default",
        breaker_failures: int = 5,
        breaker_reset: int = 60,
        adapter_factory: Callable[[], requests.adapters.BaseAdapter] | None = None,
    ) -> None:
        self.customer_id = customer_id
        self._password = password
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.timeout = timeout
        self.email = email
        self.country = country
        self.cache_alias = cache_alias
        self._adapter_factory = adapter_factory
        ident = hashlib.sha256(f"{self.base_url}|{customer_id}".encode()).hexdigest()[
            :16
        ]
        self._token_key = f"verifynow:token:{ident}"
        self._token_lock_key = f"verifynow:token:{ident}:lock"
        self._local = threading.local()
        self._token_lock = threading.Lock()
        # Last token seen by this process: used when the cache itself is down.
        self._fallback_token: tuple[str, float] | None = None
        self.breaker = CircuitBreaker(
            cache_alias, self.base_url, breaker_failures, breaker_reset
        )

    def __repr__(self) -> str:  # never show the password
        return f"<VerifyNowClient {self.base_url} {self.api_version}>"

    # -- plumbing -----------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        """This thread's pooled session (keep-alive connections are reused)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(
                {
                    "User-Agent": f"django-verifynow/{__version__}",
                    "Accept": "application/json",
                }
            )
            session.trust_env = (
                False  # no proxy or .netrc surprises from the environment
            )
            if self._adapter_factory is not None:
                adapter = self._adapter_factory()
                session.mount("https://", adapter)
                session.mount("http://", adapter)
            else:
                # Retries happen in this module only (R32): urllib3's are switched off.
                adapter = HTTPAdapter(
                    pool_connections=4, pool_maxsize=10, max_retries=0
                )
                session.mount("https://", adapter)
                session.mount("http://", adapter)
            self._local.session = session
        return session

    @property
    def cache(self) -> Any:
        return caches[self.cache_alias]

    def _http(
        self,
        endpoint: str,
        method: str,
        path: str,
        params: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One HTTP exchange. Raises :class:`_TransportFailure`, never a requests error."""
        kind = None
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                params=params,
                headers=dict(headers or {}),
                timeout=self.timeout,
                allow_redirects=False,  # API10: a redirect is not an answer
            )
        except requests.RequestException as exc:
            kind = _classify(exc)
        if kind is not None:
            # Raised outside the except block so no requests exception (whose text holds
            # the full URL, key and code included) is chained as __context__.
            logger.warning("VerifyNow %s: no answer (%s)", endpoint, kind)
            raise _TransportFailure(kind)
        logger.debug(
            "VerifyNow %s: HTTP %s in %.0f ms",
            endpoint,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    @staticmethod
    def _json(response: requests.Response) -> dict[str, Any] | None:
        try:
            body = response.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    # -- token --------------------------------------------------------------------------

    def _cached_token(self) -> str | None:
        try:
            return self.cache.get(self._token_key)
        except Exception:  # noqa: BLE001 - cache down: fall back to this process's copy
            if self._fallback_token and self._fallback_token[1] > _now():
                return self._fallback_token[0]
            return None

    def get_token(self, *, stale: str | None = None) -> str:
        """Return a valid auth token, fetching one if none is cached.

        :param stale: a token the vendor just refused; a cached token equal to it is
            ignored, a different one (another worker refreshed meanwhile) is returned.
        """
        token = self._cached_token()
        if token and token != stale:
            return token
        # Serialise refreshes: threads of this process on a lock, processes on a cache
        # "add" lock, so a burst after expiry costs one token call, not one per request.
        with self._token_lock:
            token = self._cached_token()
            if token and token != stale:
                return token
            have_lock = self._acquire_refresh_lock()
            if not have_lock:
                token = self._wait_for_token(stale)
                if token:
                    return token
            try:
                return self._fetch_token()
            finally:
                if have_lock:
                    try:
                        self.cache.delete(self._token_lock_key)
                    except Exception:  # noqa: BLE001
                        pass

    def _acquire_refresh_lock(self) -> bool:
        try:
            return bool(
                self.cache.add(self._token_lock_key, 1, timeout=TOKEN_LOCK_TIMEOUT)
            )
        except Exception:  # noqa: BLE001
            return True  # no shared cache: nothing to serialise against

    def _wait_for_token(self, stale: str | None) -> str | None:
        """Another process is refreshing: wait (bounded) for its token to appear."""
        deadline = time.monotonic() + sum(self.timeout)
        while time.monotonic() < deadline:
            _sleep(0.05)
            token = self._cached_token()
            if token and token != stale:
                return token
            try:
                if self.cache.get(self._token_lock_key) is None:
                    return None
            except Exception:  # noqa: BLE001
                return None
        return None

    def _fetch_token(self) -> str:
        params: dict[str, Any] = {
            "customerId": self.customer_id,
            "key": base64.b64encode(self._password.encode("utf-8")).decode("ascii"),
            "scope": "NEW",
        }
        if self.country:
            params["country"] = self.country
        if self.email:
            params["email"] = self.email
        self.breaker.before_call("token")
        for attempt in range(1, TOKEN_ATTEMPTS + 1):
            delay = TOKEN_BACKOFF * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
            try:
                response = self._http("token", "GET", TOKEN_PATH, params)
            except _TransportFailure as failure:
                if attempt == TOKEN_ATTEMPTS:
                    self.breaker.record_failure()
                    if failure.kind == "read_timeout":
                        raise ProviderTimeout(endpoint="token") from None
                    raise ProviderUnavailable(endpoint="token") from None
                _sleep(delay)
                continue
            body = self._json(response)
            if response.status_code in TOKEN_RETRY_STATUSES and not (
                body and body.get("token")
            ):
                retry_after = _as_seconds(response.headers.get("Retry-After"))
                if (
                    attempt == TOKEN_ATTEMPTS
                    or (retry_after or 0) > TOKEN_MAX_RETRY_AFTER
                ):
                    self.breaker.record_failure()
                    raise ProviderUnavailable(
                        endpoint="token", retry_after=retry_after or 30
                    ) from None
                _sleep(max(delay, retry_after or 0))
                continue
            return self._accept_token(response, body)
        raise AssertionError("unreachable")  # pragma: no cover

    def _accept_token(
        self, response: requests.Response, body: dict[str, Any] | None
    ) -> str:
        # Success is HTTP 200 with {"status": 200, "token": "<JWT>"}; refusals come as
        # HTTP 200 too, with {"status": 400, "error": "password is wrong"}.
        token = body.get("token") if body else None
        status = body.get("status") if body else None
        if not isinstance(token, str) or not token or status not in (200, "200", None):
            self.breaker.record_success()  # the vendor answered; the credentials are wrong
            logger.error(
                "VerifyNow refused the token request (HTTP %s, body status %s): check "
                'VERIFYNOW["CUSTOMER_ID"] and VERIFYNOW["PASSWORD"]',
                response.status_code,
                status if isinstance(status, int) else "missing",
            )
            raise ProviderAuthError(
                endpoint="token", response_code=_response_code(body or {})
            )
        self.breaker.record_success()
        exp = _jwt_exp(token)
        ttl = int(exp - _now() - TOKEN_EXPIRY_MARGIN) if exp else TOKEN_DEFAULT_TTL
        ttl = max(ttl, 1)
        self._fallback_token = (token, _now() + ttl)
        try:
            self.cache.set(self._token_key, token, timeout=min(ttl, 30 * 24 * 3600))
        except Exception:  # noqa: BLE001
            logger.warning("VerifyNow token could not be cached (cache error)")
        logger.info("VerifyNow auth token refreshed")
        return token

    def forget_token(self) -> None:
        """Drop the cached token (the next call fetches a new one)."""
        self._fallback_token = None
        try:
            self.cache.delete(self._token_key)
        except Exception:  # noqa: BLE001
            pass

    # -- authenticated calls ------------------------------------------------------------

    def _call(
        self, call: Call, method: str, params: Mapping[str, Any]
    ) -> tuple[requests.Response, dict[str, Any] | None]:
        """Make an authenticated call with the breaker, the connect-only retry and the
        single refresh-and-replay on an auth failure."""
        endpoint = call.value
        path = PATHS[self.api_version][endpoint]
        self.breaker.before_call(endpoint)
        token = self.get_token()
        refreshed = False
        connect_retries = 1
        while True:
            try:
                response = self._http(
                    endpoint, method, path, params, {"authToken": token}
                )
            except _TransportFailure as failure:
                if failure.kind == "connect" and connect_retries:
                    # Nothing reached the vendor: one retry is safe even for a send.
                    connect_retries -= 1
                    continue
                self.breaker.record_failure()
                if failure.kind == "connect":
                    raise ProviderUnavailable(endpoint=endpoint) from None
                # Read timeout or dropped answer: the vendor may have acted (sent the
                # SMS, counted the attempt). Never resend (R32, R35).
                raise ProviderTimeout(endpoint=endpoint) from None
            body = self._json(response)
            code = _response_code(body) if body else None
            # Decide on the body when it has a code; on the HTTP status only without one.
            if code in (401, 403) or (
                code is None and response.status_code in (401, 403)
            ):
                if refreshed:
                    self.breaker.record_success()
                    logger.error(
                        "VerifyNow refused a freshly issued token on %s", endpoint
                    )
                    raise ProviderAuthError(endpoint=endpoint, response_code=code)
                # Replaying is safe: the vendor refused before doing anything (R34).
                refreshed = True
                token = self.get_token(stale=token)
                continue
            return response, body

    def _fault(
        self, endpoint: str, response: requests.Response, code: int | None
    ) -> ProviderError:
        self.breaker.record_failure()
        logger.error(
            "VerifyNow %s failed: HTTP %s, responseCode %s",
            endpoint,
            response.status_code,
            code if code is not None else "missing",
        )
        return ProviderError(endpoint=endpoint, response_code=code)

    def _rejected(
        self, endpoint: str, response: requests.Response, code: int | None
    ) -> ProviderError:
        self.breaker.record_success()  # the vendor is up; it refused this request
        logger.error(
            "VerifyNow %s refused: HTTP %s, responseCode %s (%s)",
            endpoint,
            response.status_code,
            code,
            ResponseCode.name_of(code),
        )
        return ProviderError(endpoint=endpoint, response_code=code)

    def send(
        self,
        *,
        country_code: str,
        national_number: str,
        flow_type: str = "SMS",
        otp_length: int = 6,
    ) -> SendResult:
        """Ask VerifyNow to send a code to ``+<country_code><national_number>``.

        :raises ProviderTimeout: no answer in time: an SMS may have gone out.
        :raises ProviderUnavailable: nothing was sent (connection failed, breaker open).
        :raises RateLimited: the vendor's own limit (800).
        :raises ProviderError: the vendor refused the request or answered nonsense.
        """
        params: dict[str, Any] = {
            "countryCode": country_code,
            "customerId": self.customer_id,
            "flowType": flow_type,
            "mobileNumber": national_number,
            # Always explicit: the vendor default is 4 digits, 13 bits (R1).
            "otpLength": otp_length,
        }
        response, body = self._call(Call.SEND, "POST", params)
        code = _response_code(body) if body else None
        if body is None or code is None:
            raise self._fault("send", response, None)
        outcome = outcome_for(Call.SEND, code)
        data = body.get("data")
        if not isinstance(data, dict):
            data = {}
        if outcome in (Outcome.SENT, Outcome.ALREADY_PENDING):
            verification_id = _as_id(data.get("verificationId"))
            if verification_id is None:
                # A "success" we cannot validate against is no success (S28).
                raise self._fault("send", response, code)
            self.breaker.record_success()
            transaction_id = data.get("transactionId")
            return SendResult(
                verification_id=verification_id,
                timeout=_as_seconds(data.get("timeout")),
                transaction_id=str(transaction_id)[:64] if transaction_id else None,
                response_code=code,
                reused=outcome is Outcome.ALREADY_PENDING,
            )
        if outcome is Outcome.LIMIT_REACHED:
            self.breaker.record_success()
            logger.warning(
                "VerifyNow send refused: the vendor's limit was reached (800)"
            )
            raise RateLimited(retry_after=PROVIDER_LIMIT_RETRY_AFTER, scope="provider")
        if outcome is Outcome.PROVIDER_FAULT or response.status_code >= 500:
            raise self._fault("send", response, code)
        raise self._rejected("send", response, code)

    def validate(
        self,
        *,
        verification_id: str,
        code: str,
        country_code: str | None = None,
        national_number: str | None = None,
    ) -> ValidateResult:
        """Ask VerifyNow whether ``code`` is right for ``verification_id``.

        Wrong, expired, already verified and locked are :class:`ValidateResult` outcomes.

        :raises ProviderTimeout: no answer in time: the vendor may have counted the try.
        :raises ProviderUnavailable: the request never reached the vendor.
        :raises ProviderError: refused (505, 700, …) or nonsense; never "verified".
        """
        params: dict[str, Any] = {"verificationId": verification_id, "code": code}
        if self.api_version == "v2":
            params["customerId"] = self.customer_id
            if country_code and national_number:
                params["countryCode"] = country_code
                params["mobileNumber"] = national_number
        response, body = self._call(Call.VALIDATE, "GET", params)
        response_code = _response_code(body) if body else None
        if body is None or response_code is None:
            raise self._fault("validate", response, None)
        outcome = outcome_for(Call.VALIDATE, response_code)
        if outcome is Outcome.VERIFIED:
            data = body.get("data")
            if not isinstance(data, dict):
                data = {}
            if data.get("verificationStatus") != "VERIFICATION_COMPLETED":
                # 200 without the completed status: fail closed, never "verified".
                raise self._fault("validate", response, response_code)
        if outcome in (
            Outcome.VERIFIED,
            Outcome.WRONG_CODE,
            Outcome.ALREADY_VERIFIED,
            Outcome.EXPIRED,
            Outcome.LIMIT_REACHED,
        ):
            self.breaker.record_success()
            return ValidateResult(outcome=outcome, response_code=response_code)
        if outcome is Outcome.PROVIDER_FAULT or response.status_code >= 500:
            raise self._fault("validate", response, response_code)
        raise self._rejected("validate", response, response_code)


# -- construction from settings -------------------------------------------------------

_clients: dict[tuple[Any, ...], VerifyNowClient] = {}
_clients_lock = threading.Lock()


def get_client() -> VerifyNowClient:
    """Return the client for the current ``VERIFYNOW`` settings.

    Clients are cached per configuration, so ``override_settings`` gets a matching
    client and production reuses one pool of connections. With ``SANDBOX`` on, every
    request goes to the in-process simulator: nothing leaves the machine.
    """
    s = verifynow_settings
    sandbox = s.SANDBOX
    if sandbox:
        from .sandbox import sandbox_credentials

        customer_id, password = sandbox_credentials()
    else:
        customer_id, password = s.require_credentials()
    config = (
        sandbox,
        s.BASE_URL,
        customer_id,
        hashlib.sha256(password.encode()).hexdigest(),
        s.API_VERSION,
        s.TIMEOUT,
        s.EMAIL,
        s.COUNTRY,
        s.CACHE,
        s.CIRCUIT_BREAKER_FAILURES,
        s.CIRCUIT_BREAKER_RESET,
    )
    with _clients_lock:
        client = _clients.get(config)
        if client is None:
            adapter_factory = None
            if sandbox:
                from .sandbox.transport import SandboxAdapter

                adapter_factory = SandboxAdapter
            client = VerifyNowClient(
                customer_id=customer_id,
                password=password,
                base_url=s.BASE_URL,
                api_version=s.API_VERSION,
                timeout=s.TIMEOUT,
                email=s.EMAIL,
                country=s.COUNTRY,
                cache_alias=s.CACHE,
                breaker_failures=s.CIRCUIT_BREAKER_FAILURES,
                breaker_reset=s.CIRCUIT_BREAKER_RESET,
                adapter_factory=adapter_factory,
            )
            if len(_clients) > 32:  # many override_settings in a test run
                _clients.clear()
            _clients[config] = client
        return client
