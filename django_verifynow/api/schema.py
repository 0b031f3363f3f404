"""OpenAPI annotations for drf-spectacular (the ``openapi`` extra), kept in the app.

Nothing here is imported unless drf-spectacular is installed: the views import this
module, which registers one ``OpenApiViewExtension`` per view only when
``drf_spectacular`` can be found. The extensions give each operation its request body,
every success and error response (one ``VerifyNowError`` schema with the stable codes),
the ``Retry-After`` and ``Idempotency-Key`` headers, and a UUID path parameter. They
also give the views drf-spectacular's ``AutoSchema`` whatever the project's
``DEFAULT_SCHEMA_CLASS``, so the schema generates without extra settings.

Serve it in a project with ``pip install django-verifynow[openapi]``,
``drf_spectacular`` in ``INSTALLED_APPS`` and ``SpectacularAPIView`` (see docs/api.md).
"""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["ERROR_RESPONSES", "register", "spectacular_available"]

_VIEWS = "django_verifynow.api.views"

#: Which error codes each status carries, for the response descriptions.
ERROR_RESPONSES: dict[int, str] = {
    400: "`invalid_input` (with `fields`), `invalid_phone`, `phone_not_allowed`, "
    "`invalid_code` (with `attempts_left`), `code_expired`",
    401: "`not_authenticated`, `authentication_failed` (a rejected Authorization)",
    403: "`csrf_failed` (browser callers must send X-CSRFToken), `permission_denied`",
    404: "`not_found`: unknown, malformed or someone else's id (one body for all)",
    409: "`in_progress`: the first request with this Idempotency-Key is still running",
    413: "`invalid_input`: the body is over 16 KiB",
    415: "`invalid_input`: send application/json or application/x-www-form-urlencoded",
    422: "`idempotency_mismatch`: the Idempotency-Key was used for a different request",
    429: "`too_many_attempts` or `rate_limited`, with `retry_after` and Retry-After",
    502: "`provider_error`: the SMS provider refused or answered nonsense",
    503: "`provider_unavailable`, with `retry_after` and Retry-After",
}

_registered = False


def spectacular_available() -> bool:
    """Whether drf-spectacular is installed."""
    return importlib.util.find_spec("drf_spectacular") is not None


