"""Sending a code: ``send_otp`` and ``resend_otp``.

The order, so nothing costs money or budget before it has passed:

1. parse the number to E.164 and apply the country and number-type rules;
2. admission by :mod:`django_verifynow.policy`: cooldown, limits and daily cap, all
   reserved at once or none;
3. the attempt row is written as ``unknown`` *before* the vendor call, so a process
   that dies while waiting still leaves a record that an SMS may have gone out;
4. the vendor call; then the admission is committed (an SMS went out, or may have) or
   released (nothing was sent), and the attempt settles;
5. only when a new code went out is the requester's previous attempt retired, so a
   failed resend never kills the code the user already has.

The channel: ``CHANNELS`` orders them (:mod:`django_verifynow.channels`). When
VerifyNow refuses one as not deliverable (:class:`ChannelRefused`), step 4 makes a
second vendor call on the next channel, within the first call's deadline, for the
same admission and the same attempt row: the policy counts one send, the row records
the channel that delivered and the one refused.

Steps 1-3 and 4's bookkeeping are one flow (:mod:`.vendor`) that yields the vendor
call: ``send_otp`` makes it with the sync client, ``asend_otp`` awaits it with the
async one, and both run the same phases.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import channels, phone, policy, ratelimit, statements
from ..client import Deadline, SendResult, get_client
from ..conf import verifynow_settings
from ..exceptions import (
    ChannelRefused,
    InvalidInput,
    LimitsUnavailable,
    PhoneNumberNotAllowed,
    PrefixBlocked,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    VerifyNowError,
)
from ..executor import Flow
from ..models import AttemptStatus, PrefixBlock, VerificationAttempt
from ..policy import pumping
from ..reasons import Reason
from ..signals import verification_sent
from . import notify
from .requester import Requester, requester_for, resolve
from .vendor import VendorCall, arun, prefetch_keys, run, with_state

__all__ = [
    "VENDOR_DEFAULT_VALIDITY",
    "aresend_otp",
    "asend_otp",
    "resend_available_at",
    "resend_otp",
    "send_otp",
]

#: VerifyNow's default code life, assumed when a send's answer does not say (seconds).
VENDOR_DEFAULT_VALIDITY = 60

_PURPOSE_RE = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,63}$")


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
    region: str | None = None,
) -> VerificationAttempt:
    """Send a code to ``phone_number`` and return the new attempt (status ``pending``).

    The attempt's ``code_sent`` is False when VerifyNow kept the code it had already
    sent to this number (it answered 506): no new SMS went out, the code the user has
    is still the one to enter.

    :param phone_number: as typed (any formatting with ``+``) or a ``PhoneNumber``.
    :param request: binds the attempt to the session and user and keys the IP limits.
    :param user: binds the attempt to this user (defaults to ``request.user``).
    :param purpose: what the proof is for (``"signup"``, ``"phone_change"``, …).
    :param flow_type: ``"SMS"`` or ``"WHATSAPP"``, one of ``CHANNELS``: the send
        starts there and falls back only to the channels listed after it; ``None``
        (the default) follows ``CHANNELS`` from the first.
    :param region: ISO 3166 alpha-2 region of a number typed without ``+`` (the
        country the user picked); a number with ``+`` ignores it.
    :raises InvalidPhoneNumber, PhoneNumberNotAllowed, InvalidInput: before anything.
    :raises RateLimited: a limit or the cooldown (``DailyCapReached`` for the daily
        cap); nothing was sent or counted.
    :raises ProviderUnavailable: nothing was sent (``LimitsUnavailable`` when the
        limits cache is down); a :class:`ProviderTimeout` when a code may have gone out
        (recorded ``unknown``).
    :raises ProviderError: the vendor refused (``OutOfCredit`` for 508,
        ``ChannelRefused`` when no channel was left to fall back to); recorded
        ``failed``, nothing counted.
    """
    return run(_send_otp(phone_number, request, user, purpose, flow_type, region))


async def asend_otp(
    phone_number: object,
    *,
    request: HttpRequest | None = None,
    user: Any = None,
    purpose: str = "verify",
    flow_type: str | None = None,
    region: str | None = None,
) -> VerificationAttempt:
    """:func:`send_otp`, awaited: same arguments, result, exceptions and signals.

    The database and cache phases run in the async API's executor; the vendor call
    is awaited without holding a thread or a database connection (``async`` extra).
    """
    return await arun(
        _send_otp(phone_number, request, user, purpose, flow_type, region)
    )


def _send_otp(
    phone_number: object,
    request: HttpRequest | None,
    user: Any,
    purpose: str,
    flow_type: str | None,
    region: str | None,
) -> Flow[VerificationAttempt]:
    order = channels.order(flow_type)
    purpose = _clean_purpose(purpose)
    e164 = phone.normalize(phone_number, region)
    requester = requester_for(request, user, bind=True)
    try:
        phone.check_allowed(e164)
    except PhoneNumberNotAllowed as exc:
        notify.blocked(e164, requester, exc.reason or Reason.COUNTRY, "send")
        raise
    return (
        yield from _send(e164, requester, purpose=purpose, order=order, previous=None)
    )


def resend_otp(
    attempt: VerificationAttempt | uuid.UUID | str,
    *,
    request: HttpRequest | None = None,
    flow_type: str | None = None,
) -> VerificationAttempt:
    """Send a new code to the phone of ``attempt``; return the new attempt.

    The previous attempt stops being valid once the new code went out (not before: a
    resend that fails leaves the code the user has working). The cooldown and every
    send limit apply, plus the ``resend`` limits.

    :param flow_type: the channel of the new code ("Send by SMS instead"), one of
        ``CHANNELS``; ``None`` resends on the channel that delivered ``attempt``. The
        send falls back from there along ``CHANNELS`` as :func:`send_otp` does.
    :raises AttemptNotFound: unknown, or bound to another session or user.
    :raises InvalidInput: the attempt is already verified, or the channel is not
        allowed.
    """
    return run(_resend_otp(attempt, request, flow_type))


async def aresend_otp(
    attempt: VerificationAttempt | uuid.UUID | str,
    *,
    request: HttpRequest | None = None,
    flow_type: str | None = None,
) -> VerificationAttempt:
    """:func:`resend_otp`, awaited: same arguments, result, exceptions and signals."""
    return await arun(_resend_otp(attempt, request, flow_type))


def send_flow(
    phone_number: object,
    *,
    request: HttpRequest | None = None,
    user: Any = None,
    purpose: str = "verify",
    flow_type: str | None = None,
    region: str | None = None,
) -> Flow[VerificationAttempt]:
    """:func:`send_otp` as a flow (:mod:`django_verifynow.executor`), for an async
    caller that runs its own work in the same executor steps (the API)."""
    return _send_otp(phone_number, request, user, purpose, flow_type, region)


def resend_flow(
    attempt: VerificationAttempt | uuid.UUID | str,
    *,
    request: HttpRequest | None = None,
    flow_type: str | None = None,
) -> Flow[VerificationAttempt]:
    """:func:`resend_otp` as a flow (see :func:`send_flow`)."""
    return _resend_otp(attempt, request, flow_type)


def _resend_channels(
    previous: VerificationAttempt, flow_type: str | None
) -> tuple[str, ...]:
    """A resend's order: the channel asked for, else the one that delivered the
    previous code (a fallback is not tried again), else the site's order."""
    if flow_type:
        return channels.order(flow_type)
    if previous.flow_type in channels.allowed():
        return channels.order(previous.flow_type)
    return channels.order()  # the site no longer offers that channel


