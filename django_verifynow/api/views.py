"""The verification endpoints: parse, call :mod:`django_verifynow.services`, render.

No policy, vendor call or ORM write happens here: limits, binding, expiry and attempt
counting are the service layer's. The views only translate the outcome of a check
(a state on the returned attempt) into the HTTP contract of :mod:`.errors`.

Cross-site protection: DRF views are CSRF-exempt, and DRF's
``SessionAuthentication`` checks CSRF only for logged-in users, so an anonymous endpoint
would let any web page make visitors' browsers send SMS. :class:`SameSiteCaller`
therefore demands Django's CSRF proof from every caller that is anonymous or
authenticated by session; callers authenticated another way (token, JWT, basic auth)
do not carry ambient browser credentials and are exempt.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import SuspiciousOperation
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.middleware.csrf import get_token
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from rest_framework import parsers, permissions
from rest_framework.authentication import CSRFCheck
from rest_framework.exceptions import (
    AuthenticationFailed,
    ParseError,
    UnsupportedMediaType,
)
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services
from ..exceptions import InvalidInput, InvalidPhoneNumber
from ..models import VerificationAttempt
from . import errors, idempotency
from .serializers import (
    AttemptSerializer,
    ResendSerializer,
    SendSerializer,
    ValidateSerializer,
)

__all__ = [
    "CHECK_ANSWERS",
    "AttemptView",
    "LimitedFormParser",
    "LimitedJSONParser",
    "Plan",
    "ResendView",
    "SameSiteCaller",
    "SendView",
    "ValidateView",
    "VerifyNowAPIView",
]

#: Largest request body the API reads (a code of 10,000 characters still fits).
MAX_BODY_BYTES = 16 * 1024

#: Request bodies the API parses; anything else is refused unread (415).
_ACCEPTED_MEDIA_TYPES = frozenset(
    {"application/json", "application/x-www-form-urlencoded"}
)


@dataclass(frozen=True)
class Plan:
    """What a handler asks of the services, parsed and checked: the sync views make
    the call at once, the async ones await its twin (:mod:`.endpoints`).

    :param service: the sync service's name in :mod:`django_verifynow.services`
        (its async twin is ``"a" + service``).
    :param answer: turns the returned attempt into the response.
    :param field: ``(exception class, request field)``: such an error names that
        field in the error body.
    :param idempotent: ``(operation, payload)`` for :func:`.idempotency.run`.
    """

    service: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    answer: Callable[[VerificationAttempt], Response]
    field: tuple[type[Exception], str] | None = None
    idempotent: tuple[str, dict[str, Any]] | None = None

    def blame(self, exc: Exception) -> None:
        """Name the request field an error of the service is about."""
        if self.field is not None and isinstance(exc, self.field[0]):
            exc.field = self.field[1]  # type: ignore[attr-defined]


def _read_limited(stream: Any) -> bytes:
    if stream is None:
        return b""
    raw = stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise errors.PayloadTooLarge()
    return raw


class LimitedJSONParser(parsers.JSONParser):
    """JSON bodies up to :data:`MAX_BODY_BYTES`; deep nesting is malformed input."""

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        raw = _read_limited(stream)
        try:
            return super().parse(io.BytesIO(raw), media_type, parser_context)
        except RecursionError:
            # json raises RecursionError (not ValueError) on "[[[[...": DRF lets it
            # through as a 500.
            raise ParseError() from None


class LimitedFormParser(parsers.FormParser):
    """Form-encoded bodies up to :data:`MAX_BODY_BYTES`."""

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", "utf-8")
        raw = _read_limited(stream)
        try:
            return QueryDict(raw, encoding=encoding)
        except SuspiciousOperation:  # TooManyFieldsSent: DATA_UPLOAD_MAX_NUMBER_FIELDS
            raise ParseError() from None


def enforce_csrf(request: Request) -> None:
    """Apply Django's CSRF check to ``request``, as DRF's SessionAuthentication does."""

    def dummy_get_response(request: HttpRequest) -> HttpResponse:  # pragma: no cover
        raise AssertionError("never called")

    check = CSRFCheck(dummy_get_response)
    check.process_request(request._request)
    # The view callback is only read for a csrf_exempt flag: the dummy has none.
    if check.process_view(request._request, dummy_get_response, (), {}):
        raise errors.CsrfFailed()


class SameSiteCaller(permissions.BasePermission):
    """Anonymous and session-authenticated callers must pass Django's CSRF check.

    Safe methods always pass (Django's check ignores them). A request authenticated by
    a non-session authenticator (``TokenAuthentication``, a JWT class, …) carries no
    ambient browser credential and is exempt, so API clients keep working.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        """Raise :class:`~.errors.CsrfFailed` for a browser-style call without CSRF."""
        if request.successful_authenticator is not None:
            # Token-style authenticators are exempt; SessionAuthentication has already
            # run its own CSRF check for logged-in users.
            return True
        enforce_csrf(request)
        return True


class VerifyNowAPIView(APIView):
    """Base of the verification views: JSON in and out, the error contract, CSRF for
    browser callers, and optional DRF throttle scopes.

    Throttling: the service layer's limits always apply. As an optional outer layer,
    add ``ScopedRateThrottle`` to ``DEFAULT_THROTTLE_CLASSES`` and a rate for
    ``verifynow_send``, ``verifynow_validate``, ``verifynow_resend`` or
    ``verifynow_read`` to ``DEFAULT_THROTTLE_RATES``; a scope without a rate is off.
    """

    renderer_classes = [JSONRenderer]
    parser_classes = [LimitedJSONParser, LimitedFormParser]
    permission_classes = [SameSiteCaller]
    #: The DRF throttle scope of this endpoint (see the class docstring).
    throttle_scope = ""

    def get_throttles(self) -> list[Any]:
        """The site's throttles, minus scoped ones that have no rate for our scope.

        ScopedRateThrottle raises ImproperlyConfigured for a scope without a rate; our
        scopes are opt-in, so a missing rate means "not throttled here".
        """
        throttles = []
        for throttle in super().get_throttles():
            rates = getattr(throttle, "THROTTLE_RATES", None)
            scoped = getattr(throttle, "scope_attr", None) == "throttle_scope"
            if scoped and isinstance(rates, dict) and self.throttle_scope not in rates:
                continue
            throttles.append(throttle)
        return throttles

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        """Hand out the ``csrftoken`` cookie to a caller that has none (for browser
        callers), with any answer."""
        # Django's CSRF middleware put a valid cookie's secret in META: that caller
        # already holds a token. get_token() would only mask it anew (32 random
        # characters, one system call each) and send the same cookie back.
        if "CSRF_COOKIE" not in request._request.META:
            get_token(request._request)
        return super().finalize_response(request, response, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        """Refuse oversized bodies and unsupported content types before anything reads
        them: Django's CSRF check parses form and multipart bodies itself, with its own
        much larger limits (and temporary files for uploads)."""
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY_BYTES:
            raise errors.PayloadTooLarge()
        content_type = request.META.get("CONTENT_TYPE", "")
        if length and request.method not in ("GET", "HEAD", "OPTIONS"):
            media = content_type.split(";", 1)[0].strip().lower()
            if media not in _ACCEPTED_MEDIA_TYPES:
                raise UnsupportedMediaType(media)
        super().initial(request, *args, **kwargs)

    def perform_authentication(self, request: Request) -> None:
        """Authenticate, turning an authenticator's crash on hostile credentials into
        the contract's ``authentication_failed``.

        The site's authenticators run here (DRF's defaults include
        ``BasicAuthentication``). A NUL byte in a Basic username reaches the user
        lookup, and PostgreSQL refuses it with ``ValueError``: without this, every
        endpoint would answer such a header with a 500.
        """
        try:
            request.user  # noqa: B018 - the property runs the authenticators
        except (ValueError, DatabaseError):
            raise AuthenticationFailed() from None

    def get_exception_handler(self) -> Any:
        """The contract's handler, whatever the project's EXCEPTION_HANDLER."""
        return errors.exception_handler

    def carry_out(self, plan: Plan) -> Response:
        """Make the planned service call (under the plan's idempotency key, if the
        request has one) and answer it."""

        def call() -> Response:
            try:
                attempt = getattr(services, plan.service)(*plan.args, **plan.kwargs)
            except Exception as exc:
                plan.blame(exc)
                raise
            return plan.answer(attempt)

        if plan.idempotent is None:
            return call()
        return idempotency.run(self.request, *plan.idempotent, call)

    def render_attempt(
        self, attempt: VerificationAttempt, status_code: int = 200
    ) -> Response:
        """Render ``attempt`` (201 answers get a ``Location`` header)."""
        data = dict(AttemptSerializer(attempt).data)
        headers = {}
        if status_code == 201:
            location = self._attempt_url(attempt)
            if location:
                headers["Location"] = location
        return Response(data, status=status_code, headers=headers)

    def _attempt_url(self, attempt: VerificationAttempt) -> str | None:
        match = getattr(self.request, "resolver_match", None)
        namespace = getattr(match, "namespace", "") or "verifynow"
        try:
            return reverse(f"{namespace}:attempt", kwargs={"pk": attempt.pk})
        except NoReverseMatch:
            return None


class SendView(VerifyNowAPIView):
    """``POST ""``: send a code to a phone number; 201 with the new attempt.

    The answer is the same for every valid number (no account enumeration).
    """

    throttle_scope = "verifynow_send"

    def post(self, request: Request) -> Response:
        """Send a code (``Idempotency-Key`` supported)."""
        return self.carry_out(self.plan_post(request))

    def plan_post(self, request: Request) -> Plan:
        """Parse the request into the ``send_otp`` call."""
        serializer = SendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return Plan(
            "send_otp",
            (data["phone_number"],),
            {
                "request": request,
                "purpose": data["purpose"],
                "flow_type": data["channel"],
                "region": data.get("country") or None,
            },
            answer=lambda attempt: self.render_attempt(attempt, 201),
            field=(InvalidPhoneNumber, "phone_number"),
            # Without a channel, the fingerprint is the one such requests always had.
            idempotent=(
                "send",
                {k: v for k, v in data.items() if k != "channel" or v is not None},
            ),
        )


class AttemptView(VerifyNowAPIView):
    """``GET "<id>/"``: read an attempt (status polling)."""

    throttle_scope = "verifynow_read"

    def get(self, request: Request, pk: str) -> Response:
        """The attempt, or 404 ``not_found``."""
        return self.render_attempt(services.get_attempt(pk, request=request))


#: The answer to each check result: ``None`` renders the attempt (200), a class is the
#: contract error raised. One lookup, so every result has exactly one answer.
CHECK_ANSWERS: dict[services.CheckResult, type[errors.APIError] | None] = {
    services.CheckResult.VERIFIED: None,
    services.CheckResult.ALREADY_VERIFIED: None,
    services.CheckResult.WRONG_CODE: errors.InvalidCode,
    services.CheckResult.LOCKED: errors.InvalidCode,
    services.CheckResult.ALREADY_LOCKED: errors.TooManyAttempts,
    services.CheckResult.EXPIRED: errors.CodeExpired,
    services.CheckResult.ALREADY_SETTLED: errors.CodeExpired,
}


def _seconds_until(moment: datetime) -> int:
    return max(1, int((moment - timezone.now()).total_seconds() + 0.999))


class ValidateView(VerifyNowAPIView):
    """``POST "<id>/validate/"``: check a code; 200 with the verified attempt."""

    throttle_scope = "verifynow_validate"

    def post(self, request: Request, pk: str) -> Response:
        """Check the code and map the attempt's new state to the contract."""
        return self.carry_out(self.plan_post(request, pk))

    def plan_post(self, request: Request, pk: str) -> Plan:
        """Parse the request into the ``validate_otp`` call."""
        serializer = ValidateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Plan(
            "validate_otp",
            (pk, serializer.validated_data["code"]),
            {"request": request},
            answer=self.answer_check,
            field=(InvalidInput, "code"),
        )

    def answer_check(self, attempt: VerificationAttempt) -> Response:
        """The contract's answer to the attempt's ``check_result``."""
        answer = CHECK_ANSWERS[attempt.check_result]
        if answer is None:
            return self.render_attempt(attempt)  # also when already verified
        if answer is errors.InvalidCode:
            # Wrong, with checks left or locked by this very check (0 left).
            raise errors.InvalidCode(attempts_left=attempt.attempts_left)
        if answer is errors.TooManyAttempts:
            # Out of checks, no vendor call made: wait for a new code.
            raise errors.TooManyAttempts(
                retry_after=_seconds_until(services.resend_available_at(attempt))
            )
        raise answer()


class ResendView(VerifyNowAPIView):
    """``POST "<id>/resend/"``: a new code to the same phone; 201 with a new attempt."""

    throttle_scope = "verifynow_resend"

    def post(self, request: Request, pk: str) -> Response:
        """Resend (``Idempotency-Key`` supported)."""
        return self.carry_out(self.plan_post(request, pk))

    def plan_post(self, request: Request, pk: str) -> Plan:
        """The ``resend_otp`` call of this request (an empty body is fine)."""
        serializer = ResendSerializer(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        channel = serializer.validated_data.get("channel")
        fingerprint = {"attempt": str(pk)}
        if channel:  # requests without one keep the fingerprint they always had
            fingerprint["channel"] = channel
        return Plan(
            "resend_otp",
            (pk,),
            {"request": request, "flow_type": channel},
            answer=lambda attempt: self.render_attempt(attempt, 201),
            idempotent=("resend", fingerprint),
        )


# drf-spectacular annotations, registered only when drf-spectacular is installed.
from . import schema as _schema  # noqa: E402,F401
