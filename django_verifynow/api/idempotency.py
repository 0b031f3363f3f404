"""Optional ``Idempotency-Key`` on send and resend.

A client that is unsure whether its send went through (a dropped connection, a mobile
app retrying) repeats the request with the same ``Idempotency-Key`` header and gets the
first answer back instead of a second SMS:

* same key, same request, within :data:`REPLAY_TTL` seconds: the stored response is
  replayed (same status and body, plus ``Idempotent-Replayed: true``);
* same key, different request (another phone, another attempt): 422
  ``idempotency_mismatch``;
* same key while the first request is still running: 409 ``in_progress``.

Only successful (2xx) answers are stored: after an error the key is free again, so a
client may retry a refused or failed request once the cause is gone (the cooldown and
the limits still apply to that retry).

Records live in the cache alias ``VERIFYNOW["CACHE"]``, keyed by an HMAC of the key and
of the caller (the user when authenticated, else the client IP), so one caller can
never replay another's answer. The cache being down fails closed (503), like the limits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from django.core.cache import caches
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _
from rest_framework.request import Request
from rest_framework.response import Response

from ..conf import verifynow_settings
from ..exceptions import InvalidInput, LimitsUnavailable
from ..services.requester import client_ip
from .errors import IdempotencyMismatch, RequestInProgress

__all__ = ["HEADER", "IN_FLIGHT_TTL", "KEY_PATTERN", "REPLAY_TTL", "run"]

logger = logging.getLogger("django_verifynow.api")

HEADER = "Idempotency-Key"
#: How long a finished request's answer is replayed (10 minutes).
REPLAY_TTL = 600
#: How long an unfinished request holds its key: longer than the slowest send
#: (connect + read timeouts, one retry), short enough that a crashed worker's key frees.
IN_FLIGHT_TTL = 120
#: 1 to 255 printable ASCII characters without spaces (a UUID is the usual choice).
KEY_PATTERN = r"^[!-~]{1,255}$"
_KEY_RE = re.compile(KEY_PATTERN)

_IN_FLIGHT = "in_flight"
_DONE = "done"


def _caller(request: Request) -> str:
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    return f"ip:{client_ip(request) or '-'}"


def _cache_key(request: Request, key: str) -> str:
    digest = salted_hmac(
        "django_verifynow.api.idempotency",
        f"{_caller(request)}\0{key}",
        algorithm="sha256",
    ).hexdigest()[:40]
    return f"verifynow:idem:{digest}"


def _fingerprint(operation: str, payload: Mapping[str, Any]) -> str:
    canonical = json.dumps(
        {"operation": operation, "payload": dict(payload)}, sort_keys=True, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _unavailable(exc: BaseException) -> LimitsUnavailable:
    # No key, number or payload in the log line: the exception type says enough.
    logger.error("verifynow idempotency store unavailable: %s", type(exc).__name__)
    return LimitsUnavailable(retry_after=60)


def _replay(record: Mapping[str, Any]) -> Response:
    headers = {"Idempotent-Replayed": "true", **record.get("headers", {})}
    return Response(record["data"], status=record["status"], headers=headers)


def run(
    request: Request,
    operation: str,
    payload: Mapping[str, Any],
    call: Callable[[], Response],
) -> Response:
    """Run ``call`` once per ``Idempotency-Key`` (if the request has one).

    :param operation: names the endpoint (``"send"``, ``"resend"``): a key reused on
        another endpoint is a different request.
    :param payload: the parsed request (JSON-serialisable), compared on replay.
    :raises InvalidInput: the header is malformed.
    :raises IdempotencyMismatch: the key was used for a different request.
    :raises RequestInProgress: the first request with this key is still running.
    :raises LimitsUnavailable: the cache is down.
    """
    key = request.headers.get(HEADER)
    if key is None:
        return call()
    if not _KEY_RE.match(key):
        exc = InvalidInput(
            _("The Idempotency-Key header must be 1 to 255 printable ASCII characters.")
        )
        exc.field = HEADER  # type: ignore[attr-defined]
        raise exc
    cache_key = _cache_key(request, key)
    fingerprint = _fingerprint(operation, payload)
    try:
        cache = caches[verifynow_settings.CACHE]
        claimed = cache.add(
            cache_key, {"state": _IN_FLIGHT, "fp": fingerprint}, IN_FLIGHT_TTL
        )
        record = None if claimed else cache.get(cache_key)
        if not claimed and record is None:
            # The record expired between add() and get(): claim it once more.
            claimed = cache.add(
                cache_key, {"state": _IN_FLIGHT, "fp": fingerprint}, IN_FLIGHT_TTL
            )
    except Exception as exc:  # any cache backend error: fail closed
        raise _unavailable(exc) from None

    if not claimed:
        if record is None:
            raise RequestInProgress()
        if record.get("fp") != fingerprint:
            raise IdempotencyMismatch()
        if record.get("state") != _DONE:
            raise RequestInProgress()
        return _replay(record)

    try:
        response = call()
    except BaseException:
        _forget(cache, cache_key)
        raise
    if 200 <= response.status_code < 300:
        headers = (
            {"Location": response["Location"]}
            if response.has_header("Location")
            else {}
        )
        record = {
            "state": _DONE,
            "fp": fingerprint,
            "status": response.status_code,
            "data": response.data,
            "headers": headers,
        }
        try:
            cache.set(cache_key, record, REPLAY_TTL)
        except Exception as exc:
            # The code has gone out: answer it; a retry will meet the cooldown instead.
            logger.error(
                "verifynow idempotency record not stored: %s", type(exc).__name__
            )
    else:
        _forget(cache, cache_key)
    return response


def _forget(cache: Any, cache_key: str) -> None:
    try:
        cache.delete(cache_key)
    except Exception as exc:
        logger.error("verifynow idempotency record not cleared: %s", type(exc).__name__)
