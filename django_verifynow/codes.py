"""VerifyNow response codes and the one table that maps them to outcomes.

The vendor reports the result of every call in the JSON body's ``responseCode``; the
HTTP status is not reliable (the same code arrives as HTTP 200 or 4xx depending on the
code and on the vendor's mood). Everything in this package that needs to know what a
code *means* reads it from here: the client to decide, the sandbox to answer, the admin
to label.
"""

from __future__ import annotations

import enum

__all__ = ["Call", "Outcome", "ResponseCode", "outcome_for"]


class ResponseCode(enum.IntEnum):
    """Body ``responseCode`` values documented by Message Central (PDF p. 28) + 508."""

    SUCCESS = 200
    BAD_REQUEST = 400
    #: Not in the vendor table: what an expired token is assumed to give.
    UNAUTHORIZED = 401
    DUPLICATE_RESOURCE = 409
    SERVER_ERROR = 500
    INVALID_CUSTOMER_ID = 501
    INVALID_VERIFICATION_ID = 505
    REQUEST_ALREADY_EXISTS = 506
    #: Name assumed: the vendor console shows "Insufficient Balance!" on a send.
    INSUFFICIENT_BALANCE = 508
    INVALID_COUNTRY_CODE = 511
    VERIFICATION_FAILED = 700
    WRONG_OTP_PROVIDED = 702
    ALREADY_VERIFIED = 703
    VERIFICATION_EXPIRED = 705
    MAXIMUM_LIMIT_REACHED = 800

    @classmethod
    def name_of(cls, code: int | None) -> str:
        """Return the vendor's name for ``code``, or ``"UNKNOWN"``."""
        try:
            return cls(code).name  # type: ignore[arg-type]
        except ValueError:
            return "UNKNOWN"


class Call(enum.Enum):
    """The two vendor calls whose body codes carry meaning."""

    SEND = "send"
    VALIDATE = "validate"


class Outcome(enum.Enum):
    """What a vendor answer means for this app."""

    #: send: a code went out; ``data.verificationId`` is the new verification.
    SENT = "sent"
    #: send: a code for this number is still live; ``data.verificationId`` is its id
    #: (506).
    ALREADY_PENDING = "already_pending"
    #: validate: the code was right.
    VERIFIED = "verified"
    #: validate: the code was wrong; the vendor counted an attempt.
    WRONG_CODE = "wrong_code"
    #: validate: the verification had already succeeded (a replay, or our earlier call
    #: succeeded but its answer was lost).
    ALREADY_VERIFIED = "already_verified"
    #: validate: the vendor's validity window has passed.
    EXPIRED = "expired"
    #: the vendor's own limit (sends per number, or attempts per verification) was hit.
    LIMIT_REACHED = "limit_reached"
    #: send: the account has no credit left (508). Every send fails until an operator
    #: tops the account up; the vendor is up, so the circuit breaker is not involved.
    OUT_OF_CREDIT = "out_of_credit"
    #: the token was refused: refresh once and replay once.
    AUTH_FAILED = "auth_failed"
    #: the vendor refused the request (our parameters, configuration or account):
    #: retrying will not help, an operator has to look.
    REJECTED = "rejected"
    #: the vendor failed internally; counts towards the circuit breaker.
    PROVIDER_FAULT = "provider_fault"


_C = ResponseCode
_O = Outcome

#: The one mapping. A (call, code) pair that is not listed fails closed as REJECTED.
OUTCOMES: dict[tuple[Call, int], Outcome] = {
    (Call.SEND, _C.SUCCESS): _O.SENT,
    (Call.SEND, _C.REQUEST_ALREADY_EXISTS): _O.ALREADY_PENDING,
    (Call.SEND, _C.MAXIMUM_LIMIT_REACHED): _O.LIMIT_REACHED,
    (Call.SEND, _C.UNAUTHORIZED): _O.AUTH_FAILED,
    (Call.SEND, _C.SERVER_ERROR): _O.PROVIDER_FAULT,
    (Call.SEND, _C.BAD_REQUEST): _O.REJECTED,
    (Call.SEND, _C.DUPLICATE_RESOURCE): _O.REJECTED,
    (Call.SEND, _C.INVALID_CUSTOMER_ID): _O.REJECTED,
    (Call.SEND, _C.INSUFFICIENT_BALANCE): _O.OUT_OF_CREDIT,
    (Call.SEND, _C.INVALID_COUNTRY_CODE): _O.REJECTED,
    (Call.VALIDATE, _C.SUCCESS): _O.VERIFIED,
    (Call.VALIDATE, _C.WRONG_OTP_PROVIDED): _O.WRONG_CODE,
    (Call.VALIDATE, _C.ALREADY_VERIFIED): _O.ALREADY_VERIFIED,
    (Call.VALIDATE, _C.VERIFICATION_EXPIRED): _O.EXPIRED,
    (Call.VALIDATE, _C.MAXIMUM_LIMIT_REACHED): _O.LIMIT_REACHED,
    (Call.VALIDATE, _C.UNAUTHORIZED): _O.AUTH_FAILED,
    (Call.VALIDATE, _C.SERVER_ERROR): _O.PROVIDER_FAULT,
    # 700's trigger is undocumented: never treat it as anything but a refusal.
    (Call.VALIDATE, _C.VERIFICATION_FAILED): _O.REJECTED,
    (Call.VALIDATE, _C.BAD_REQUEST): _O.REJECTED,
    (Call.VALIDATE, _C.INVALID_CUSTOMER_ID): _O.REJECTED,
    (Call.VALIDATE, _C.INVALID_VERIFICATION_ID): _O.REJECTED,
}


def outcome_for(call: Call, code: int | None) -> Outcome:
    """Map a body ``responseCode`` to an :class:`Outcome`; unknown ones are REJECTED."""
    if code is None:
        return Outcome.REJECTED
    return OUTCOMES.get((call, code), Outcome.REJECTED)
