"""What the policy holds against one phone number right now, and the operator's lifts.

A support desk answering "I never got my code" or "it says too many attempts" needs,
for one number it already knows, every wait the policy would apply to a send or a code
check, and until when::

    state = inspect_phone("+919876543210")
    state.cooldown.available_at     # when the resend cooldown lets a code go
    [r for r in state.rules if r.over]  # per-phone/prefix rules at their limit
    state.vendor_code_until         # VerifyNow still holds a live code until then

Every key of the limits cache is an HMAC of its value (see
:func:`~django_verifynow.ratelimit.hashed`), so nothing here can list numbers: state is
read for a number the operator typed. Inspection never counts, reserves or changes
anything.

The limits that belong to a requester (per IP, per session or user) are not shown: the
desk does not know the requester's address or session. Site-wide ``global`` rules are
left out too; the daily cap is shown because operators are asked about it.

The lifts (:func:`lift_phone`, :func:`lift_prefix`) are the operator's decisions and
clear exactly what they name: the number's cooldown and its per-phone ``send``,
``resend`` and ``validate_failure`` counters, or the block (and counters) of its prefix.
They cannot shorten VerifyNow's own window: while the vendor holds a live code for the
number it answers 506 to any send and sends no SMS (:attr:`PhoneState.vendor_code_until`
says until when).

The attempt history is read from the database lazily (inside the functions), so
importing the policy never needs the app registry.

The state dataclasses live in :mod:`.state` and the lifts in :mod:`.lift`; both are
importable from here too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING

from .. import phone, ratelimit
from ..conf import verifynow_settings
from . import caps, cooldown
from .lift import LiftFailed, LiftResult, lift_phone, lift_prefix
from .state import (
    FAILURE_ACTION,
    NUMBER_KEYS,
    SEND_ACTIONS,
    CooldownState,
    DailyCapState,
    Lifted,
    PhoneState,
    PrefixState,
    RuleState,
    describe_rule,
)

if TYPE_CHECKING:
    from ..models import PrefixBlock

__all__ = [
    "FAILURE_ACTION",
    "SEND_ACTIONS",
    "CooldownState",
    "DailyCapState",
    "LiftFailed",
    "LiftResult",
    "Lifted",
    "PhoneState",
    "PrefixState",
    "RuleState",
    "describe_rule",
    "inspect_phone",
    "lift_phone",
    "lift_prefix",
]


def _moment_to_datetime(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, tz=dt_timezone.utc)


# -- reading ---------------------------------------------------------------------------
def _number_rules(action: str, kinds: Iterable[str]) -> list[ratelimit.Rule]:
    return [rule for rule in ratelimit.rules_for(action) if rule.key in kinds]


@ratelimit.guarded
def _rule_state(
    action: str, rule: ratelimit.Rule, keys: dict[str, str | None], moment: float
) -> RuleState:
    # The mechanism exposes no reader of a window's counts; its own bucket layout is
    # used so the keys read here cannot drift from the keys it counts in.
    (bucket,) = ratelimit._buckets(action, keys, moment, [rule])
    counts = ratelimit.cache().get_many([bucket.current, bucket.previous])
    current = ratelimit._int(counts.get(bucket.current))
    previous = ratelimit._int(counts.get(bucket.previous))
    period = rule.period
    used = previous * (period - bucket.elapsed) / period + current
    # The verdict and the wait come from check() itself, so the desk says exactly
    # what the next send would be told.
    try:
        ratelimit.check(action, keys, now=moment, rules=[rule])
    except ratelimit.LimitExceeded as exc:
        retry_after = exc.retry_after
    else:
        retry_after = 0
    return RuleState(
        action=action,
        rule=rule,
        current=current,
        previous=previous,
        used=round(used, 2),
        retry_after=retry_after,
        free_at=_moment_to_datetime(moment + retry_after) if retry_after else None,
    )


@ratelimit.guarded
def _cooldown_state(e164: str, moment: float) -> CooldownState:
    wait = cooldown.remaining(e164, now=moment)
    # The record's layout belongs to the cooldown module; read through its own key
    # helpers so both always agree.
    record = cooldown._state(e164) or {}
    in_flight = ratelimit.cache().get(cooldown._inflight_key(e164)) is not None

    def stamp(name: str) -> datetime | None:
        value = record.get(name)
        return _moment_to_datetime(float(value)) if value else None

    return CooldownState(
        sends=int(record.get("n", 0)),
        last_send=stamp("last"),
        growing_until=stamp("until"),
        vendor_window_until=stamp("valid_until"),
        available_at=_moment_to_datetime(moment + wait.seconds),
        seconds=wait.seconds,
        code_valid=wait.code_valid,
        in_flight=in_flight,
    )


def _daily_key(moment: float) -> str:
    # The same key as caps.take_daily_slot (which exposes no reader); the support desk
    # tests compare both after real sends, so a change there shows here.
    day = _moment_to_datetime(moment).strftime("%Y%m%d")
    return f"{ratelimit.KEY_ROOT}:daily_cap:global:all:{day}"


@ratelimit.guarded
def _daily_cap_state(moment: float) -> DailyCapState:
    cap = verifynow_settings.DAILY_SEND_CAP
    midnight = _moment_to_datetime(moment + max(1, math.ceil(86400 - moment % 86400)))
    if cap is None:
        return DailyCapState(cap=None, used=None, resets_at=midnight)
    used = ratelimit._int(ratelimit.cache().get(_daily_key(moment)))
    return DailyCapState(cap=cap, used=used, resets_at=midnight)


def _rows_in_force(prefix: str, at: datetime) -> tuple[PrefixBlock, ...]:
    from ..models import PrefixBlock

    return tuple(
        PrefixBlock.objects.filter(
            prefix=prefix, lifted_at__isnull=True, until__gt=at
        ).order_by("-blocked_at")[:10]
    )


def _vendor_code_until(e164: str, at: datetime) -> datetime | None:
    """The latest expiry of an attempt whose code VerifyNow may still hold."""
    from ..models import AttemptStatus, VerificationAttempt

    # Pending and locked attempts: a locked code is no longer accepted, but VerifyNow
    # keeps its verification (and answers 506) until its window ends. A verified one
    # is done at the vendor; an expired or failed one holds nothing.
    return (
        VerificationAttempt.objects.for_phone(e164)
        .filter(
            status__in=(AttemptStatus.PENDING, AttemptStatus.LOCKED),
            verified_at__isnull=True,
            expires_at__gt=at,
        )
        .order_by("-expires_at")
        .values_list("expires_at", flat=True)
        .first()
    )


def inspect_phone(e164: str, *, now: float | None = None) -> PhoneState:
    """Read everything the policy holds against ``e164`` (an E.164 number) now.

    Never raises for a cache failure: the state then says
    :attr:`~PhoneState.limits_available` False, and what the database knows (prefix
    block rows, VerifyNow's live code) is still given.

    :param now: epoch seconds; defaults to the limits' clock
        (:data:`django_verifynow.ratelimit.timer`).
    """
    moment = ratelimit.now_or(now)
    checked_at = _moment_to_datetime(moment)
    prefix = phone.prefix(e164)
    rows = _rows_in_force(prefix, checked_at)
    vendor_until = _vendor_code_until(e164, checked_at)
    keys: dict[str, str | None] = {"phone": e164, "prefix": prefix}
    try:
        cooling = _cooldown_state(e164, moment)
        rules = tuple(
            _rule_state(action, rule, keys, moment)
            for action in SEND_ACTIONS
            for rule in _number_rules(action, NUMBER_KEYS)
        )
        failures = tuple(
            _rule_state(FAILURE_ACTION, rule, keys, moment)
            for rule in _number_rules(FAILURE_ACTION, ("phone",))
        )
        block_seconds = caps.prefix_block_remaining(prefix, now=moment)
        daily = _daily_cap_state(moment)
    except ratelimit.StoreUnavailable as exc:
        return PhoneState(
            phone=e164,
            checked_at=checked_at,
            limits_available=False,
            cooldown=None,
            rules=(),
            failure_cap=(),
            prefix=PrefixState(prefix, None, None, rows),
            daily_cap=None,
            vendor_code_until=vendor_until,
            error=str(exc),
        )
    window = cooling.vendor_window_until
    if window is not None and window > checked_at:
        vendor_until = max(vendor_until or window, window)
    return PhoneState(
        phone=e164,
        checked_at=checked_at,
        limits_available=True,
        cooldown=cooling,
        rules=rules,
        failure_cap=failures,
        prefix=PrefixState(
            prefix=prefix,
            cache_seconds=block_seconds,
            cache_until=(
                checked_at + timedelta(seconds=block_seconds) if block_seconds else None
            ),
            rows=rows,
        ),
        daily_cap=daily,
        vendor_code_until=vendor_until,
    )
