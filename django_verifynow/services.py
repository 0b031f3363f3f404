"""The service layer: the only module that orchestrates a verification.

Views, serializers, forms and commands call these four functions and nothing below them.
The policy lives here, in this order, so nothing costs money before it has passed:

1. parse the number to E.164 and apply the country and number-type rules;
2. the resend cooldown, the per-phone / per-IP / per-session / per-prefix limits and the
   daily cap, over the shared cache (fail closed);
3. the attempt cap, enforced in the database with a conditional ``F()`` update before
   any validate call; no row lock is ever held across HTTP (R11, R12);
4. the vendor call through :mod:`django_verifynow.client`;
5. the outcome recorded (failures included) and a signal sent.

Expected outcomes of a check (wrong code, expired, locked) are states on the returned
attempt; refusals and failures raise from :mod:`django_verifynow.exceptions`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import F, Max, Q
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import phone, ratelimit, signals
from .client import get_client
from .codes import Outcome
from .conf import FLOW_TYPES, verifynow_settings
from .exceptions import (
    AttemptNotFound,
    InvalidInput,
    PhoneNumberNotAllowed,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from .models import AttemptStatus, CheckOutcome, VerificationAttempt, VerificationCheck

__all__ = [
    "consume_verification",
    "get_attempt",
    "resend_available_at",
    "resend_otp",
    "send_otp",
    "validate_otp",
    "verified_attempt",
]

#: Structured security events (R44): masked numbers only, never a code or a token.
events = logging.getLogger("django_verifynow.events")

#: Session key holding the random token that binds attempts to a browser session.
SESSION_BINDING_KEY = "django_verifynow.binding"

_PROOF_MISSING = _(
    "Verify this phone number first: the verification is missing, used or too old."
)

_PURPOSE_RE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")


# -- request context ------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    """Who is asking: the request's user, session binding and client IP."""

    request: Any
    user: Any
    binding: str  # SHA-256 of the session's binding token, or ""
    ip: str | None

    @property
    def user_id(self) -> Any:
        return getattr(self.user, "pk", None)

    @property
    def limit_keys(self) -> dict[str, str | None]:
        """Non-phone keys for the rate limits: IP (grouped) and session or user."""
        session = f"user:{self.user_id}" if self.user_id is not None else self.binding
        return {"ip": ratelimit.ip_key(self.ip), "session": session or None}


def _context(request: HttpRequest | None, user: Any = None, *, bind: bool) -> _Context:
    if user is None and request is not None:
        candidate = getattr(request, "user", None)
        if candidate is not None and getattr(candidate, "is_authenticated", False):
            user = candidate
    binding = ""
    session = getattr(request, "session", None) if request is not None else None
    if session is not None:
        token = session.get(SESSION_BINDING_KEY)
        if token is None and bind:
            # A random token in the session rather than the session key itself: the key
            # rotates on login (cycle_key), the token travels with the session data.
            token = secrets.token_urlsafe(32)
            session[SESSION_BINDING_KEY] = token
        if token:
            binding = hashlib.sha256(str(token).encode()).hexdigest()
    ip = ratelimit.client_ip(request) if request is not None else None
    return _Context(request=request, user=user, binding=binding, ip=ip)


def _bound_to(attempt: VerificationAttempt, ctx: _Context) -> bool:
    """Whether the requester may act on ``attempt`` (R4, OWASP API1).

    Server-side callers (no request) may act on anything. A request must come from the
    attempt's user or carry the session binding that started it.
    """
    if ctx.request is None:
        return True
    if attempt.user_id is not None and attempt.user_id == ctx.user_id:
        return True
    return bool(attempt.session_binding) and secrets.compare_digest(
        attempt.session_binding, ctx.binding
    )


def _resolve(
    attempt: VerificationAttempt | uuid.UUID | str, ctx: _Context
) -> VerificationAttempt:
    if not isinstance(attempt, VerificationAttempt):
        try:
            pk = attempt if isinstance(attempt, uuid.UUID) else uuid.UUID(str(attempt))
            attempt = VerificationAttempt.objects.get(pk=pk)
        except (
            ValueError,
            TypeError,
            AttributeError,
            VerificationAttempt.DoesNotExist,
        ):
            raise AttemptNotFound() from None
    if not _bound_to(attempt, ctx):
        # The same error as an unknown id: nothing reveals that the attempt exists.
        raise AttemptNotFound()
    return attempt