def _resend_otp(
    attempt: VerificationAttempt | uuid.UUID | str,
    request: HttpRequest | None,
    flow_type: str | None = None,
) -> Flow[VerificationAttempt]:
    if flow_type:
        channels.order(flow_type)  # a bad channel is refused before any lookup
    requester = requester_for(request, bind=True)
    previous = resolve(attempt, requester)
    if previous.status == AttemptStatus.VERIFIED:
        raise InvalidInput(_("This phone number is already verified."))
    if requester.user is None and previous.user_id is not None:
        requester = requester.with_user(previous.user)
    return (
        yield from _send(
            previous.phone_number,
            requester,
            purpose=previous.purpose,
            order=_resend_channels(previous, flow_type),
            previous=previous,
        )
    )


def resend_available_at(attempt: VerificationAttempt) -> datetime:
    """When the cooldown lets a new code go to this attempt's phone."""
    return timezone.now() + timedelta(seconds=policy.resend_wait(attempt.phone_number))


def _admit(
    e164: str, requester: Requester, previous: VerificationAttempt | None
) -> policy.Admission:
    action = "send" if previous is None else "resend"
    # A locked attempt's code can no longer be entered: a wait must not say otherwise.
    usable = previous is None or previous.state == AttemptStatus.PENDING
    try:
        return policy.admit_send(
            e164,
            requester.limit_keys,
            resend=previous is not None,
            code_usable=usable,
            prefetch=prefetch_keys(),
        )
    except (RateLimited, LimitsUnavailable) as exc:
        notify.blocked(e164, requester, exc.reason or Reason.PHONE_LIMIT, action)
        if isinstance(exc, PrefixBlocked) and exc.new_block:
            _record_block(e164, requester, exc)
        raise


