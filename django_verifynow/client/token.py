"""The auth token: fetched with the account's credentials, shared through the cache.

``GET /auth/v1/authentication/token`` answers ``{"status": 200, "token": "<JWT>"}``,
and refusals as HTTP 200 too, with ``{"status": 400, "error": "..."}``. The token is
cached in the Django cache until shortly before the ``exp`` written in the JWT, so
every worker shares one; a burst after expiry costs one token request, not one per
worker thread.

Retries: up to :data:`TOKEN_ATTEMPTS` attempts with jittered exponential back-off,
all inside the caller's :class:`~.deadline.Deadline`. Every failed attempt counts
towards the circuit breaker at once, so a hanging token endpoint opens the breaker
after ``CIRCUIT_BREAKER_FAILURES`` attempts, whichever calls they belonged to.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import random
import threading
from typing import Any

import requests
from django.core.cache import caches

from ..exceptions import ProviderAuthError, ProviderUnavailable
from .breaker import CircuitBreaker
from .deadline import Deadline, monotonic, now, sleep
from .results import as_seconds, response_code_of
from .transport import Transport, TransportFailure

__all__ = [
    "TOKEN_ATTEMPTS",
    "TOKEN_BACKOFF",
    "TOKEN_DEFAULT_TTL",
    "TOKEN_EXPIRY_MARGIN",
    "TOKEN_LOCK_TIMEOUT",
    "TOKEN_MAX_RETRY_AFTER",
    "TOKEN_PATH",
    "TOKEN_RETRY_STATUSES",
    "TokenSource",
    "jwt_exp",
]

# One logger for the whole package, as before the split: sites filter on this name.
logger = logging.getLogger("django_verifynow.client")

TOKEN_PATH = "/auth/v1/authentication/token"
#: Refresh a cached token this long before the ``exp`` in its JWT.
TOKEN_EXPIRY_MARGIN = 60
#: Cache lifetime of a token whose expiry cannot be read.
TOKEN_DEFAULT_TTL = 3600
#: Token fetch retry policy: attempts, back-off base, largest Retry-After honoured.
TOKEN_ATTEMPTS = 3
TOKEN_BACKOFF = 0.5
TOKEN_MAX_RETRY_AFTER = 5
TOKEN_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Shortest hold of the cross-process refresh lock (longer when the deadline is).
TOKEN_LOCK_TIMEOUT = 15


# "Not read by the caller" for TokenSource.get(cached=...), distinct from None.
_UNREAD = object()


def jwt_exp(token: str) -> float | None:
    """Read ``exp`` from a JWT payload, unverified (we only need a cache TTL)."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        exp = json.loads(base64.urlsafe_b64decode(payload)).get("exp")
        return float(exp) if isinstance(exp, (int, float)) else None
    except (IndexError, ValueError, binascii.Error, AttributeError, UnicodeDecodeError):
        return None