def get_attempt(
    attempt_id: uuid.UUID | str, *, request: HttpRequest | None = None
) -> VerificationAttempt:
    """Return the attempt if the requester may see it, else raise :class:`AttemptNotFound`.

    Lookups spend the requester's ``read`` budget, so ids cannot be enumerated.

    :raises RateLimited: the ``read`` limits.
    """
    ctx = _context(request, bind=False)
    _spend(ctx, "read")
    return _resolve(attempt_id, ctx)


def _spend(ctx: _Context, action: str) -> None:
    """Count one call against the requester's (IP, session) limits of ``action``.

    With the cache down, lookups and validates still run: the attempt cap lives in the
    database (R24, S17); sends do not (they fail closed in :func:`_apply_send_limits`).
    """
    if ctx.request is None:
        return  # server-side callers are trusted
    try:
        ratelimit.hit(action, ctx.limit_keys)
    except RateLimited as exc:
        if exc.scope != "unavailable":
            _event("blocked", None, ctx, reason=f"rate_limited:{exc.scope}")
            raise


# -- events ---------------------------------------------------------------------------


def _event(
    name: str, attempt: VerificationAttempt | None, ctx: _Context, **fields: Any
) -> None:
    data = {
        "event": name,
        "attempt": str(attempt.pk) if attempt else None,
        "phone": attempt.masked_phone_number if attempt else fields.pop("phone", ""),
        "country": attempt.country if attempt else fields.pop("country", ""),
        "ip": ctx.ip,
        **fields,
    }
    events.info(
        "verifynow %s %s",
        name,
        " ".join(f"{k}={v}" for k, v in data.items() if v is not None),
        extra={"verifynow": data},
    )


def _blocked(e164: str, ctx: _Context, reason: str) -> None:
    _event(
        "blocked",
        None,
        ctx,
        phone=phone.mask(e164),
        country=phone.region_of(e164),
        reason=reason,
    )
    signals.verification_blocked.send(
        sender=VerificationAttempt,
        attempt=None,
        request=ctx.request,
        phone_number=phone.mask(e164),
        reason=reason,
    )


# -- send -----------------------------------------------------------------------------


def _clean_flow_type(flow_type: str | None) -> str:
    flow = flow_type or verifynow_settings.FLOW_TYPE
    if flow not in FLOW_TYPES:
        raise InvalidInput(_("Choose SMS or WhatsApp."))
    return flow


def _clean_purpose(purpose: str) -> str:
    if not isinstance(purpose, str) or not _PURPOSE_RE.match(purpose):
        raise InvalidInput(_("Unknown verification purpose."))
    return purpose


def send_otp(
    phone_number: object,
    *,
    request: HttpRequest | None = None,
    user: Any = None,
    purpose: str = "verify",
    flow_type: str | None = None,
) -> VerificationAttempt:
    """Send a code to ``phone_number`` and return the new attempt (status ``pending``).

    :param phone_number: as typed (any formatting with ``+``) or a ``PhoneNumber``.
    :param request: binds the attempt to the session and user and keys the IP limits.
    :param user: binds the attempt to this user (defaults to ``request.user``).
    :param purpose: what the proof is for (``"signup"``, ``"phone_change"``, …).
    :param flow_type: ``"SMS"`` or ``"WHATSAPP"``; defaults to ``FLOW_TYPE``.
    :raises InvalidPhoneNumber, PhoneNumberNotAllowed, InvalidInput: before anything.
    :raises RateLimited: a limit, the cooldown or the daily cap; nothing was sent.
    :raises ProviderUnavailable: nothing was sent (the attempt is recorded ``failed``);
        a :class:`ProviderTimeout` when a code may have gone out (recorded ``unknown``).
    :raises ProviderError: the vendor refused; recorded ``failed``.
    """
    flow = _clean_flow_type(flow_type)
    purpose = _clean_purpose(purpose)
    e164 = phone.normalize(phone_number)
    ctx = _context(request, user, bind=True)
    try:
        phone.check_allowed(e164)
    except PhoneNumberNotAllowed as exc:
        _blocked(e164, ctx, exc.reason)
        raise
    return _send(e164, ctx, purpose=purpose, flow=flow, previous=None)