def _record_block(e164: str, requester: Requester, exc: PrefixBlocked) -> None:
    """Record a new prefix block for the admin, and say pumping is suspected."""
    prefix = phone.prefix(e164)
    country = phone.region_of(e164)
    PrefixBlock.objects.create(
        prefix=prefix,
        country=country,
        until=timezone.now() + timedelta(seconds=exc.retry_after),
    )
    notify.pumping(
        requester,
        scope="prefix",
        country=country,
        prefix=phone.mask(prefix) + "XXXX",
        sends=max(
            (r.limit for r in ratelimit.rules_for("send") if r.key == "prefix"),
            default=0,
        ),
    )


def _send(
    e164: str,
    requester: Requester,
    *,
    purpose: str,
    order: tuple[str, ...],
    previous: VerificationAttempt | None,
) -> Flow[VerificationAttempt]:
    admission = _admit(e164, requester, previous)
    try:
        client = get_client()  # configuration errors surface before anything is written
    except BaseException:
        admission.release()
        raise
    settings = verifynow_settings
    attempt = VerificationAttempt.objects.create(
        phone_number=e164,
        country=phone.region_of(e164),
        status=AttemptStatus.UNKNOWN,
        purpose=purpose,
        flow_type=order[0],
        otp_length=settings.OTP_LENGTH,
        max_attempts=settings.MAX_ATTEMPTS,
        user=requester.user if requester.user_id is not None else None,
        ip_address=requester.ip,
        session_binding=requester.binding,
    )
    number = phone.split_for_vendor(e164)
    # With a fallback possible, every channel shares one call's budget: a user never
    # waits longer than one send may take (DEADLINE), whatever the vendor refuses.
    deadline = (
        Deadline(getattr(client, "deadline", settings.DEADLINE))
        if len(order) > 1
        else None
    )
    del client  # the driver makes the call, with the sync or the async client
    for index, channel in enumerate(order):
        call: dict[str, Any] = {
            "country_code": number.country_code,
            "national_number": number.national_number,
            "flow_type": channel,
            "otp_length": attempt.otp_length,
        }
        if deadline is not None:
            call["deadline"] = deadline
        try:
            # The row is written and the admission held: the vendor call is the one
            # wait, and the async API holds no thread or connection across it.
            result = yield VendorCall(
                "send",
                # The state read by the admission's round trip is fresh for the first
                # call only; a fallback's call reads its own.
                with_state(call, admission.prefetched if index == 0 else None),
            )
        except ChannelRefused as exc:
            # Nothing was sent on this channel: the same admission and row go on to
            # the next one. The row says so at once, in case the process dies.
            refused = attempt.refused_flow_type or channel
            if index + 1 < len(order):
                attempt.flow_type = order[index + 1]
                attempt.refused_flow_type = refused
                VerificationAttempt.objects.filter(pk=attempt.pk).update(
                    flow_type=attempt.flow_type, refused_flow_type=refused
                )
                continue
            attempt.refused_flow_type = refused
            _give_up(attempt, requester, admission, exc)
            raise
        except ProviderTimeout as exc:
            # An SMS may have gone out: every budget stays spent and the row stays
            # "unknown"; the user may ask again once the cooldown is over. The previous
            # attempt stays live: its code may be the only one that arrives.
            admission.commit(valid_for=VENDOR_DEFAULT_VALIDITY)
            exc.retry_after = max(policy.resend_wait(e164), 1)
            notify.failed(attempt, requester, Reason.PROVIDER_TIMEOUT)
            raise
        except (ProviderUnavailable, ProviderError, RateLimited) as exc:
            _give_up(attempt, requester, admission, exc)
            raise
        except BaseException:
            admission.commit()  # unexpected: assume the worst (a code may have gone)
            raise
        break
    if result.reused:
        _reuse(attempt, result, requester, admission)
    else:
        valid_for = result.timeout or VENDOR_DEFAULT_VALIDITY
        admission.commit(valid_for=valid_for, country=attempt.country)
        _watch_pumping(attempt, requester, admission.pumped)
    attempt.resend_wait = admission.resend_wait  # the serializer need not read it back
    _go_live(attempt, result, requester, previous)
    fallback_from = attempt.refused_flow_type or None
    notify.event(
        "sent",
        attempt,
        requester,
        code_sent=attempt.code_sent,
        channel=attempt.flow_type,
        fallback_from=fallback_from,
    )
    verification_sent.send(
        sender=VerificationAttempt,
        attempt=attempt,
        request=requester.request,
        fallback_from=fallback_from,
    )
    return attempt


