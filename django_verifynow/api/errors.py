"""The one error contract of the HTTP API.

Every failure, DRF's own included, is answered with a JSON body::

    {"code": "<stable machine code>", "detail": "<translated text>", ...extra}

and the status of :data:`ERROR_CODES`. ``429`` and ``503`` answers always carry a
``Retry-After`` header and a ``retry_after`` member (seconds). No vendor text, stack
trace, provider id or full phone number ever reaches a body: the ``detail`` of
service-layer errors is either the exception's own translated, PII-free message (input
errors) or the class's generic text (everything else).

:func:`exception_handler` is set on the API views themselves
(``get_exception_handler``), so the contract holds whatever
``REST_FRAMEWORK["EXCEPTION_HANDLER"]`` the site uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from ..exceptions import (
    AttemptNotFound,
    ChannelRefused,
    DailyCapReached,
    InvalidInput,
    InvalidPhoneNumber,
    PhoneNumberNotAllowed,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    VerifyNowError,
)

__all__ = [
    "ERROR_CODES",
    "SERVICE_ANSWERS",
    "APIError",
    "CodeExpired",
    "CsrfFailed",
    "IdempotencyMismatch",
    "InvalidCode",
    "PayloadTooLarge",
    "RequestInProgress",
    "TooManyAttempts",
    "error_response",
    "exception_handler",
]

#: Every ``code`` the API answers with, and its HTTP status(es). The OpenAPI schema and
#: docs/api.md are generated from / checked against this table.
ERROR_CODES: dict[str, tuple[int, ...]] = {
    "invalid_input": (400, 413, 415),
    "invalid_phone": (400,),
    "phone_not_allowed": (400,),
    "invalid_code": (400,),
    "code_expired": (400,),
    "not_authenticated": (401,),
    "authentication_failed": (401,),
    "csrf_failed": (403,),
    "permission_denied": (403,),
    "not_found": (404,),
    "method_not_allowed": (405,),
    "not_acceptable": (406,),
    "in_progress": (409,),
    "idempotency_mismatch": (422,),
    "too_many_attempts": (429,),
    "rate_limited": (429,),
    "provider_error": (502,),
    "provider_unavailable": (503,),
}

#: Statuses whose answers always carry ``Retry-After``.
RETRY_AFTER_STATUSES = frozenset({429, 503})

# One text for every 404, whatever the cause (unknown id, malformed id, another
# session's attempt): nothing tells an attacker that an id exists (OWASP API1).
_NOT_FOUND = AttemptNotFound.default_message
_MALFORMED = _("The request body is not valid JSON or form data.")
_CSRF = _(
    "This request needs a CSRF token: send the csrftoken cookie's value in the "
    "X-CSRFToken header."
)


class APIError(Exception):
    """An error of the HTTP contract raised by the API layer itself.

    Used for the outcomes of a code check (the service returns them as states) and for
    the idempotency and request-size refusals. ``extra`` members go into the body.
    """

    status_code: int = status.HTTP_400_BAD_REQUEST
    code: str = "invalid_input"
    default_detail: Any = InvalidInput.default_message

    def __init__(
        self, detail: Any = None, *, retry_after: int | None = None, **extra: Any
    ) -> None:
        self.detail = detail if detail is not None else self.default_detail
        self.retry_after = retry_after
        self.extra = extra
        super().__init__(self.code)


class InvalidCode(APIError):
    """The code was wrong; ``attempts_left`` in the body says how many checks remain."""

    code = "invalid_code"
    default_detail = _("The code is not correct.")

    def __init__(self, *, attempts_left: int) -> None:
        if attempts_left:
            detail = _("The code is not correct. Please try again.")
        else:
            detail = _(
                "The code is not correct, and no attempts are left. Request a new code."
            )
        super().__init__(detail, attempts_left=attempts_left)


class CodeExpired(APIError):
    """The attempt expired, failed or was replaced: a new code is needed."""

    code = "code_expired"
    default_detail = _("This code has expired. Request a new code.")


class TooManyAttempts(APIError):
    """The attempt is out of checks (locked); no vendor call was made."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    code = "too_many_attempts"
    default_detail = _("Too many wrong codes. Request a new code.")


