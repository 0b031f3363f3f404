"""The exception tree of django-verifynow.

Refusals and failures raise one of these; expected outcomes of a check (wrong code,
expired, locked) are states on the returned attempt instead. Every message here is safe
to show or log: no secret, code, vendor text or full phone number ever goes into one.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import Promise
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from .reasons import Reason

__all__ = [
    "AttemptNotFound",
    "ChannelRefused",
    "DailyCapReached",
    "InvalidInput",
    "InvalidPhoneNumber",
    "LimitsUnavailable",
    "OutOfCredit",
    "PhoneNumberNotAllowed",
    "PrefixBlocked",
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
    a translated text fit for an end user, :attr:`reason` the
    :class:`~django_verifynow.reasons.Reason` for code and logs (``None`` for input
    errors, which have no reason beyond their code).
    """

    code: str = "error"
    default_message: str | Promise = _("Phone verification failed.")
    #: The reason of every instance of the class, unless one is passed.
    default_reason: Reason | None = None

    def __init__(
        self, message: str | Promise | None = None, *, reason: Reason | None = None
    ) -> None:
        self.message: str | Promise = (
            message if message is not None else self.default_message
        )
        self.reason: Reason | None = (
            Reason(reason) if reason is not None else self.default_reason
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

    :attr:`reason` (:attr:`~.Reason.COUNTRY` or :attr:`~.Reason.NUMBER_TYPE`) is for
    logs and signals; it is never shown to the user, who gets one generic message.
    """

    code = "phone_not_allowed"
    default_message = _("Verification codes cannot be sent to this phone number.")
    default_reason = Reason.COUNTRY


class RateLimited(VerifyNowError):
    """A limit was hit; try again after :attr:`retry_after` seconds.

    :attr:`reason` says which one: :attr:`~.Reason.COOLDOWN`, a limit key
    (:attr:`~.Reason.PHONE_LIMIT`, :attr:`~.Reason.IP_LIMIT`,
    :attr:`~.Reason.SESSION_LIMIT`, :attr:`~.Reason.GLOBAL_LIMIT`),
    :attr:`~.Reason.PREFIX_BLOCKED`, :attr:`~.Reason.FAILURE_CAP`,
    :attr:`~.Reason.VENDOR_LIMIT` or :attr:`~.Reason.VENDOR_CODE_LOCKED`. The daily cap
    raises the subclass :class:`DailyCapReached`. Nothing was sent or counted.
    """

    code = "rate_limited"
    default_message = _("Too many requests. Please wait before trying again.")
    default_reason = Reason.PHONE_LIMIT

    def __init__(
        self,
        message: str | Promise | None = None,
        *,
        retry_after: int = 60,
        reason: Reason | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = max(1, int(retry_after))

    @property
    def scope(self) -> str:
        """Deprecated alias of :attr:`reason` (its string value), kept for 0.1 code."""
        return str(self.reason)


class PrefixBlocked(RateLimited):
    """The number's prefix is blocked after a burst of sends to it from many sources.

    :attr:`new_block` is True for the refusal that started the block (the services then
    record it for the admin, where it can be lifted).
    """

    default_reason = Reason.PREFIX_BLOCKED

    def __init__(
        self,
        message: str | Promise | None = None,
        *,
        retry_after: int = 60,
        new_block: bool = False,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.new_block = new_block


class DailyCapReached(RateLimited):
    """``DAILY_SEND_CAP`` is used up until UTC midnight (:attr:`retry_after`).

    A cap on the whole site's spend, not on this caller: the HTTP API answers it as the
    service being unavailable (503), not as "you are too fast" (429).
    """

    default_reason = Reason.DAILY_CAP


class AttemptNotFound(VerifyNowError, LookupError):
    """No such attempt, or one bound to another session or user (same error on
    purpose)."""

    code = "not_found"
    default_message = _("This verification does not exist or has been replaced.")


class ProviderError(VerifyNowError):
    """VerifyNow refused the request or answered nonsense.

    :attr:`response_code` is the vendor's body ``responseCode`` when there was one; the
    vendor's own text is never kept.
    """

    code = "provider_error"
    default_message = _("The verification service could not process the request.")
    default_reason = Reason.PROVIDER_ERROR

    def __init__(
        self,
        message: str | Promise | None = None,
        *,
        response_code: int | None = None,
        endpoint: str = "",
        reason: Reason | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.response_code = response_code
        self.endpoint = endpoint

    def __str__(self) -> str:
        detail = f" [{self.endpoint} responseCode={self.response_code}]"
        return str(self.message) + (detail if self.endpoint else "")


class ChannelRefused(ProviderError):
    """VerifyNow refused to send on :attr:`channel`: the number or the account cannot
    receive codes there (no WhatsApp). Nothing was sent.

    The send service then tries the next channel of ``CHANNELS``; this reaches the
    caller only when no channel is left. Which vendor answers mean it is decided in
    one place, :func:`django_verifynow.client.results.refuses_channel`.
    """

    default_reason = Reason.CHANNEL_REFUSED

    def __init__(
        self,
        message: str | Promise | None = None,
        *,
        channel: str = "",
        response_code: int | None = None,
        endpoint: str = "send",
    ) -> None:
        if message is None:
            from . import channels  # the channel's translated name

            message = format_lazy(
                _("A code cannot be sent by {channel} to this number."),
                channel=channels.label(channel) if channel else "",
            )
        super().__init__(message, response_code=response_code, endpoint=endpoint)
        self.channel = channel


class ProviderAuthError(ProviderError):
    """The token endpoint refused the credentials, or a fresh token was refused too."""

    default_reason = Reason.CREDENTIALS_REFUSED


class OutOfCredit(ProviderError):
    """VerifyNow refused a send because the account has no credit left (508).

    Every send fails until the account is topped up: logged at ERROR on
    ``django_verifynow.events`` and shown on the admin dashboard. Users get the generic
    :class:`ProviderError` text.
    """

    default_reason = Reason.OUT_OF_CREDIT


class ProviderUnavailable(VerifyNowError):
    """VerifyNow could not be reached in time, or the circuit breaker is open."""

    code = "provider_unavailable"
    default_message = _(
        "The verification service is temporarily unavailable. Please try again shortly."
    )
    default_reason = Reason.PROVIDER_UNAVAILABLE

    def __init__(
        self,
        message: str | Promise | None = None,
        *,
        retry_after: int = 30,
        endpoint: str = "",
        reason: Reason | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = max(1, int(retry_after))
        self.endpoint = endpoint

    def __str__(self) -> str:
        return str(self.message) + (f" [{self.endpoint}]" if self.endpoint else "")


class ProviderTimeout(ProviderUnavailable):
    """The request reached VerifyNow but no answer came in time: its outcome is
    unknown.

    For a send, an SMS may have gone out; for a validate, the vendor may have counted
    the attempt. Never retried automatically.
    """

    default_reason = Reason.PROVIDER_TIMEOUT


class LimitsUnavailable(ProviderUnavailable):
    """The cache holding the limits failed, and the action fails closed (sends).

    Nothing was sent: an SMS that cannot be counted is not sent. The failure is logged
    at ERROR on ``django_verifynow.ratelimit``.
    """

    default_reason = Reason.LIMITS_UNAVAILABLE


class VerifyNowConfigurationError(ImproperlyConfigured):
    """A setting is missing or wrong. Deliberately not a :class:`VerifyNowError`:
    it is the site's bug, not a runtime condition to show to users."""