def _give_up(
    attempt: VerificationAttempt,
    requester: Requester,
    admission: policy.Admission,
    exc: VerifyNowError,
) -> None:
    """Nothing was sent: the user keeps every budget (cooldown, limits, daily cap),
    and the row says ``failed`` with the vendor's code and any channel refused."""
    admission.release()
    code = getattr(exc, "response_code", None)
    VerificationAttempt.objects.filter(pk=attempt.pk).transition(
        AttemptStatus.FAILED,
        from_=(AttemptStatus.UNKNOWN,),
        last_response_code=code,
        refused_flow_type=attempt.refused_flow_type,
    )
    attempt.status = AttemptStatus.FAILED
    attempt.last_response_code = code
    notify.failed(attempt, requester, exc.reason or Reason.PROVIDER_ERROR)


def _watch_pumping(
    attempt: VerificationAttempt, requester: Requester, sends: int | None = None
) -> None:
    suspicion = pumping.record_send(attempt.country, sends=sends)
    if suspicion is not None:
        notify.pumping(
            requester,
            scope="country",
            country=suspicion.country,
            sends=suspicion.sends,
            verified=suspicion.verified,
        )


def _holders(e164: str, verification_id: str, attempt: VerificationAttempt) -> Any:
    return VerificationAttempt.objects.filter(
        phone_number=e164, provider_verification_id=verification_id
    ).exclude(pk=attempt.pk)


def _same_requester(row: VerificationAttempt, requester: Requester) -> bool:
    """Whether ``row`` was started by ``requester`` (a server-side caller included)."""
    if row.user_id is not None or requester.user_id is not None:
        return row.user_id == requester.user_id
    return row.session_binding == requester.binding


def _reuse(
    attempt: VerificationAttempt,
    result: SendResult,
    requester: Requester,
    admission: policy.Admission,
) -> None:
    """VerifyNow kept its live code (506): bind to it only if it is this requester's."""
    # No SMS went out: give every budget back, but keep resends waiting for the
    # vendor's window, or the next resend would get 506 again and say "sent".
    admission.release(valid_for=result.timeout or VENDOR_DEFAULT_VALIDITY)
    holders = list(_holders(attempt.phone_number, result.verification_id, attempt))
    if any(not _same_requester(row, requester) for row in holders):
        # A vendor verification backs one requester only: another session's code must
        # never prove this one, and this session must not inherit its verdicts.
        _fail(attempt, result.response_code)
        notify.failed(attempt, requester, Reason.VENDOR_CODE_PENDING)
        raise RateLimited(
            retry_after=result.timeout or VENDOR_DEFAULT_VALIDITY,
            reason=Reason.VENDOR_CODE_PENDING,
        )
    attempt.code_sent = False
    if holders:
        # The code the user has came by the channel of the attempt that sent it; the
        # vendor counts wrong codes per verificationId, so the count carries over.
        newest = max(holders, key=lambda row: row.created_at)
        attempt.flow_type = newest.flow_type
        used = max(row.check_count for row in holders)
        attempt.check_count = min(used, attempt.max_attempts)
    if attempt.check_count >= attempt.max_attempts:
        # The vendor still holds a code whose tries are all used up: no code went out
        # and none can be checked until the vendor's window ends. Say so, not "sent".
        _fail(attempt, result.response_code)
        notify.failed(attempt, requester, Reason.VENDOR_CODE_LOCKED)
        raise RateLimited(
            retry_after=result.timeout or VENDOR_DEFAULT_VALIDITY,
            reason=Reason.VENDOR_CODE_LOCKED,
        )