class IdempotencyMismatch(APIError):
    """An ``Idempotency-Key`` reused with a different request."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "idempotency_mismatch"
    default_detail = _("This Idempotency-Key was already used for a different request.")


class RequestInProgress(APIError):
    """The first request with this ``Idempotency-Key`` has not finished yet."""

    status_code = status.HTTP_409_CONFLICT
    code = "in_progress"
    default_detail = _(
        "A request with this Idempotency-Key is still being processed. "
        "Try again shortly."
    )


class PayloadTooLarge(APIError):
    """The request body is over the API's size limit."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "invalid_input"
    default_detail = _("The request body is too large.")


class CsrfFailed(drf_exceptions.PermissionDenied):
    """An anonymous or session caller did not prove it comes from this site."""

    default_detail = _CSRF
    default_code = "csrf_failed"


def error_response(
    status_code: int,
    code: str,
    detail: Any,
    *,
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """Build a contract error response (``Retry-After`` added for 429 and 503)."""
    body: dict[str, Any] = {"code": code, "detail": str(detail)}
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = dict(headers or {})
    if status_code in RETRY_AFTER_STATUSES:
        seconds = max(1, int(retry_after or 1))
        body["retry_after"] = seconds
        headers["Retry-After"] = str(seconds)
    return Response(body, status=status_code, headers=headers)


@dataclass(frozen=True)
class _Answer:
    status: int
    code: str
    #: True: the exception's own message is shown (translated, PII-free input errors
    #: and waits); False: the generic text of ``text_of``.
    own_message: bool = False
    text_of: type[VerifyNowError] = VerifyNowError


#: The answer to each service exception, looked up along the exception's MRO so a
#: subclass answers as its nearest listed class. One table, no string branching.
SERVICE_ANSWERS: dict[type[VerifyNowError], _Answer] = {
    InvalidPhoneNumber: _Answer(400, InvalidPhoneNumber.code, own_message=True),
    InvalidInput: _Answer(400, InvalidInput.code, own_message=True),
    # One generic text whatever the reason (country, number type).
    PhoneNumberNotAllowed: _Answer(
        400, PhoneNumberNotAllowed.code, text_of=PhoneNumberNotAllowed
    ),
    AttemptNotFound: _Answer(404, AttemptNotFound.code, text_of=AttemptNotFound),
    # The site's spend cap is our service being unavailable, not this caller going
    # too fast.
    DailyCapReached: _Answer(
        503, ProviderUnavailable.code, text_of=ProviderUnavailable
    ),
    # Generic unless the policy explains the wait (a code still valid for N s).
    RateLimited: _Answer(429, RateLimited.code, own_message=True),
    # LimitsUnavailable (the limits cache is down) answers as this too.
    ProviderUnavailable: _Answer(
        503, ProviderUnavailable.code, text_of=ProviderUnavailable
    ),
    # Our own text naming the channel (never the vendor's): the user can act on it,
    # by asking for another channel the site offers.
    ChannelRefused: _Answer(502, ProviderError.code, own_message=True),
    # OutOfCredit too: the user cannot act on the site's billing, the operator is told.
    ProviderError: _Answer(502, ProviderError.code, text_of=ProviderError),
}


def _service_error(exc: VerifyNowError) -> Response:
    answer = next(
        (SERVICE_ANSWERS[k] for k in type(exc).__mro__ if k in SERVICE_ANSWERS),
        _Answer(400, InvalidInput.code),
    )
    detail = exc.message if answer.own_message else answer.text_of.default_message
    field = getattr(exc, "field", None)
    fields = {field: [str(exc.message)]} if field and answer.own_message else None
    return error_response(
        answer.status,
        answer.code,
        detail,
        retry_after=getattr(exc, "retry_after", None),
        fields=fields if answer.status == 400 else None,
    )


def _drf_fields(detail: Any) -> dict[str, list[str]]:
    """Flatten DRF's nested ``ValidationError.detail`` into ``{field: [messages]}``."""
    non_field = api_settings.NON_FIELD_ERRORS_KEY
    if isinstance(detail, dict):
        fields: dict[str, list[str]] = {}
        for name, value in detail.items():
            messages = _drf_fields(value)
            fields[str(name)] = [m for msgs in messages.values() for m in msgs]
        return fields
    if isinstance(detail, list):
        flat: list[str] = []
        for item in detail:
            for item_messages in _drf_fields(item).values():
                flat.extend(item_messages)
        return {non_field: flat}
    return {non_field: [str(detail)]}


def _drf_error(exc: drf_exceptions.APIException) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, drf_exceptions.ValidationError):
        fields = _drf_fields(exc.detail)
        first = next((m for msgs in fields.values() for m in msgs), None)
        return error_response(
            400, "invalid_input", first or InvalidInput.default_message, fields=fields
        )
    if isinstance(exc, drf_exceptions.ParseError):
        # DRF's text quotes the JSON decoder's message; ours is generic.
        return error_response(400, "invalid_input", _MALFORMED)
    if isinstance(exc, drf_exceptions.UnsupportedMediaType):
        return error_response(415, "invalid_input", exc.detail)
    if isinstance(exc, drf_exceptions.Throttled):
        seconds = exc.wait  # type: ignore[attr-defined]  # set in __init__, not in stubs
        wait = math.ceil(seconds) if seconds is not None else 60
        return error_response(
            429, "rate_limited", RateLimited.default_message, retry_after=wait
        )
    if isinstance(exc, drf_exceptions.NotFound):
        return error_response(404, "not_found", _NOT_FOUND)
    if isinstance(exc, drf_exceptions.MethodNotAllowed):
        return error_response(405, "method_not_allowed", exc.detail)
    if isinstance(exc, drf_exceptions.NotAcceptable):
        return error_response(406, "not_acceptable", exc.detail)
    if isinstance(
        exc, (drf_exceptions.NotAuthenticated, drf_exceptions.AuthenticationFailed)
    ):
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        code = (
            "authentication_failed"
            if isinstance(exc, drf_exceptions.AuthenticationFailed)
            else "not_authenticated"
        )
        return error_response(exc.status_code, code, exc.detail, headers=headers)
    if isinstance(exc, drf_exceptions.PermissionDenied):
        # DRF's SessionAuthentication raises "CSRF Failed: <reason>" for logged-in
        # users.
        is_csrf = isinstance(exc, CsrfFailed) or str(exc.detail).startswith(
            "CSRF Failed"
        )
        if is_csrf:
            return error_response(403, "csrf_failed", _CSRF)
        return error_response(403, "permission_denied", exc.detail)
    status_code = exc.status_code
    code = "invalid_input" if 400 <= status_code < 500 else "provider_unavailable"
    detail = exc.detail if not isinstance(exc.detail, (list, dict)) else _MALFORMED
    return error_response(
        status_code, code, detail, retry_after=getattr(exc, "wait", None)
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler implementing the contract for the verification views.

    Returns ``None`` (Django's 500 page, logged as usual) only for real bugs: anything
    that is neither a :class:`VerifyNowError`, an :class:`APIError` nor a DRF error.
    """
    if isinstance(exc, APIError):
        return error_response(
            exc.status_code,
            exc.code,
            exc.detail,
            retry_after=exc.retry_after,
            **exc.extra,
        )
    if isinstance(exc, VerifyNowError):
        # Deliberately no set_rollback(): the services record failures (an "unknown"
        # send, a counted check) that must survive the error answer.
        return _service_error(exc)
    if isinstance(exc, RequestDataTooBig):
        return error_response(413, "invalid_input", PayloadTooLarge.default_detail)
    if isinstance(exc, SuspiciousOperation):
        # TooManyFieldsSent and friends, raised when Django's CSRF check parses a form
        # body; Django would answer with its HTML 400 page.
        return error_response(400, "invalid_input", _MALFORMED)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, drf_exceptions.APIException):
        set_rollback()
        return _drf_error(exc)
    return None