class TokenSource:
    """Hands out a valid token for one account, fetching it when none is cached.

    Thread-safe; processes sharing the cache share the token and serialise refreshes
    through a cache lock. The password is only read to build the request's ``key``.
    """

    def __init__(
        self,
        *,
        customer_id: str,
        password: str,
        transport: Transport,
        breaker: CircuitBreaker,
        cache_alias: str = "default",
        email: str | None = None,
        country: str | None = None,
    ) -> None:
        self.customer_id = customer_id
        self._password = password
        self.transport = transport
        self.breaker = breaker
        self.cache_alias = cache_alias
        self.email = email
        self.country = country
        ident = f"{transport.base_url}|{customer_id}".encode()
        digest = hashlib.sha256(ident).hexdigest()[:16]
        #: Cache key of the shared token.
        self.cache_key = f"verifynow:token:{digest}"
        self.lock_key = f"verifynow:token:{digest}:lock"
        self._lock = threading.Lock()
        #: Last token seen by this process, and until when: used when the cache is down.
        self.fallback: tuple[str, float] | None = None

    def __repr__(self) -> str:  # never show the password
        return f"<TokenSource {self.transport.base_url}>"

    @property
    def cache(self) -> Any:
        """The cache holding the token (looked up per use: tests swap it)."""
        return caches[self.cache_alias]

    def cached(self) -> str | None:
        """The cached token, or ``None``."""
        try:
            return self.cache.get(self.cache_key)
        except Exception:  # noqa: BLE001 - cache down: fall back to this process's copy
            if self.fallback and self.fallback[1] > now():
                return self.fallback[0]
            return None

    def forget(self) -> None:
        """Drop the cached token (the next call fetches a new one)."""
        self.fallback = None
        try:
            self.cache.delete(self.cache_key)
        except Exception:  # noqa: BLE001
            pass

    def get(
        self,
        *,
        deadline: Deadline,
        stale: str | None = None,
        admitted: bool = False,
        cached: str | None | object = _UNREAD,
    ) -> str:
        """Return a valid token, fetching one within ``deadline`` if none is cached.

        :param stale: a token the vendor just refused; a cached token equal to it is
            ignored, a different one (another worker refreshed meanwhile) is returned.
        :param admitted: the caller already passed the breaker's
            :meth:`~.CircuitBreaker.before_call` for this call (a send or validate that
            needs a token); a direct token request is admitted here.
        :param cached: the token's cache value, when the caller read it already (with
            the breaker's state, in one round trip); ``None`` if it was absent.
        :raises ProviderUnavailable: no token in time (nothing was sent).
        :raises ProviderAuthError: the vendor refused the credentials.
        """
        token = self.cached() if cached is _UNREAD else cached
        if isinstance(token, str) and token and token != stale:
            return token
        # Serialise refreshes: threads of this process on a lock, processes on a cache
        # "add" lock, so a burst after expiry costs one token call, not one per request.
        # The thread lock is waited for within the deadline too: a thread stuck behind a
        # hanging refresh must not outlive its own budget.
        if not self._lock.acquire(timeout=deadline.remaining()):
            raise deadline.exhausted("token")
        try:
            token = self.cached()
            if token and token != stale:
                return token
            have_lock = self._acquire_refresh_lock(deadline)
            if not have_lock:
                token = self._wait_for_token(stale, deadline)
                if token:
                    return token
            try:
                return self._fetch(deadline, admitted=admitted)
            finally:
                if have_lock:
                    try:
                        self.cache.delete(self.lock_key)
                    except Exception:  # noqa: BLE001
                        pass
        finally:
            self._lock.release()

    def _acquire_refresh_lock(self, deadline: Deadline) -> bool:
        # Held at most as long as the refresh may take, so a killed worker's lock
        # does not block the others for long.
        hold = max(TOKEN_LOCK_TIMEOUT, math.ceil(deadline.remaining()) + 1)
        try:
            return bool(self.cache.add(self.lock_key, 1, timeout=hold))
        except Exception:  # noqa: BLE001
            return True  # no shared cache: nothing to serialise against

    def _wait_for_token(self, stale: str | None, deadline: Deadline) -> str | None:
        """Another process is refreshing: wait (bounded) for its token to appear."""
        give_up = monotonic() + min(sum(self.transport.timeout), deadline.remaining())
        while monotonic() < give_up:
            sleep(0.05)
            token = self.cached()
            if token and token != stale:
                return token
            try:
                if self.cache.get(self.lock_key) is None:
                    return None
            except Exception:  # noqa: BLE001
                return None
        return None

    def _fetch(self, deadline: Deadline, *, admitted: bool) -> str:
        params: dict[str, Any] = {
            "customerId": self.customer_id,
            "key": base64.b64encode(self._password.encode("utf-8")).decode("ascii"),
            "scope": "NEW",
        }
        if self.country:
            params["country"] = self.country
        if self.email:
            params["email"] = self.email
        if not admitted:
            self.breaker.before_call("token")
        wait = 0.0
        retry_after = 30
        for attempt in range(1, TOKEN_ATTEMPTS + 1):
            if attempt > 1:
                # This call's failures may have opened the breaker: stop at once.
                self.breaker.raise_if_open("token")
                # Give up rather than sleep into the deadline: a back-off cut short
                # would hammer a struggling vendor, and the caller's worker would die.
                if not deadline.allows_request(after=wait):
                    raise deadline.exhausted("token", retry_after=retry_after)
                sleep(wait)
                # Other workers' failures may have opened it during the back-off.
                self.breaker.raise_if_open("token")
            deadline.require("token")
            backoff = TOKEN_BACKOFF * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
            try:
                response = self.transport.request(
                    "token", "GET", TOKEN_PATH, params, deadline=deadline
                )
            except TransportFailure:
                # Timeout, refused or dropped: a token request is harmless to repeat.
                # Counted now, not after the last attempt, so the breaker sees every
                # hanging request even when the caller's deadline ends the loop.
                self.breaker.record_failure()
                wait, retry_after = backoff, 30
                continue
            body = self.transport.json(response)
            if response.status_code in TOKEN_RETRY_STATUSES and not (
                body and body.get("token")
            ):
                self.breaker.record_failure()
                header = as_seconds(response.headers.get("Retry-After"))
                if (header or 0) > TOKEN_MAX_RETRY_AFTER:
                    raise ProviderUnavailable(
                        endpoint="token", retry_after=header or 30
                    )
                wait, retry_after = max(backoff, header or 0), header or 30
                continue
            return self._accept(response, body)
        raise ProviderUnavailable(endpoint="token", retry_after=retry_after)

    def _accept(self, response: requests.Response, body: dict[str, Any] | None) -> str:
        # Success is HTTP 200 with {"status": 200, "token": "<JWT>"}; refusals come as
        # HTTP 200 too, with {"status": 400, "error": "password is wrong"}.
        token = body.get("token") if body else None
        status = body.get("status") if body else None
        if not isinstance(token, str) or not token or status not in (200, "200", None):
            # The vendor answered (it is up); the credentials are wrong.
            self.breaker.record_success()
            logger.error(
                "VerifyNow refused the token request (HTTP %s, body status %s): check "
                'VERIFYNOW["CUSTOMER_ID"] and VERIFYNOW["PASSWORD"]',
                response.status_code,
                status if isinstance(status, int) else "missing",
            )
            raise ProviderAuthError(
                endpoint="token", response_code=response_code_of(body or {})
            )
        self.breaker.record_success()
        exp = jwt_exp(token)
        ttl = int(exp - now() - TOKEN_EXPIRY_MARGIN) if exp else TOKEN_DEFAULT_TTL
        ttl = max(ttl, 1)
        self.fallback = (token, now() + ttl)
        try:
            self.cache.set(self.cache_key, token, timeout=min(ttl, 30 * 24 * 3600))
        except Exception:  # noqa: BLE001
            logger.warning("VerifyNow token could not be cached (cache error)")
        logger.info("VerifyNow auth token refreshed")
        return token