def _fail(attempt: VerificationAttempt, response_code: int | None) -> None:
    VerificationAttempt.objects.filter(pk=attempt.pk).transition(
        AttemptStatus.FAILED,
        from_=(AttemptStatus.UNKNOWN,),
        last_response_code=response_code,
        code_sent=False,
    )
    attempt.status = AttemptStatus.FAILED
    attempt.code_sent = False
    attempt.last_response_code = response_code


def _go_live(
    attempt: VerificationAttempt,
    result: SendResult,
    requester: Requester,
    previous: VerificationAttempt | None,
) -> None:
    """Retire the requester's previous attempt, then make this one live.

    The database allows one live attempt per phone and requester (a partial unique
    index); retiring first keeps that true at every moment. Concurrent sends to one
    phone are already kept apart by the policy's in-flight marker, so the index is a
    backstop: if it ever fires (a marker lost with its cache), this send's code went
    out, so it retires the other one and tries once more. Inside a transaction the
    two statements run in a savepoint, so that retry is possible on PostgreSQL.
    """
    for last_try in (False, True):
        try:
            if transaction.get_connection().in_atomic_block:
                with transaction.atomic():
                    _retire_previous(attempt, requester, previous)
                    _settle_sent(attempt, result)
            else:
                _retire_previous(attempt, requester, previous)
                _settle_sent(attempt, result)
            return
        except IntegrityError:
            if last_try:
                raise


#: What a send learnt from the vendor, written as the row goes live (every send runs
#: it: compiled once, ``django_verifynow.statements``). ``_settle_sent`` supplies
#: exactly these values; ``run()`` refuses any other set.
_SETTLED_VALUES = (
    "provider_verification_id",
    "provider_transaction_id",
    "last_response_code",
    "expires_at",
    "code_sent",
    "flow_type",
    "check_count",
)
_GO_LIVE = VerificationAttempt.objects.filter(
    pk=statements.Param("pk")
).transition_statement(
    AttemptStatus.PENDING,
    from_=(AttemptStatus.UNKNOWN,),
    **{name: statements.Param(name) for name in _SETTLED_VALUES},
)


def _settle_sent(attempt: VerificationAttempt, result: SendResult) -> None:
    settings = verifynow_settings
    lifetime = min(result.timeout or settings.CODE_TTL, settings.CODE_TTL)
    values = {
        "provider_verification_id": result.verification_id,
        "provider_transaction_id": result.transaction_id or "",
        "last_response_code": result.response_code,
        "expires_at": timezone.now() + timedelta(seconds=lifetime),
        "code_sent": attempt.code_sent,
        "flow_type": attempt.flow_type,
        "check_count": attempt.check_count,
    }
    _GO_LIVE.run(pk=attempt.pk, **values)
    attempt.status = AttemptStatus.PENDING
    for key, value in values.items():
        setattr(attempt, key, value)


def _retire_previous(
    attempt: VerificationAttempt,
    requester: Requester,
    previous: VerificationAttempt | None,
) -> None:
    """Only the newest attempt for a phone and a requester is live."""
    # A session's first send has nothing to retire: its binding was made by this
    # request, so no row carries it. That skips a statement for every new visitor.
    binding = "" if requester.new_binding else requester.binding
    if previous is None and not binding and requester.user_id is None:
        return
    stale = Q(pk=previous.pk) if previous is not None else Q(pk__in=[])
    if binding:
        stale |= Q(session_binding=binding)
    if requester.user_id is not None:
        stale |= Q(user_id=requester.user_id)
    VerificationAttempt.objects.filter(
        stale, phone_number=attempt.phone_number
    ).exclude(pk=attempt.pk).transition(AttemptStatus.EXPIRED)