def resend_otp(
    attempt: VerificationAttempt | uuid.UUID | str,
    *,
    request: HttpRequest | None = None,
) -> VerificationAttempt:
    """Send a new code to the phone of ``attempt``; return the new attempt.

    The previous attempt stops being valid. The cooldown and every send limit apply,
    plus the ``resend`` limits.

    :raises AttemptNotFound: unknown, or bound to another session or user.
    :raises InvalidInput: the attempt is already verified.
    """
    ctx = _context(request, bind=True)
    previous = _resolve(attempt, ctx)
    if previous.status == AttemptStatus.VERIFIED:
        raise InvalidInput(_("This phone number is already verified."))
    if ctx.user is None and previous.user_id is not None:
        ctx = _Context(
            request=ctx.request, user=previous.user, binding=ctx.binding, ip=ctx.ip
        )
    try:
        ratelimit.hit("resend", {"phone": previous.phone_number, **ctx.limit_keys})
    except RateLimited as exc:
        _blocked(previous.phone_number, ctx, f"rate_limited:{exc.scope}")
        raise
    return _send(
        previous.phone_number,
        ctx,
        purpose=previous.purpose,
        flow=previous.flow_type,
        previous=previous,
    )


def _apply_send_limits(e164: str, ctx: _Context) -> None:
    wait = ratelimit.cooldown_remaining(e164)
    if wait > 0:
        _blocked(e164, ctx, "cooldown")
        raise RateLimited(retry_after=wait, scope="cooldown")
    try:
        ratelimit.hit(
            "send", {"phone": e164, "prefix": phone.prefix(e164), **ctx.limit_keys}
        )
        ratelimit.hit_daily_cap()
    except RateLimited as exc:
        _blocked(
            e164,
            ctx,
            "daily_cap" if exc.scope == "daily_cap" else f"rate_limited:{exc.scope}",
        )
        raise
    ratelimit.start_cooldown(e164)


def _send(
    e164: str,
    ctx: _Context,
    *,
    purpose: str,
    flow: str,
    previous: VerificationAttempt | None,
) -> VerificationAttempt:
    settings = verifynow_settings
    _apply_send_limits(e164, ctx)
    client = get_client()  # configuration errors surface before anything is written

    # Only the newest attempt for a phone and a requester is live.
    stale = Q(pk=previous.pk) if previous is not None else Q(pk__in=[])
    if ctx.binding:
        stale |= Q(session_binding=ctx.binding)
    if ctx.user_id is not None:
        stale |= Q(user_id=ctx.user_id)
    if previous is not None or ctx.binding or ctx.user_id is not None:
        VerificationAttempt.objects.filter(
            stale, phone_number=e164, status=AttemptStatus.PENDING
        ).update(status=AttemptStatus.EXPIRED)

    # The row exists before the vendor call, as "unknown": if this process dies while
    # waiting, the record still says an SMS may have gone out.
    attempt = VerificationAttempt.objects.create(
        phone_number=e164,
        country=phone.region_of(e164),
        status=AttemptStatus.UNKNOWN,
        purpose=purpose,
        flow_type=flow,
        otp_length=settings.OTP_LENGTH,
        max_attempts=settings.MAX_ATTEMPTS,
        user=ctx.user if ctx.user_id is not None else None,
        ip_address=ctx.ip,
        session_binding=ctx.binding,
    )
    number = phone.split_for_vendor(e164)
    try:
        result = client.send(
            country_code=number.country_code,
            national_number=number.national_number,
            flow_type=flow,
            otp_length=attempt.otp_length,
        )
    except ProviderTimeout as exc:
        # An SMS may have gone out: the row stays "unknown" and counts towards the
        # phone's limits; the user may ask again once the cooldown is over (R35).
        exc.retry_after = max(ratelimit.cooldown_remaining(e164), 1)
        _failed(attempt, ctx, "provider_timeout")
        raise
    except (ProviderUnavailable, ProviderError, RateLimited) as exc:
        attempt.status = AttemptStatus.FAILED
        attempt.last_response_code = getattr(exc, "response_code", None)
        attempt.save(update_fields=["status", "last_response_code"])
        if isinstance(exc, ProviderUnavailable):
            # Nothing was sent, so the cooldown must not punish the user's retry.
            ratelimit.clear_cooldown(e164)
        _failed(attempt, ctx, exc.code)
        raise

    now = timezone.now()
    lifetime = min(result.timeout or settings.CODE_TTL, settings.CODE_TTL)
    attempt.status = AttemptStatus.PENDING
    attempt.provider_verification_id = result.verification_id
    attempt.provider_transaction_id = result.transaction_id or ""
    attempt.last_response_code = result.response_code
    attempt.expires_at = now + timedelta(seconds=lifetime)
    fields = [
        "status",
        "provider_verification_id",
        "provider_transaction_id",
        "last_response_code",
        "expires_at",
    ]
    if result.reused:
        # 506: the vendor kept its pending code (no SMS went out) and counts wrong codes
        # per verificationId, so the new attempt inherits the count (verifynow-api §8.7).
        used = (
            VerificationAttempt.objects.filter(
                phone_number=e164, provider_verification_id=result.verification_id
            )
            .exclude(pk=attempt.pk)
            .aggregate(used=Max("check_count"))["used"]
        )
        attempt.check_count = min(used or 0, attempt.max_attempts)
        fields.append("check_count")
        if attempt.check_count >= attempt.max_attempts:
            # The vendor still holds a code whose tries are all used up: no code went
            # out and none can be checked until the vendor's window ends. Say so,
            # instead of "sent".
            attempt.status = AttemptStatus.FAILED
            attempt.save(update_fields=fields)
            _failed(attempt, ctx, "provider_pending_locked")
            raise RateLimited(retry_after=lifetime, scope="provider")
    attempt.save(update_fields=fields)
    _event("sent", attempt, ctx, reused=result.reused, channel=flow)
    signals.verification_sent.send(
        sender=VerificationAttempt, attempt=attempt, request=ctx.request
    )
    return attempt


