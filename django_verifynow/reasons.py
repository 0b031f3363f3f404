"""Why something was refused or failed: one enum for exceptions, signals and events.

Every refusal and failure in django-verifynow carries a :class:`Reason`: the
exceptions (``exc.reason``), the ``reason`` argument of the
:mod:`~django_verifynow.signals` and the ``reason`` field of the
``django_verifynow.events`` log. It is a ``str`` enum, so a receiver may compare with
plain strings (``reason == "daily_cap"``); the values are stable and documented in
``docs/signals.md``.

Reasons are for code, logs and operators. End users never see them: they get the
translated, generic text of the exception.
"""

from __future__ import annotations

import enum

__all__ = ["BLOCKED_REASONS", "FAILED_REASONS", "Reason"]


class Reason(str, enum.Enum):
    """A refusal (nothing was sent or checked) or a failure (a vendor call went
    wrong)."""

    # -- refused by the phone rules, before anything else ---------------------------
    #: The number's country is not in ``ALLOWED_COUNTRIES``.
    COUNTRY = "country"
    #: The number's type (landline, premium rate, …) is not in ``ALLOWED_NUMBER_TYPES``.
    NUMBER_TYPE = "number_type"

    # -- refused by the admission policy (no vendor call, no budget spent) -----------
    #: The resend cooldown of this phone is running (it also covers the vendor's
    #: validity window of the code already sent).
    COOLDOWN = "cooldown"
    #: A per-phone rule of ``RATE_LIMITS`` (``"5/h/phone"``).
    PHONE_LIMIT = "phone_limit"
    #: A per-IP rule of ``RATE_LIMITS`` (``"10/h/ip"``).
    IP_LIMIT = "ip_limit"
    #: A per-session (or per-user) rule of ``RATE_LIMITS`` (``"5/h/session"``).
    SESSION_LIMIT = "session_limit"
    #: A site-wide rule of ``RATE_LIMITS`` (``"1000/h/global"``).
    GLOBAL_LIMIT = "global_limit"
    #: The number's prefix is blocked after a burst of sends to it (SMS pumping).
    PREFIX_BLOCKED = "prefix_blocked"
    #: ``DAILY_SEND_CAP`` is used up for today (UTC).
    DAILY_CAP = "daily_cap"
    #: Too many wrong codes for this phone today (``RATE_LIMITS["validate_failure"]``).
    FAILURE_CAP = "failure_cap"
    #: The cache that holds the limits is down, and this action fails closed.
    LIMITS_UNAVAILABLE = "limits_unavailable"

    # -- the vendor's answers -------------------------------------------------------
    #: VerifyNow refused the send with its own limit (800).
    VENDOR_LIMIT = "vendor_limit"
    #: VerifyNow still holds a live code for this number whose tries are used up (506).
    VENDOR_CODE_LOCKED = "vendor_code_locked"
    #: VerifyNow still holds a live code for this number that another session or user
    #: asked for (506): it is not this requester's to enter, and no SMS went out.
    VENDOR_CODE_PENDING = "vendor_code_pending"
    #: VerifyNow refused the request (bad parameters, account or configuration).
    VENDOR_REFUSED = "vendor_refused"
    #: VerifyNow refused the channel as not deliverable (a number or an account
    #: without WhatsApp); nothing was sent, the next channel of ``CHANNELS`` is tried.
    CHANNEL_REFUSED = "channel_refused"
    #: VerifyNow refused our credentials, or a fresh token.
    CREDENTIALS_REFUSED = "credentials_refused"
    #: VerifyNow's account has no credit left (508): every send fails until a top-up.
    OUT_OF_CREDIT = "out_of_credit"
    #: VerifyNow failed (5xx, no JSON, a success without a verification id).
    PROVIDER_ERROR = "provider_error"
    #: VerifyNow could not be reached, or the circuit breaker is open: nothing was sent.
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    #: VerifyNow did not answer in time: an SMS may have gone out, a check may count.
    PROVIDER_TIMEOUT = "provider_timeout"

    # -- outcomes of a code check ---------------------------------------------------
    #: The code was wrong.
    WRONG_CODE = "wrong_code"
    #: The code's life is over.
    EXPIRED = "expired"

    def __str__(self) -> str:
        return self.value


#: The reasons ``verification_blocked`` is sent with (a send refused before the vendor).
BLOCKED_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.COUNTRY,
        Reason.NUMBER_TYPE,
        Reason.COOLDOWN,
        Reason.PHONE_LIMIT,
        Reason.IP_LIMIT,
        Reason.SESSION_LIMIT,
        Reason.GLOBAL_LIMIT,
        Reason.PREFIX_BLOCKED,
        Reason.DAILY_CAP,
        Reason.LIMITS_UNAVAILABLE,
    }
)

#: The reasons ``verification_failed`` is sent with (a vendor call went wrong, or a
#: check found a wrong or expired code).
FAILED_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.VENDOR_LIMIT,
        Reason.VENDOR_CODE_LOCKED,
        Reason.VENDOR_CODE_PENDING,
        Reason.VENDOR_REFUSED,
        Reason.CHANNEL_REFUSED,
        Reason.CREDENTIALS_REFUSED,
        Reason.OUT_OF_CREDIT,
        Reason.PROVIDER_ERROR,
        Reason.PROVIDER_UNAVAILABLE,
        Reason.PROVIDER_TIMEOUT,
        Reason.WRONG_CODE,
        Reason.EXPIRED,
    }
)
