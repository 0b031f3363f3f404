"""Checking a code: ``validate_otp`` and its typed result, :class:`CheckResult`.

The attempt cap lives in the database, not in the cache: one check is reserved with a
conditional ``F()`` update before the vendor call, so concurrent requests past the cap
never reach the vendor, and no row lock is ever held across HTTP. The attempt's final
state is what the vendor said for the checks that reached it, whatever the interleaving:
a check that could not reserve a try changes nothing, and a right code the vendor
accepted verifies the attempt even if a concurrent wrong code locked it meanwhile.
"""

from __future__ import annotations

import enum
import time
import uuid
from typing import Any

from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import phone, policy, statements
from ..client import ValidateResult
from ..codes import Outcome
from ..conf import verifynow_settings
from ..exceptions import (
    InvalidInput,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from ..executor import Flow
from ..models import AttemptStatus, CheckOutcome, VerificationAttempt, VerificationCheck
from ..policy import pumping
from ..reasons import Reason
from ..signals import verification_locked, verification_verified
from . import notify
from .requester import Requester, requester_for, resolve
from .vendor import VendorCall, arun, prefetch_keys, run, with_state

__all__ = ["CheckResult", "avalidate_otp", "validate_otp"]

_S = AttemptStatus

#: Seconds between two looks at an attempt a concurrent check is settling.
_SETTLE_POLL = 0.05

#: The reservation of one try: a conditional UPDATE that only a pending, unexpired
#: attempt with tries left matches, so concurrent checks never use more tries than
#: allowed. Every check runs it: compiled once (``django_verifynow.statements``).
_RESERVE = statements.Update(
    VerificationAttempt.objects.filter(
        pk=statements.Param("pk"),
        status=_S.PENDING,
        check_count__lt=F("max_attempts"),
        expires_at__gt=statements.Param("now", "expires_at"),
    ),
    check_count=F("check_count") + 1,
)

#: The lock after a wrong code that used the last allowed try (whoever's check it
#: was): every wrong code runs it.
_LOCK = VerificationAttempt.objects.filter(
    pk=statements.Param("pk"), check_count__gte=F("max_attempts")
).transition_statement(
    _S.LOCKED, last_response_code=statements.Param("last_response_code")
)

#: The move to verified, from locked too: the vendor accepted this code, so a
#: concurrent wrong code that used the last try meanwhile must not undo it.
_VERIFY = VerificationAttempt.objects.filter(
    pk=statements.Param("pk")
).transition_statement(
    _S.VERIFIED,
    from_=(_S.PENDING, _S.LOCKED),
    last_response_code=statements.Param("last_response_code"),
    verified_at=statements.Param("verified_at"),
)


class CheckResult(str, enum.Enum):
    """What one :func:`validate_otp` call found, set on the returned attempt as
    ``attempt.check_result``."""

    #: This check verified the attempt.
    VERIFIED = "verified"
    #: The attempt was verified before; nothing was checked (idempotent).
    ALREADY_VERIFIED = "already_verified"
    #: The code was wrong; ``attempt.attempts_left`` checks remain (0 when a concurrent
    #: check used the last one).
    WRONG_CODE = "wrong_code"
    #: The code was wrong and this check used the last try: the attempt is locked.
    LOCKED = "locked"
    #: No try is left (or VerifyNow locked the verification); nothing was checked.
    ALREADY_LOCKED = "already_locked"
    #: The code's life is over (now or earlier), or a newer attempt replaced it.
    EXPIRED = "expired"
    #: The attempt never got a code that can be checked (its send failed or timed out,
    #: or VerifyNow no longer knows it).
    ALREADY_SETTLED = "already_settled"

    def __str__(self) -> str:
        return self.value


#: What a stored state means for a check that does not reach the vendor.
_SETTLED: dict[str, CheckResult] = {
    _S.VERIFIED: CheckResult.ALREADY_VERIFIED,
    _S.LOCKED: CheckResult.ALREADY_LOCKED,
    _S.EXPIRED: CheckResult.EXPIRED,
    _S.FAILED: CheckResult.ALREADY_SETTLED,
    _S.UNKNOWN: CheckResult.ALREADY_SETTLED,
}


def _clean_code(code: object) -> str:
    # Spaces are trimmed ("123 456" as some SMS apps copy it); everything else must be
    # ASCII digits: Unicode digits such as "١٢٣" pass str.isdigit() but are refused.
    if not isinstance(code, str) or len(code) > 64:
        raise InvalidInput(_("Enter the code you received."))
    cleaned = code.replace(" ", "").strip()
    if not (cleaned.isascii() and cleaned.isdigit()):
        raise InvalidInput(_("The code must contain digits only."))
    return cleaned


def validate_otp(
    attempt: VerificationAttempt | uuid.UUID | str,
    code: object,
    *,
    request: HttpRequest | None = None,
) -> VerificationAttempt:
    """Check ``code`` against ``attempt`` and return the attempt in its new state.

    ``attempt.check_result`` (a :class:`CheckResult`) says what this call found;
    ``attempt.state`` and ``attempt.attempts_left`` where the attempt now stands.

    :raises InvalidInput: the code is not ``otp_length`` ASCII digits (nothing counted).
    :raises AttemptNotFound: unknown, or bound to another session or user.
    :raises RateLimited: the per-IP validate limit or the per-phone failure cap.
    :raises ProviderUnavailable: no answer; the try was not counted, except for a
        :class:`ProviderTimeout`, where the vendor may have counted it: resubmit the
        code.
    :raises ProviderError: the vendor refused; the check is recorded.
    """
    return run(_validate_otp(attempt, code, request))


async def avalidate_otp(
    attempt: VerificationAttempt | uuid.UUID | str,
    code: object,
    *,
    request: HttpRequest | None = None,
) -> VerificationAttempt:
    """:func:`validate_otp`, awaited: same arguments, result, exceptions and signals.

    The database and cache phases run in the async API's executor; the vendor call
    is awaited without holding a thread or a database connection (``async`` extra).
    """
    return await arun(_validate_otp(attempt, code, request))


def validate_flow(
    attempt: VerificationAttempt | uuid.UUID | str,
    code: object,
    *,
    request: HttpRequest | None = None,
) -> Flow[VerificationAttempt]:
    """:func:`validate_otp` as a flow (:mod:`django_verifynow.executor`), for an
    async caller that runs its own work in the same executor steps (the API)."""
    return _validate_otp(attempt, code, request)


def _validate_otp(
    attempt: VerificationAttempt | uuid.UUID | str,
    code: object,
    request: HttpRequest | None,
) -> Flow[VerificationAttempt]:
    requester = requester_for(request, bind=False)
    # Every call spends the per-IP budget, malformed codes and unknown ids included,
    # so guessing ids or codes hits the limit too. A check that reaches the policy
    # spends it there, with the failure cap in the same round trip.
    spend_keys = None if requester.trusted else requester.limit_keys
    try:
        cleaned = _clean_code(code)
        attempt = resolve(attempt, requester)
        if len(cleaned) != attempt.otp_length:
            raise InvalidInput(
                _("The code must be %(n)d digits.") % {"n": attempt.otp_length}
            )
    except Exception:
        _spend(spend_keys, requester, None)  # its refusal, if any, comes first
        raise
    attempt.check_outcome = None
    attempt.check_result = yield from _check(attempt, cleaned, requester, spend_keys)
    return attempt


def _spend(
    spend_keys: dict[str, str | None] | None,
    requester: Requester,
    attempt: VerificationAttempt | None,
) -> None:
    """Spend the validate budget alone (a check that never reaches the policy)."""
    if spend_keys is None:
        return
    try:
        policy.spend(policy.Action.VALIDATE, spend_keys)
    except RateLimited as exc:
        notify.event(
            "blocked", attempt, requester, reason=exc.reason, action="validate"
        )
        raise


def _check(
    attempt: VerificationAttempt,
    code: str,
    requester: Requester,
    spend_keys: dict[str, str | None] | None,
) -> Flow[CheckResult]:
    if attempt.status != _S.PENDING or not attempt.provider_verification_id:
        _spend(spend_keys, requester, attempt)
        return _SETTLED.get(attempt.status, CheckResult.ALREADY_SETTLED)
    now = timezone.now()
    if attempt.is_expired:
        _spend(spend_keys, requester, attempt)
        if not _expire(attempt) and _settled_meanwhile(attempt):
            # A check reserved in time was still waiting for the vendor (a double
            # click across the expiry): its answer is this one's too.
            return _SETTLED.get(attempt.status, CheckResult.ALREADY_SETTLED)
        notify.failed(attempt, requester, Reason.EXPIRED)
        return CheckResult.EXPIRED
    try:
        # The spend, the failure cap, the cooldown for the answer and the vendor
        # client's state: one round trip where the store allows.
        admitted = policy.admit_check(
            attempt.phone_number,
            _requester_key(requester),
            spend_keys=spend_keys,
            prefetch=prefetch_keys(),
        )
    except RateLimited as exc:
        notify.event(
            "blocked", attempt, requester, reason=exc.reason, action="validate"
        )
        raise
    reserved = _RESERVE.run(pk=attempt.pk, now=now)
    if not reserved:
        # Out of tries, or settled meanwhile. Change nothing: checks that did reserve
        # may still be waiting for the vendor, and their answers decide the state and
        # this answer too (a double click on the last try).
        if _settled_meanwhile(attempt):
            return _SETTLED.get(attempt.status, CheckResult.ALREADY_SETTLED)
        return CheckResult.EXPIRED if attempt.is_expired else CheckResult.ALREADY_LOCKED
    attempt.check_count += 1
    try:
        # The try is reserved: the vendor call is the one wait, and the async API
        # holds no thread or connection across it.
        result = yield _vendor_check(attempt, code, admitted.prefetched)
    except ProviderTimeout:
        # The vendor may have counted it: keep the reservation. The user resubmits, and
        # a 703 then tells us this check had succeeded.
        _record(attempt, requester, CheckOutcome.UNKNOWN, None)
        notify.failed(attempt, requester, Reason.PROVIDER_TIMEOUT)
        raise
    except ProviderUnavailable as exc:
        _refund(attempt)
        _record(attempt, requester, CheckOutcome.UNAVAILABLE, None)
        notify.failed(attempt, requester, exc.reason or Reason.PROVIDER_UNAVAILABLE)
        raise
    except ProviderError as exc:
        if exc.response_code == 505:
            # The vendor no longer knows this verificationId: the attempt is dead.
            _move(attempt, _S.FAILED, last_response_code=505)
        else:
            _refund(attempt)
        _record(attempt, requester, CheckOutcome.ERROR, exc.response_code)
        notify.failed(attempt, requester, exc.reason or Reason.PROVIDER_ERROR)
        raise
    checked = _apply(attempt, result, requester, admitted)
    # The answer's resend_available_at, from the record the check read: no second
    # read of the cooldown (None: not read, the serializer reads it).
    attempt.resend_wait = admitted.resend_wait()
    return checked


def _requester_key(requester: Requester) -> str:
    """Who made a check, for the failure cap: the user or session, else the IP."""
    return requester.limit_keys["session"] or requester.limit_keys["ip"] or "server"


def _vendor_check(
    attempt: VerificationAttempt, code: str, state: dict[str, Any] | None
) -> VendorCall:
    number = phone.split_for_vendor(attempt.phone_number)
    return VendorCall(
        "validate",
        with_state(
            {
                "verification_id": attempt.provider_verification_id,
                "code": code,
                "country_code": number.country_code,
                "national_number": number.national_number,
            },
            state,
        ),
    )


def _apply(
    attempt: VerificationAttempt,
    result: ValidateResult,
    requester: Requester,
    admitted: policy.CheckAdmission,
) -> CheckResult:
    """Record the vendor's verdict and move the attempt accordingly."""
    code = result.response_code
    outcome = result.outcome
    if outcome is Outcome.ALREADY_VERIFIED and not _may_have_succeeded(attempt):
        # 703 proves only that *someone* verified this id. It counts for this attempt
        # only if one of its own checks may have been that success (one timed out, or
        # a concurrent one is still waiting for its answer); another attempt's success
        # must never verify this one.
        _move(attempt, _S.FAILED, last_response_code=code)
        _record(attempt, requester, CheckOutcome.ERROR, code)
        notify.failed(attempt, requester, Reason.VENDOR_REFUSED)
        return CheckResult.ALREADY_SETTLED
    if outcome in (Outcome.VERIFIED, Outcome.ALREADY_VERIFIED):
        return _verified(attempt, code, requester, admitted)
    if outcome is Outcome.WRONG_CODE:
        _record(attempt, requester, CheckOutcome.WRONG_CODE, code)
        policy.record_failure(attempt.phone_number, _requester_key(requester))
        notify.failed(attempt, requester, Reason.WRONG_CODE)
        # Lock when this check used the last allowed try (whoever's check it was).
        locked = _LOCK.run(pk=attempt.pk, last_response_code=code)
        if locked:
            attempt.status = _S.LOCKED
            attempt.last_response_code = code
            notify.event("locked", attempt, requester)
            verification_locked.send(
                sender=VerificationAttempt, attempt=attempt, request=requester.request
            )
            return CheckResult.LOCKED
        attempt.refresh_from_db(fields=["status", "check_count"])
        return CheckResult.WRONG_CODE
    if outcome is Outcome.EXPIRED:
        # Recorded first, so this check no longer counts as one in flight.
        _record(attempt, requester, CheckOutcome.EXPIRED, code)
        if not _expire(attempt, last_response_code=code) and _settled_meanwhile(
            attempt
        ):
            # Too late at the vendor's clock, but a check of this attempt that reached
            # it in time was still waiting for its answer: that answer is this one's.
            return _SETTLED.get(attempt.status, CheckResult.ALREADY_SETTLED)
        notify.failed(attempt, requester, Reason.EXPIRED)
        return CheckResult.EXPIRED
    # Outcome.LIMIT_REACHED: the vendor locked this verification.
    _move(attempt, _S.LOCKED, last_response_code=code)
    _record(attempt, requester, CheckOutcome.LOCKED, code)
    notify.event("locked", attempt, requester, by="provider")
    verification_locked.send(
        sender=VerificationAttempt, attempt=attempt, request=requester.request
    )
    return CheckResult.ALREADY_LOCKED


def _verified(
    attempt: VerificationAttempt,
    code: int,
    requester: Requester,
    admitted: policy.CheckAdmission,
) -> CheckResult:
    values = {"last_response_code": code, "verified_at": timezone.now()}
    if _mirrored(attempt, _VERIFY.run(pk=attempt.pk, **values), _S.VERIFIED, values):
        policy.forget_failures(attempt.phone_number, counted=admitted.failures_counted)
        pumping.record_verified(attempt.country)
        notify.event("verified", attempt, requester)
        verification_verified.send(
            sender=VerificationAttempt, attempt=attempt, request=requester.request
        )
        result = CheckResult.VERIFIED
    else:
        attempt.refresh_from_db(fields=["status", "verified_at", "check_count"])
        result = _SETTLED.get(attempt.status, CheckResult.ALREADY_SETTLED)
    _record(attempt, requester, CheckOutcome.VERIFIED, code)
    return result


#: Check outcomes whose reserved try the vendor used (the others were refunded).
_USED = (
    CheckOutcome.VERIFIED,
    CheckOutcome.WRONG_CODE,
    CheckOutcome.EXPIRED,
    CheckOutcome.LOCKED,
    CheckOutcome.UNKNOWN,
)


def _may_have_succeeded(attempt: VerificationAttempt) -> bool:
    """Whether one of ``attempt``'s own checks may have verified its verification id."""
    attempt.refresh_from_db(fields=["status", "check_count", "verified_at"])
    if attempt.status == _S.VERIFIED:
        return True  # a concurrent check of this attempt got the 200 first
    checks = VerificationCheck.objects.filter(attempt=attempt)
    if checks.filter(outcome=CheckOutcome.UNKNOWN).exists():
        return True  # a check timed out: its answer may have been the success
    # Reserved tries not yet recorded, this check aside: a concurrent check of this
    # attempt is still waiting for the vendor and may be the one that succeeded.
    if attempt.check_count - _recorded(attempt) - 1 > 0:
        return True
    # A concurrent check may have verified and recorded itself between the reads
    # above (it moves the status first): look at the status once more.
    attempt.refresh_from_db(fields=["status", "check_count", "verified_at"])
    return attempt.status == _S.VERIFIED


def _settled_meanwhile(attempt: VerificationAttempt) -> bool:
    """Wait (bounded by ``DEADLINE``) for a concurrent in-time check to settle the
    attempt; True once it left ``pending``."""
    give_up = time.monotonic() + verifynow_settings.DEADLINE
    while True:
        attempt.refresh_from_db(fields=["status", "check_count", "verified_at"])
        if attempt.status != _S.PENDING:
            return True
        if time.monotonic() >= give_up:
            return False
        if not _in_flight(attempt):
            # The check may have settled between the two reads (it moves the status,
            # then records itself): look once more before answering on our own.
            attempt.refresh_from_db(fields=["status", "check_count", "verified_at"])
            return attempt.status != _S.PENDING
        time.sleep(_SETTLE_POLL)


def _recorded(attempt: VerificationAttempt) -> int:
    """Checks of ``attempt`` whose reserved try is settled (recorded, not refunded)."""
    return VerificationCheck.objects.filter(attempt=attempt, outcome__in=_USED).count()


def _in_flight(attempt: VerificationAttempt) -> bool:
    return attempt.check_count > _recorded(attempt)


def _expire(attempt: VerificationAttempt, *, own: int = 0, **values: Any) -> bool:
    """Store ``expired`` unless a check reserved in time (other than the caller's
    ``own`` reservation) still waits for the vendor: its answer decides the state."""
    used = VerificationCheck.objects.filter(attempt=attempt, outcome__in=_USED).count()
    moved = VerificationAttempt.objects.filter(
        pk=attempt.pk, check_count__lte=used + own
    ).transition(_S.EXPIRED, **values)
    if moved:
        attempt.status = _S.EXPIRED
        for key, value in values.items():
            setattr(attempt, key, value)
    return bool(moved)


def _move(
    attempt: VerificationAttempt,
    status: str,
    *,
    from_: tuple[str, ...] = (_S.PENDING,),
    **values: object,
) -> bool:
    """Transition ``attempt`` and mirror the change on the instance if it happened."""
    moved = VerificationAttempt.objects.filter(pk=attempt.pk).transition(
        status, from_=from_, **values
    )
    return _mirrored(attempt, moved, status, values)


def _mirrored(
    attempt: VerificationAttempt, moved: int, status: str, values: dict[str, object]
) -> bool:
    """Mirror a transition of ``attempt``'s row on the instance if it happened."""
    if moved:
        attempt.status = status
        for key, value in values.items():
            setattr(attempt, key, value)
    return bool(moved)


def _refund(attempt: VerificationAttempt) -> None:
    """Give back a reserved check the vendor never evaluated."""
    VerificationAttempt.objects.filter(pk=attempt.pk, check_count__gt=0).update(
        check_count=F("check_count") - 1
    )
    attempt.check_count = max(attempt.check_count - 1, 0)


def _record(
    attempt: VerificationAttempt,
    requester: Requester,
    outcome: str,
    response_code: int | None,
) -> None:
    attempt.check_outcome = outcome
    VerificationCheck.objects.create(
        attempt=attempt,
        outcome=outcome,
        response_code=response_code,
        ip_address=requester.ip,
    )
