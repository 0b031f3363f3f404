"""The VerifyNow wire protocol: token, send, validate.

This package is the only place that talks to Message Central (or to the sandbox, which
speaks the same protocol). It knows nothing of models or policy: it turns a call into
HTTP, and the vendor's answer into a :class:`SendResult`, a :class:`ValidateResult` or
an exception from :mod:`django_verifynow.exceptions`, each with a typed
:class:`~django_verifynow.reasons.Reason`.

Modules:

* :mod:`.calls`: :class:`VerifyNowClient`, its ``send`` and ``validate``;
* :mod:`.factory`: :func:`get_client` (and :func:`get_async_client`), the client for
  the current settings;
* :mod:`.aio`: :class:`~.aio.AsyncVerifyNowClient`, the same calls awaited over
  ``httpx`` (the ``async`` extra);
* :mod:`.token`: fetching and caching the auth token;
* :mod:`.transport`: HTTP exchanges, transport failures and redaction;
* :mod:`.breaker`: the :class:`CircuitBreaker` shared through the cache;
* :mod:`.deadline`: the time budget of one call, and the clocks;
* :mod:`.results`: :class:`SendResult`, :class:`ValidateResult` and field parsing.

Vendor quirks handled here:

* Parameters travel in the query string, the body is empty; ``key`` is the Base64 of the
  password, URL-encoded (``requests`` encodes ``+ / =``).
* The outcome is in the body's ``responseCode`` whatever the HTTP status; the status
  only tells us about transport-level faults.
* Token errors arrive as HTTP 200 with ``{"status": 400, "error": "..."}``.
* ``verificationId`` is a string in send answers and a number in validate answers;
  ``timeout`` is ``"60"`` or ``"60.0"``; ``data`` is ``null`` on failures.
* 506 (a code is already pending) carries the pending ``verificationId`` to reuse;
  508 means the account is out of credit.

The three clocks below are the package's patch points: every submodule reads them here
at call time, so patching ``django_verifynow.client._now`` (or ``_sleep``,
``_monotonic``) reaches all of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .breaker import CircuitBreaker
from .calls import DEFAULT_DEADLINE, PATHS, PROVIDER_LIMIT_RETRY_AFTER, VerifyNowClient
from .deadline import MIN_REQUEST_SECONDS, Deadline
from .factory import get_async_client, get_client
from .results import SendResult, ValidateResult
from .token import (
    TOKEN_ATTEMPTS,
    TOKEN_BACKOFF,
    TOKEN_DEFAULT_TTL,
    TOKEN_EXPIRY_MARGIN,
    TOKEN_LOCK_TIMEOUT,
    TOKEN_MAX_RETRY_AFTER,
    TOKEN_PATH,
    TOKEN_RETRY_STATUSES,
    TokenSource,
)
from .transport import RedactQueryStringFilter, Transport, redact

__all__ = [
    "DEFAULT_DEADLINE",
    "MIN_REQUEST_SECONDS",
    "PATHS",
    "PROVIDER_LIMIT_RETRY_AFTER",
    "TOKEN_ATTEMPTS",
    "TOKEN_BACKOFF",
    "TOKEN_DEFAULT_TTL",
    "TOKEN_EXPIRY_MARGIN",
    "TOKEN_LOCK_TIMEOUT",
    "TOKEN_MAX_RETRY_AFTER",
    "TOKEN_PATH",
    "TOKEN_RETRY_STATUSES",
    "CircuitBreaker",
    "Deadline",
    "RedactQueryStringFilter",
    "SendResult",
    "TokenSource",
    "Transport",
    "ValidateResult",
    "VerifyNowClient",
    "get_async_client",
    "get_client",
    "redact",
]

#: Patched by tests (and time-machine moves it): seconds since the epoch.
_now: Callable[[], float] = time.time
#: Patched by tests so retry back-off does not slow the suite down.
_sleep: Callable[[float], None] = time.sleep
#: The clock of every :class:`Deadline`; patched by tests that fake elapsed time.
_monotonic: Callable[[], float] = time.monotonic