def _failed(attempt: VerificationAttempt, ctx: _Context, reason: str) -> None:
    _event("failed", attempt, ctx, reason=reason)
    signals.verification_failed.send(
        sender=VerificationAttempt, attempt=attempt, request=ctx.request, reason=reason
    )


def resend_available_at(attempt: VerificationAttempt) -> datetime:
    """When the cooldown lets a new code go to this attempt's phone."""
    try:
        wait = ratelimit.cooldown_remaining(attempt.phone_number)
    except RateLimited as exc:  # the cache is down: say "later", do not fail the read
        wait = exc.retry_after
    return timezone.now() + timedelta(seconds=wait)


# -- validate -------------------------------------------------------------------------


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

    The returned attempt's ``status`` says where it stands (``verified``, still
    ``pending`` after a wrong code with ``attempts_left``, ``expired``, ``locked``), and
    its transient ``check_outcome`` says what this call found (a
    :class:`~django_verifynow.models.CheckOutcome`, or ``None`` when no vendor call was
    made because the attempt was already settled, expired or out of attempts).

    :raises InvalidInput: the code is not ``otp_length`` ASCII digits (nothing counted).
    :raises AttemptNotFound: unknown, or bound to another session or user.
    :raises RateLimited: the per-IP validate limit or the per-phone failure cap.
    :raises ProviderUnavailable: no answer; the attempt was not counted, except for a
        :class:`ProviderTimeout`, where the vendor may have counted it: resubmit the code.
    :raises ProviderError: the vendor refused; the check is recorded.
    """
    ctx = _context(request, bind=False)
    # The per-IP budget is spent first, by every call: malformed codes and unknown ids
    # included, so guessing ids or codes hits the limit too (R6, S8).
    _spend(ctx, "validate")
    cleaned = _clean_code(code)
    attempt = _resolve(attempt, ctx)
    if len(cleaned) != attempt.otp_length:
        raise InvalidInput(
            _("The code must be %(n)d digits.") % {"n": attempt.otp_length}
        )
    attempt.check_outcome = None

    if attempt.status != AttemptStatus.PENDING or not attempt.provider_verification_id:
        return attempt  # settled: verified stays verified (idempotent), no vendor call
    now = timezone.now()
    if attempt.expires_at is None or now >= attempt.expires_at:
        _settle(attempt, AttemptStatus.EXPIRED)
        _failed(attempt, ctx, "expired")
        return attempt

    phone_keys = {"phone": attempt.phone_number}
    try:
        ratelimit.check("validate_failure", phone_keys)
    except RateLimited as exc:
        if exc.scope != "unavailable":  # see _spend
            _event("blocked", attempt, ctx, reason=f"rate_limited:{exc.scope}")
            raise

    # Reserve one check before calling the vendor (R11, R12): concurrent requests past
    # the cap get rowcount 0 and never reach the vendor. No row lock is held.
    reserved = VerificationAttempt.objects.filter(
        pk=attempt.pk,
        status=AttemptStatus.PENDING,
        check_count__lt=F("max_attempts"),
        expires_at__gt=now,
    ).update(check_count=F("check_count") + 1)
    if not reserved:
        attempt.refresh_from_db(
            fields=["status", "check_count", "verified_at", "expires_at"]
        )
        if (
            attempt.status == AttemptStatus.PENDING
            and attempt.check_count >= attempt.max_attempts
        ):
            _settle(attempt, AttemptStatus.LOCKED)
        return attempt
    attempt.check_count += 1

    number = phone.split_for_vendor(attempt.phone_number)
    try:
        result = get_client().validate(
            verification_id=attempt.provider_verification_id,
            code=cleaned,
            country_code=number.country_code,
            national_number=number.national_number,
        )
    except ProviderTimeout:
        # The vendor may have counted it: keep the reservation; the user resubmits, and
        # a 703 then tells us the first try had succeeded (S24).
        _record_check(attempt, ctx, CheckOutcome.UNKNOWN, None)
        _failed(attempt, ctx, "provider_timeout")
        raise
    except ProviderUnavailable:
        _refund(attempt)
        _record_check(attempt, ctx, CheckOutcome.UNAVAILABLE, None)
        _failed(attempt, ctx, "provider_unavailable")
        raise
    except ProviderError as exc:
        if exc.response_code == 505:
            # The vendor no longer knows this verificationId: the attempt is dead.
            _settle(attempt, AttemptStatus.FAILED, response_code=505)
        else:
            _refund(attempt)
        _record_check(attempt, ctx, CheckOutcome.ERROR, exc.response_code)
        _failed(attempt, ctx, "provider_error")
        raise

    code_ = result.response_code
    if result.verified:
        # 703 counts as success only because this attempt of ours is still pending (S4).
        if _settle(
            attempt,
            AttemptStatus.VERIFIED,
            response_code=code_,
            verified_at=timezone.now(),
        ):
            ratelimit.reset("validate_failure", phone_keys)  # forget failures (R13)
            _event("verified", attempt, ctx)
            signals.verification_verified.send(
                sender=VerificationAttempt, attempt=attempt, request=ctx.request
            )
        else:
            attempt.refresh_from_db(fields=["status", "verified_at", "check_count"])
        _record_check(attempt, ctx, CheckOutcome.VERIFIED, code_)
    elif result.outcome is Outcome.WRONG_CODE:
        _record_check(attempt, ctx, CheckOutcome.WRONG_CODE, code_)
        _count_failure(phone_keys)
        # Lock when this check used the last allowed attempt (whoever's check it was).
        locked = VerificationAttempt.objects.filter(
            pk=attempt.pk,
            status=AttemptStatus.PENDING,
            check_count__gte=F("max_attempts"),
        ).update(status=AttemptStatus.LOCKED, last_response_code=code_)
        if locked:
            attempt.status = AttemptStatus.LOCKED
            attempt.last_response_code = code_
            _event("locked", attempt, ctx)
            signals.verification_locked.send(
                sender=VerificationAttempt, attempt=attempt, request=ctx.request
            )
        else:
            attempt.refresh_from_db(fields=["status", "check_count"])
        _failed(attempt, ctx, "wrong_code")
    elif result.outcome is Outcome.EXPIRED:
        _settle(attempt, AttemptStatus.EXPIRED, response_code=code_)
        _record_check(attempt, ctx, CheckOutcome.EXPIRED, code_)
        _failed(attempt, ctx, "expired")
    else:  # Outcome.LIMIT_REACHED: the vendor locked this verification
        _settle(attempt, AttemptStatus.LOCKED, response_code=code_)
        _record_check(attempt, ctx, CheckOutcome.LOCKED, code_)
        _event("locked", attempt, ctx, by="provider")
        signals.verification_locked.send(
            sender=VerificationAttempt, attempt=attempt, request=ctx.request
        )
    return attempt


def _count_failure(phone_keys: dict[str, str]) -> None:
    try:
        ratelimit.hit("validate_failure", phone_keys)
    except RateLimited:
        pass  # the cap applies to the *next* validate; this one has been answered


def _settle(
    attempt: VerificationAttempt,
    status: str,
    *,
    response_code: int | None = None,
    verified_at: datetime | None = None,
) -> bool:
    """Move a pending attempt to ``status`` if it is still pending; True if this call did."""
    values: dict[str, Any] = {"status": status}
    if response_code is not None:
        values["last_response_code"] = response_code
    if verified_at is not None:
        values["verified_at"] = verified_at
    changed = VerificationAttempt.objects.filter(
        pk=attempt.pk, status=AttemptStatus.PENDING
    ).update(**values)
    if changed:
        for key, value in values.items():
            setattr(attempt, key, value)
    return bool(changed)


def _refund(attempt: VerificationAttempt) -> None:
    """Give back a reserved check the vendor never evaluated."""
    VerificationAttempt.objects.filter(pk=attempt.pk, check_count__gt=0).update(
        check_count=F("check_count") - 1
    )
    attempt.check_count = max(attempt.check_count - 1, 0)


def _record_check(
    attempt: VerificationAttempt, ctx: _Context, outcome: str, response_code: int | None
) -> None:
    attempt.check_outcome = outcome
    VerificationCheck.objects.create(
        attempt=attempt, outcome=outcome, response_code=response_code, ip_address=ctx.ip
    )


# -- consume --------------------------------------------------------------------------


def _proof_filter(e164: str, purpose: str) -> Q:
    return Q(
        status=AttemptStatus.VERIFIED,
        consumed_at__isnull=True,
        phone_number=e164,
        purpose=purpose,
        verified_at__gte=timezone.now()
        - timedelta(seconds=verifynow_settings.PROOF_TTL),
    )


def verified_attempt(
    attempt: VerificationAttempt | uuid.UUID | str,
    *,
    phone_number: object,
    purpose: str,
    request: HttpRequest | None = None,
) -> VerificationAttempt:
    """Return ``attempt`` if it proves ``phone_number`` for ``purpose``, without using it.

    The read-only twin of :func:`consume_verification` (same conditions), for form
    validation; the proof is only used up by :func:`consume_verification`.

    :raises AttemptNotFound: not verified, already used, too old, another number,
        purpose, session or user.
    """
    e164 = phone.normalize(phone_number)
    ctx = _context(request, bind=False)
    resolved = _resolve(attempt, ctx)
    if not VerificationAttempt.objects.filter(
        _proof_filter(e164, purpose), pk=resolved.pk
    ).exists():
        raise AttemptNotFound(_PROOF_MISSING)
    return resolved


def consume_verification(
    attempt: VerificationAttempt | uuid.UUID | str,
    *,
    phone_number: object,
    purpose: str,
    request: HttpRequest | None = None,
) -> VerificationAttempt:
    """Use up the proof that ``phone_number`` was verified for ``purpose``.

    Succeeds once per attempt: it must be verified, not yet consumed, for this number
    and purpose, bound to the requester, and verified within ``PROOF_TTL``. Call it
    inside the transaction that saves what the proof is for (the new account), so a
    rollback gives the proof back and one verification makes at most one account.

    :raises AttemptNotFound: any of the conditions above fails (one error for all).
    """
    e164 = phone.normalize(phone_number)
    ctx = _context(request, bind=False)
    attempt = _resolve(attempt, ctx)
    now = timezone.now()
    consumed = VerificationAttempt.objects.filter(
        _proof_filter(e164, purpose), pk=attempt.pk
    ).update(consumed_at=now)
    if not consumed:
        raise AttemptNotFound(_PROOF_MISSING)
    attempt.consumed_at = now
    _event("consumed", attempt, ctx, purpose=purpose)
    return attempt
