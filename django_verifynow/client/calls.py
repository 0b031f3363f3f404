"""The vendor calls: :class:`VerifyNowClient`, its ``send`` and ``validate``.

The outcome is in the body's ``responseCode`` whatever the HTTP status: errors arrive
as HTTP 200 or 4xx depending on the code. We parse JSON on every status and decide on
the body (:func:`django_verifynow.codes.outcome_for`); the status only tells us about
transport-level faults (5xx without a usable body, 401/403).

What each failure raises (every exception carries a
:class:`~django_verifynow.reasons.Reason`):

============================================  ========================================
vendor refused (400, 501, 505, 511, …)        :class:`ProviderError`, VENDOR_REFUSED
channel not deliverable (400 on WhatsApp)     :class:`ChannelRefused`, CHANNEL_REFUSED
account out of credit (508, send)             :class:`OutOfCredit`, OUT_OF_CREDIT
vendor limit (800, send)                      :class:`RateLimited`, VENDOR_LIMIT
vendor fault (500, 5xx, no JSON, no id)       :class:`ProviderError`, PROVIDER_ERROR
credentials or a fresh token refused          :class:`ProviderAuthError`,
                                              CREDENTIALS_REFUSED
not reached, breaker open, deadline used up   :class:`ProviderUnavailable`,
                                              PROVIDER_UNAVAILABLE
sent, no answer in time (read timeout, drop)  :class:`ProviderTimeout`, PROVIDER_TIMEOUT
============================================  ========================================
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping
from typing import Any

import requests
from requests.adapters import BaseAdapter

from ..codes import Call, Outcome, ResponseCode, outcome_for
from ..exceptions import (
    ChannelRefused,
    OutOfCredit,
    ProviderAuthError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from ..executor import drive
from ..reasons import Reason
from .breaker import CircuitBreaker
from .deadline import Deadline
from .results import (
    SendResult,
    ValidateResult,
    as_id,
    as_seconds,
    refuses_channel,
    response_code_of,
)
from .token import TokenSource
from .transport import Exchange, Transport, TransportFailure

__all__ = ["DEFAULT_DEADLINE", "PATHS", "PROVIDER_LIMIT_RETRY_AFTER", "VerifyNowClient"]

# One logger for the whole package, as before the split: sites filter on this name.
logger = logging.getLogger("django_verifynow.client")

PATHS = {
    "v3": {"send": "/verification/v3/send", "validate": "/verification/v3/validateOtp"},
    "v2": {
        "send": "/verification/v2/verification/send",
        "validate": "/verification/v2/verification/validateOtp",
    },
}

#: Retry-After suggested when the vendor's own limit (800) is hit.
PROVIDER_LIMIT_RETRY_AFTER = 300
#: Seconds one send or validate may take in all (``VERIFYNOW["DEADLINE"]``).
DEFAULT_DEADLINE = 15.0


class VerifyNowClient:
    """Thread-safe client for one VerifyNow account.

    Build it with :func:`~django_verifynow.client.get_client` (from settings) rather
    than directly. One pooled ``requests.Session`` per thread; timeouts on every
    request, all of one call's requests within one ``deadline`` (seconds); per-call
    retry policy; token cached in the Django cache and refreshed once on 401/403;
    circuit breaker.
    """

    def __init__(
        self,
        *,
        customer_id: str,
        password: str,
        base_url: str = "https://cpaas.messagecentral.com",
        api_version: str = "v3",
        timeout: tuple[float, float] = (3.05, 10),
        deadline: float = DEFAULT_DEADLINE,
        email: str | None = None,
        country: str | None = None,
        cache_alias: str = "default",
        breaker_failures: int = 5,
        breaker_reset: int = 60,
        adapter_factory: Callable[[], BaseAdapter] | None = None,
    ) -> None:
        if deadline <= 0:
            raise ValueError("deadline must be a positive number of seconds.")
        self.customer_id = customer_id
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version
        self.timeout = timeout
        self.deadline = float(deadline)
        self.email = email
        self.country = country
        self.cache_alias = cache_alias
        self.transport = Transport(self.base_url, timeout, adapter_factory)
        self.breaker = CircuitBreaker(
            cache_alias, self.base_url, breaker_failures, breaker_reset
        )
        self.tokens = TokenSource(
            customer_id=customer_id,
            password=password,
            transport=self.transport,
            breaker=self.breaker,
            cache_alias=cache_alias,
            email=email,
            country=country,
        )

    def __repr__(self) -> str:  # never show the password or the customer id
        return f"<VerifyNowClient {self.base_url} {self.api_version}>"

    # -- token -------------------------------------------------------------------------

    def get_token(self, *, stale: str | None = None) -> str:
        """Return a valid auth token, fetching one (within the deadline) if needed.

        :param stale: a token the vendor just refused; a cached token equal to it is
            ignored, a different one (another worker refreshed meanwhile) is returned.
        :raises ProviderUnavailable: no token in time, or the breaker is open.
        :raises ProviderAuthError: the vendor refused the credentials.
        """
        return self.tokens.get(stale=stale, deadline=Deadline(self.deadline))

    def forget_token(self) -> None:
        """Drop the cached token (the next call fetches a new one)."""
        self.tokens.forget()

    # -- authenticated calls -----------------------------------------------------------

    def state_keys(self) -> tuple[str, ...]:
        """The cache keys every call reads first (the breaker's state and the token).

        A caller that makes a round trip to the same cache just before the call can
        read them with it and pass the values as ``state`` to :meth:`send` or
        :meth:`validate`, which then make no read of their own.
        """
        return (*self.breaker.state_keys, self.tokens.cache_key)

    def _call(
        self,
        call: Call,
        method: str,
        params: Mapping[str, Any],
        deadline: Deadline,
        state: Mapping[str, Any] | None = None,
    ) -> Generator[Exchange, Any, tuple[Any, dict[str, Any] | None]]:
        """Make an authenticated call with the breaker, the connect-only retry and the
        single refresh-and-replay on an auth failure, all within ``deadline``.

        A flow (:mod:`django_verifynow.executor`): it yields each HTTP
        :class:`~.transport.Exchange` and is sent the response (or has the
        :class:`~.transport.TransportFailure` thrown in), so the sync client and the
        async one run this same code.
        """
        endpoint = call.value
        path = PATHS[self.api_version][endpoint]
        # The breaker's state and the token in one round trip (or none: read by the
        # caller with its own); the success path then writes nothing.
        if state is None:
            state = self._read_state()
        self.breaker.before_call(endpoint, state)
        # A token fetch (rare: once an hour per site) stays a blocking exchange; in the
        # async API it runs in the executor's thread of this step.
        if state is None:
            token = self.tokens.get(deadline=deadline, admitted=True)
        else:
            token = self.tokens.get(
                deadline=deadline,
                admitted=True,
                cached=state.get(self.tokens.cache_key),
            )
        refreshed = False
        connect_retries = 1
        while True:
            # Every pass starts a request that may be processed: none without the time
            # to get its answer. Until now nothing was processed (no request yet, a
            # refused connection, or a 401 refused before any work).
            deadline.require(endpoint)
            try:
                response = yield Exchange(
                    endpoint,
                    method,
                    path,
                    params,
                    {"authToken": token},
                    deadline,
                )
            except TransportFailure as failure:
                if failure.kind == "connect" and connect_retries:
                    # Nothing reached the vendor: one retry is safe even for a send,
                    # if the deadline leaves time for it.
                    connect_retries -= 1
                    if deadline.allows_request():
                        continue
                self.breaker.record_failure()
                if failure.kind == "connect":
                    raise ProviderUnavailable(endpoint=endpoint) from None
                # Read timeout or dropped answer: the vendor may have acted (sent the
                # SMS, counted the attempt). Never resend.
                raise ProviderTimeout(endpoint=endpoint) from None
            body = Transport.json(response)
            code = response_code_of(body) if body else None
            # Decide on the body when it has a code, on the HTTP status only without.
            if code in (401, 403) or (
                code is None and response.status_code in (401, 403)
            ):
                if refreshed:
                    self.breaker.record_success()
                    logger.error(
                        "VerifyNow refused a freshly issued token on %s", endpoint
                    )
                    raise ProviderAuthError(endpoint=endpoint, response_code=code)
                # Replaying is safe: the vendor refused before doing anything.
                refreshed = True
                token = self.tokens.get(stale=token, deadline=deadline, admitted=True)
                continue
            return response, body

    def _perform(self, exchange: Exchange) -> requests.Response:
        """Make one HTTP exchange of a flow with the blocking transport."""
        return self.transport.request(
            exchange.endpoint,
            exchange.method,
            exchange.path,
            exchange.params,
            exchange.headers,
            deadline=exchange.deadline,
        )

    def _read_state(self) -> Mapping[str, Any] | None:
        """The breaker's state and the cached token, or ``None`` if the cache failed
        (each part then reads, and falls back, on its own)."""
        try:
            state: Mapping[str, Any] = self.tokens.cache.get_many(
                list(self.state_keys())
            )
        except Exception:  # noqa: BLE001 - a broken cache must not stop vendor calls
            return None
        return state

    def _fault(self, endpoint: str, response: Any, code: int | None) -> ProviderError:
        """The vendor failed (5xx, nonsense): counts towards the breaker."""
        self.breaker.record_failure()
        logger.error(
            "VerifyNow %s failed: HTTP %s, responseCode %s",
            endpoint,
            response.status_code,
            code if code is not None else "missing",
        )
        return ProviderError(endpoint=endpoint, response_code=code)

    def _rejected(
        self, endpoint: str, response: Any, code: int | None
    ) -> ProviderError:
        """The vendor refused this request: it is up, so the breaker closes."""
        self.breaker.record_success()
        logger.error(
            "VerifyNow %s refused: HTTP %s, responseCode %s (%s)",
            endpoint,
            response.status_code,
            code,
            ResponseCode.name_of(code),
        )
        return ProviderError(
            endpoint=endpoint, response_code=code, reason=Reason.VENDOR_REFUSED
        )

    def send(
        self,
        *,
        country_code: str,
        national_number: str,
        flow_type: str = "SMS",
        otp_length: int = 6,
        state: Mapping[str, Any] | None = None,
        deadline: Deadline | None = None,
    ) -> SendResult:
        """Ask VerifyNow to send a code to ``+<country_code><national_number>``.

        :raises ProviderTimeout: no answer in time: an SMS may have gone out.
        :raises ProviderUnavailable: nothing was sent (connection failed, breaker open,
            the deadline used up before the send could start, by the token for one).
        :raises RateLimited: the vendor's own limit (800), reason VENDOR_LIMIT.
        :raises OutOfCredit: the account has no credit left (508).
        :raises ChannelRefused: the channel cannot deliver to this number or on this
            account (see :func:`~.results.refuses_channel`); nothing was sent.
        :raises ProviderError: the vendor refused the request or answered nonsense.

        ``state``: the values of :meth:`state_keys` as the caller just read them from
        the client's cache (absent keys left out); without it the call reads them.
        ``deadline``: a budget shared with an earlier call (a send falling back to
        another channel stays within the first one's); without it a new one starts.
        """
        return drive(
            self.send_flow(
                country_code=country_code,
                national_number=national_number,
                flow_type=flow_type,
                otp_length=otp_length,
                state=state,
                deadline=deadline,
            ),
            self._perform,
        )

    def send_flow(
        self,
        *,
        country_code: str,
        national_number: str,
        flow_type: str = "SMS",
        otp_length: int = 6,
        state: Mapping[str, Any] | None = None,
        deadline: Deadline | None = None,
    ) -> Generator[Exchange, Any, SendResult]:
        """:meth:`send` as a flow (see :mod:`django_verifynow.executor`); its deadline
        starts at its first step, unless one is given."""
        params: dict[str, Any] = {
            "countryCode": country_code,
            "customerId": self.customer_id,
            "flowType": flow_type,
            "mobileNumber": national_number,
            # Always explicit: the vendor default is 4 digits, 13 bits.
            "otpLength": otp_length,
        }
        if self.api_version == "v3":
            # v3 lists ``type`` with OTP as VerifyNow's value (MessageNow uses SMS on
            # the same endpoint); v2 documents no such parameter.
            params["type"] = "OTP"
        response, body = yield from self._call(
            Call.SEND,
            "POST",
            params,
            deadline if deadline is not None else Deadline(self.deadline),
            state,
        )
        code = response_code_of(body) if body else None
        if body is None or code is None:
            raise self._fault("send", response, None)
        outcome = outcome_for(Call.SEND, code)
        data = body.get("data")
        if not isinstance(data, dict):
            data = {}
        if outcome in (Outcome.SENT, Outcome.ALREADY_PENDING):
            verification_id = as_id(data.get("verificationId"))
            if verification_id is None:
                # A "success" we cannot validate against is no success.
                raise self._fault("send", response, code)
            self.breaker.record_success()
            transaction_id = data.get("transactionId")
            return SendResult(
                verification_id=verification_id,
                timeout=as_seconds(data.get("timeout")),
                transaction_id=str(transaction_id)[:64] if transaction_id else None,
                response_code=code,
                reused=outcome is Outcome.ALREADY_PENDING,
            )
        if outcome is Outcome.LIMIT_REACHED:
            self.breaker.record_success()
            logger.warning(
                "VerifyNow send refused: the vendor's limit was reached (800)"
            )
            raise RateLimited(
                retry_after=PROVIDER_LIMIT_RETRY_AFTER, reason=Reason.VENDOR_LIMIT
            )
        if outcome is Outcome.OUT_OF_CREDIT:
            # The vendor is up and answered: not a breaker failure. Every later send
            # fails the same way, so this is an operator's problem: one ERROR line.
            self.breaker.record_success()
            logger.error(
                "VerifyNow account out of credit (508): every send fails until the "
                "account is topped up"
            )
            raise OutOfCredit(endpoint="send", response_code=code)
        if outcome is Outcome.PROVIDER_FAULT or response.status_code >= 500:
            raise self._fault("send", response, code)
        if refuses_channel(code, flow_type):
            # The vendor is up and refused before sending: the caller may try another
            # channel. INFO, not ERROR: a number without WhatsApp is no fault.
            self.breaker.record_success()
            logger.info(
                "VerifyNow send refused on %s: responseCode %s (%s)",
                flow_type,
                code,
                ResponseCode.name_of(code),
            )
            raise ChannelRefused(channel=flow_type, response_code=code)
        raise self._rejected("send", response, code)

    def validate(
        self,
        *,
        verification_id: str,
        code: str,
        country_code: str | None = None,
        national_number: str | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> ValidateResult:
        """Ask VerifyNow whether ``code`` is right for ``verification_id``.

        Wrong, expired, already verified and locked are :class:`ValidateResult`
        outcomes.

        :raises ProviderTimeout: no answer in time: the vendor may have counted the try.
        :raises ProviderUnavailable: the request never reached the vendor (or could not
            start within the deadline).
        :raises ProviderError: refused (505, 700, …) or nonsense; never "verified".

        ``state``: as for :meth:`send`.
        """
        return drive(
            self.validate_flow(
                verification_id=verification_id,
                code=code,
                country_code=country_code,
                national_number=national_number,
                state=state,
            ),
            self._perform,
        )

    def validate_flow(
        self,
        *,
        verification_id: str,
        code: str,
        country_code: str | None = None,
        national_number: str | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> Generator[Exchange, Any, ValidateResult]:
        """:meth:`validate` as a flow (see :mod:`django_verifynow.executor`); its
        deadline starts at its first step."""
        params: dict[str, Any] = {"verificationId": verification_id, "code": code}
        if self.api_version == "v2":
            params["customerId"] = self.customer_id
            if country_code and national_number:
                params["countryCode"] = country_code
                params["mobileNumber"] = national_number
        response, body = yield from self._call(
            Call.VALIDATE, "GET", params, Deadline(self.deadline), state
        )
        response_code = response_code_of(body) if body else None
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
