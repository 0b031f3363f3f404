"""The exception tree of django-verifynow.

Refusals and failures raise one of these; expected outcomes of a check (wrong code,
expired, locked) are states on the returned attempt instead. Every message here is safe
to show or log: no secret, code, vendor text or full phone number ever goes into one.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

__all__ = [
    "AttemptNotFound",
    "InvalidInput",
    "InvalidPhoneNumber",
    "PhoneNumberNotAllowed",
    "ProviderAuthError",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimited",
    "VerifyNowConfigurationError",
    "VerifyNowError",
]


class VerifyNowError(Exception):
    """Base of every refusal or failure raised by django-verifynow.

    :attr:`code` is the stable machine code of the HTTP error contract, :attr:`message`
    a translated text fit for an end user.
    """

    code: str = "error"
    default_message: str | Promise = _("Phone verification failed.")

    def __init__(self, message: str | Promise | None = None) -> None:
        self.message: str | Promise = (
            message if message is not None else self.default_message
        )
        super().__init__(str(self.message))


class InvalidPhoneNumber(VerifyNowError, ValueError):
    """The input is not a valid phone number."""

    code = "invalid_phone"
    default_message = _("Enter a valid phone number, including the country code.")


class InvalidInput(VerifyNowError, ValueError):
    """Malformed input other than a phone number: a code that is not ``OTP_LENGTH``
    ASCII digits, an unknown channel or purpose. Refused before any vendor call."""

    code = "invalid_input"
    default_message = _("The request is not valid.")


class PhoneNumberNotAllowed(VerifyNowError):
    """The number is valid, but policy refuses its country or number type.

    :attr:`reason` is for logs and signals (``"country"``, ``"number_type"``,
    ``"prefix"``); it is never shown to the user, who gets one generic message.
    """

    code = "phone_not_allowed"
    default_message = _("Verification codes cannot be sent to this phone number.")

    def __init__(
        self, message: str | Promise | None = None, *, reason: str = "policy"
    ) -> None:
        super().__init__(message)
        self.reason = reason


class RateLimited(VerifyNowError):
    """A limit was hit; try again after :attr:`retry_after` seconds.

    :attr:`scope` says which limit for logs and signals: ``"send"``, ``"validate"``,
    ``"validate_failure"``, ``"resend"``, ``"cooldown"``, ``"prefix"`` (a blocked number
    prefix), ``"daily_cap"``, ``"provider"`` (VerifyNow's own limit) or ``"unavailable"``
    (the limit store is down: fail closed). Users get one generic text.
    """

    code = "rate_limited"
    default_message = _("Too many requests. Please wait before trying again.")

    def __init__(
        self,
        message: str | Promise | None = None,
        *,
        retry_after: int = 60,
        scope: str = "",
    ) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
        self.scope = scope


class AttemptNotFound(VerifyNowError, LookupError):
    """No such attempt, or one bound to another session or user (same error on purpose)."""

    code = "not_found"
    default_message = _("This verification does not exist or has been replaced.")


class ProviderError(VerifyNowError):
    """VerifyNow refused the request or answered nonsense.

    :attr:`response_code` is the vendor's body ``responseCode`` when there was one; the
    vendor's own text is never kept.
    """

    code = "provider_error"
    default_message = _("The verification service could not process the request.")

    def __init__(
        self,
        message: str | Promise | None = None,
        *,
        response_code: int | None = None,
        endpoint: str = "",
    ) -> None:
        super().__init__(message)
        self.response_code = response_code
        self.endpoint = endpoint

    def __str__(self) -> str:
        detail = f" [{self.endpoint} responseCode={self.response_code}]"
        return str(self.message) + (detail if self.endpoint else "")


class ProviderAuthError(ProviderError):
    """The token endpoint refused the credentials, or a fresh token was refused too."""


class ProviderUnavailable(VerifyNowError):
    """VerifyNow could not be reached in time, or the circuit breaker is open."""

    code = "provider_unavailable"
    default_message = _(
        "The verification service is temporarily unavailable. Please try again shortly."
    )

    def __init__(
        self,
        message: str | Promise | None = None,
        *,
        retry_after: int = 30,
        endpoint: str = "",
    ) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
        self.endpoint = endpoint

    def __str__(self) -> str:
        return str(self.message) + (f" [{self.endpoint}]" if self.endpoint else "")


class ProviderTimeout(ProviderUnavailable):
    """The request reached VerifyNow but no answer came in time: its outcome is unknown.

    For a send, an SMS may have gone out; for a validate, the vendor may have counted the
    attempt. Never retried automatically.
    """


class VerifyNowConfigurationError(ImproperlyConfigured):
    """A setting is missing or wrong. Deliberately not a :class:`VerifyNowError`:
    it is the site's bug, not a runtime condition to show to users."""