def register() -> None:
    """Register the view extensions with drf-spectacular (idempotent)."""
    global _registered
    if _registered or not spectacular_available():
        return
    _registered = True

    from drf_spectacular.extensions import OpenApiViewExtension
    from drf_spectacular.openapi import AutoSchema
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import (
        OpenApiExample,
        OpenApiParameter,
        OpenApiResponse,
        extend_schema,
    )

    from .idempotency import HEADER, KEY_PATTERN

    class VerifyNowAutoSchema(AutoSchema):
        """Declares anonymous access: the endpoints need no credentials (a browser
        proves it comes from the site with CSRF instead), which spectacular cannot see
        in the custom permission class."""

        def get_auth(self) -> list[Any]:
            auths = list(super().get_auth())
            if {} not in auths:
                auths.append({})
            return auths

    from .serializers import (
        AttemptSerializer,
        ErrorSerializer,
        ResendSerializer,
        SendSerializer,
        ValidateSerializer,
    )

    def errors(*statuses: int) -> dict[int, Any]:
        return {
            code: OpenApiResponse(ErrorSerializer, description=ERROR_RESPONSES[code])
            for code in statuses
        }

    retry_after = OpenApiParameter(
        "Retry-After",
        OpenApiTypes.INT,
        OpenApiParameter.HEADER,
        response=[429, 503],
        description="Seconds to wait before trying again.",
    )
    attempt_id = OpenApiParameter(
        "id",  # drf-spectacular names a "pk" path segment "id"
        OpenApiTypes.UUID,
        OpenApiParameter.PATH,
        description="The attempt's id (as returned by send or resend).",
    )
    idempotency_key = OpenApiParameter(
        HEADER,
        {"type": "string", "minLength": 1, "maxLength": 255, "pattern": KEY_PATTERN},
        OpenApiParameter.HEADER,
        required=False,
        description=(
            "Optional. Repeating a request with the same key within 10 minutes replays "
            "the first successful answer instead of sending another code (422 for a "
            "different request, 409 while the first is running)."
        ),
    )
    replayed = OpenApiParameter(
        "Idempotent-Replayed",
        OpenApiTypes.STR,
        OpenApiParameter.HEADER,
        response=[201],
        description='"true" when the answer is a replay of an earlier request.',
    )
    common = (401, 403, 413, 415, 429, 502, 503)
    csrf_note = (
        " Callers without an Authorization header (browsers, anonymous clients) must "
        "send the X-CSRFToken header with the value of the csrftoken cookie, which "
        "every answer of this API sets (a GET of any attempt URL is enough); "
        "token-authenticated clients need not."
    )

    operations: dict[str, dict[str, Any]] = {
        "SendView": {
            "method": "post",
            "operation_id": "verifynow_send",
            "summary": "Send a verification code",
            "description": (
                "Sends a one-time code to the number and returns the new attempt. The "
                "answer is the same for every valid number. code_sent is false when "
                "VerifyNow kept the code it had already sent to the number (no new "
                "message went out: the user enters that code). channel picks the "
                "first channel to try (one of the site's CHANNELS); when VerifyNow "
                "refuses it as not deliverable, the same request sends on the next "
                "channel listed and fallback_from names the refused one (one send "
                "counted). A refusal on the last channel is 502 provider_error, "
                "nothing counted." + csrf_note
            ),
            "request": SendSerializer,
            "examples": [
                OpenApiExample(
                    "A mobile number",
                    value={"phone_number": "+447400123456"},
                    request_only=True,
                ),
            ],
            "responses": {201: AttemptSerializer, **errors(400, 409, 422, *common)},
            "parameters": [idempotency_key, retry_after, replayed],
        },
        "AttemptView": {
            "method": "get",
            "operation_id": "verifynow_attempt",
            "summary": "Read an attempt",
            "description": "The attempt's current state, for status polling.",
            "responses": {200: AttemptSerializer, **errors(401, 403, 404, 429)},
            "parameters": [attempt_id, retry_after],
        },
        "ValidateView": {
            "method": "post",
            "operation_id": "verifynow_validate",
            "summary": "Check a code",
            "description": (
                "200 with the verified attempt (also when it was already verified). "
                "A wrong code is 400 invalid_code with attempts_left; out of attempts "
                "is 429 too_many_attempts; an expired or replaced attempt is 400 "
                "code_expired." + csrf_note
            ),
            "request": ValidateSerializer,
            "examples": [
                OpenApiExample("A code", value={"code": "123456"}, request_only=True),
            ],
            "responses": {200: AttemptSerializer, **errors(400, 404, *common)},
            "parameters": [attempt_id, retry_after],
        },
        "ResendView": {
            "method": "post",
            "operation_id": "verifynow_resend",
            "summary": "Send a new code to the same phone",
            "description": (
                "Returns a new attempt; the previous one stops working once the new "
                "code went out (a failed resend leaves it valid). The resend cooldown, "
                "which lasts at least as long as the code already sent is valid, and "
                "the send limits apply. The new code goes out on the channel that "
                'delivered the previous one, or on channel ("Send by SMS '
                'instead").' + csrf_note
            ),
            "request": ResendSerializer,
            "responses": {
                201: AttemptSerializer,
                **errors(400, 404, 409, 422, *common),
            },
            "parameters": [attempt_id, idempotency_key, retry_after, replayed],
        },
    }

    for view_name, kwargs in operations.items():
        method = kwargs.pop("method")
        _make_extension(
            OpenApiViewExtension,
            VerifyNowAutoSchema,
            extend_schema,
            view_name,
            method,
            {"tags": ["verifynow"], **kwargs},
        )


def _make_extension(
    base: Any,
    auto_schema: Any,
    extend_schema: Any,
    view_name: str,
    method: str,
    kwargs: dict[str, Any],
) -> None:
    def view_replacement(self: Any) -> Any:
        original = getattr(self.target_class, method)

        # A wrapper carries the annotation, so the real view's method stays untouched.
        def handler(view: Any, *args: Any, **kw: Any) -> Any:
            return original(view, *args, **kw)

        # extend_schema builds on a function's own ``schema`` first: spectacular's
        # AutoSchema then, even when DEFAULT_SCHEMA_CLASS is still DRF's.
        handler.schema = auto_schema()  # type: ignore[attr-defined]
        return type(
            view_name,
            (self.target_class,),
            {"schema": auto_schema(), method: extend_schema(**kwargs)(handler)},
        )

    # Subclassing registers the extension with drf-spectacular.
    type(
        f"{view_name}Extension",
        (base,),
        {"target_class": f"{_VIEWS}.{view_name}", "view_replacement": view_replacement},
    )


register()
