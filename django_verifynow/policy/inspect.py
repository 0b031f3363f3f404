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
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING, Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from .. import phone, ratelimit
from ..conf import verifynow_settings
from . import caps, cooldown

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

#: The ``RATE_LIMITS`` actions a send passes (a resend passes both).
SEND_ACTIONS = ("send", "resend")
#: The ``RATE_LIMITS`` action of the per-phone failure cap.
FAILURE_ACTION = "validate_failure"
#: The rule key kinds that belong to a number (the others belong to a requester or to
#: the whole site).
NUMBER_KEYS = ("phone", "prefix")

_PERIOD_NAMES: dict[int, Promise] = {
    1: _("second"),
    60: _("minute"),
    3600: _("hour"),
    86400: _("day"),
}
_KEY_NAMES: dict[str, Promise] = {
    "phone": _("phone number"),
    "prefix": _("prefix"),
    "ip": _("IP address"),
    "session": _("session"),
    "global": _("site"),
}
_ACTION_NAMES: dict[str, Promise] = {
    "send": _("sends"),
    "resend": _("resends"),
    FAILURE_ACTION: _("wrong codes"),
}


def _moment_to_datetime(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, tz=dt_timezone.utc)


def describe_rule(action: str, rule: ratelimit.Rule) -> str:
    """A rule in words: ``"sends: 5 per hour per phone number"``."""
    period: str | Promise | None = _PERIOD_NAMES.get(rule.period)
    if period is None:
        period = _("%(seconds)d s") % {"seconds": rule.period}
    return _("%(action)s: %(limit)d per %(period)s per %(key)s") % {
        "action": _ACTION_NAMES.get(action, action),
        "limit": rule.limit,
        "period": period,
        "key": _KEY_NAMES.get(rule.key, rule.key),
    }


# -- the state -------------------------------------------------------------------------
@dataclass(frozen=True)
class CooldownState:
    """The resend cooldown of a number (see :mod:`.cooldown`)."""

    #: Sends in the current streak: the growing wait doubles with each (it starts over
    #: after a day of silence).
    sends: int
    last_send: datetime | None
    #: End of the growing wait (``RESEND_COOLDOWN`` doubled per send), if recorded.
    growing_until: datetime | None
    #: End of VerifyNow's validity window of the code it sent, if recorded.
    vendor_window_until: datetime | None
    #: When the cooldown lets the next code go (the moment of inspection when it does
    #: already).
    available_at: datetime
    #: Seconds until :attr:`available_at` (0 = now).
    seconds: int
    #: True when the vendor's window is what keeps the number waiting: the code already
    #: sent can still be entered.
    code_valid: bool
    #: Another send to the number is being made right now (its marker expires by
    #: itself after :data:`~django_verifynow.policy.cooldown.INFLIGHT_SECONDS`).
    in_flight: bool

    @property
    def active(self) -> bool:
        """Whether the cooldown refuses a send now."""
        return self.seconds > 0


@dataclass(frozen=True)
class RuleState:
    """One rate-limit rule applied to this number, and its sliding window now."""

    action: str
    rule: ratelimit.Rule
    #: Hits counted in the current fixed window, and in the one before.
    current: int
    previous: int
    #: The sliding count the rule compares with its limit: the previous window weighted
    #: by how much of it still overlaps the period, plus the current one.
    used: float
    #: Seconds until one more hit passes (0 = it passes now).
    retry_after: int
    #: When one more hit passes; ``None`` when it does now.
    free_at: datetime | None

    @property
    def over(self) -> bool:
        """Whether the rule refuses one more hit now."""
        return self.retry_after > 0

    @property
    def label(self) -> str:
        """The rule in words (:func:`describe_rule`)."""
        return describe_rule(self.action, self.rule)


@dataclass(frozen=True)
class PrefixState:
    """The block on the number's prefix (the number without its last 4 digits).

    The block the policy enforces lives in the cache; the ``PrefixBlock`` rows record
    it for operators. They can disagree (a flushed cache forgets a block its row still
    shows), so both are given.
    """

    prefix: str
    #: Seconds the cache still blocks the prefix: 0 = not blocked, ``None`` = unknown
    #: (the cache is down).
    cache_seconds: int | None
    cache_until: datetime | None
    #: ``PrefixBlock`` rows for the prefix that are in force (not lifted, not past
    #: their end), newest first.
    rows: tuple[PrefixBlock, ...]

    @property
    def blocked(self) -> bool:
        """Blocked in the cache or by a row in force."""
        return bool(self.cache_seconds) or bool(self.rows)

    @property
    def until(self) -> datetime | None:
        """The later end of the cache's block and of the rows in force."""
        ends = [row.until for row in self.rows]
        if self.cache_until is not None:
            ends.append(self.cache_until)
        return max(ends) if ends else None


@dataclass(frozen=True)
class DailyCapState:
    """``DAILY_SEND_CAP``: the site's sends today (UTC), counted only when a cap is
    set."""

    cap: int | None
    #: Sends counted today; ``None`` when no cap is set (nothing is counted then).
    used: int | None
    #: UTC midnight, when the count starts again.
    resets_at: datetime

    @property
    def reached(self) -> bool:
        """Whether the cap refuses sends now."""
        return self.cap is not None and (self.used or 0) >= self.cap


@dataclass(frozen=True)
class Lifted:
    """Something in force that a lift removes: what it is, and until when it would
    have held."""

    what: str
    until: datetime | None


@dataclass(frozen=True)
class PhoneState:
    """Everything the policy holds against one number at :attr:`checked_at`."""

    phone: str
    checked_at: datetime
    #: False when the limits cache could not be read: the cooldown, rules, cache block
    #: and daily cap are then unknown (``None`` or empty), and sends are refused (they
    #: fail closed) until it is back.
    limits_available: bool
    cooldown: CooldownState | None
    #: The ``send`` and ``resend`` rules keyed by phone or prefix.
    rules: tuple[RuleState, ...]
    #: The ``validate_failure`` rules keyed by phone: the daily failure cap.
    failure_cap: tuple[RuleState, ...]
    prefix: PrefixState
    daily_cap: DailyCapState | None
    #: Until when VerifyNow still holds a live code for the number (from the newest
    #: pending or locked attempt's expiry, or the cooldown's record of the vendor's
    #: window, whichever ends later); ``None`` when it holds none. A send before then
    #: gets no new SMS, whatever our own limits say.
    vendor_code_until: datetime | None
    #: Why the limits are unavailable (the cache error's type), for the page.
    error: str = ""

    def rules_over(self, action: str | None = None) -> tuple[RuleState, ...]:
        """The rules (of ``action``, or all) that refuse one more hit now."""
        return tuple(
            r
            for r in (*self.rules, *self.failure_cap)
            if r.over and (action is None or r.action == action)
        )

    def send_free_at(self, *, resend: bool = False) -> datetime | None:
        """When the number's own policy would admit a send (``resend`` adds the
        ``resend`` rules); ``None`` when it would now, or when the limits are unknown.

        The requester's own limits (IP, session) and VerifyNow's window come on top.
        """
        if not self.limits_available:
            return None
        ends: list[datetime] = []
        if self.cooldown is not None and self.cooldown.active:
            ends.append(self.cooldown.available_at)
        actions = SEND_ACTIONS if resend else SEND_ACTIONS[:1]
        ends += [r.free_at for r in self.rules if r.action in actions and r.free_at]
        if self.prefix.cache_until is not None:
            ends.append(self.prefix.cache_until)
        if self.daily_cap is not None and self.daily_cap.reached:
            ends.append(self.daily_cap.resets_at)
        return max(ends) if ends else None

    def in_force(self, scope: str = "phone") -> tuple[Lifted, ...]:
        """What :func:`lift_phone` (``scope="phone"``) or :func:`lift_prefix`
        (``"prefix"``) would lift now: only what currently refuses something."""
        items: list[Lifted] = []
        if scope == "prefix":
            if self.prefix.blocked:
                items.append(
                    Lifted(str(_("the block on its prefix")), self.prefix.until)
                )
            items += [
                Lifted(r.label, r.free_at)
                for r in self.rules
                if r.over and r.rule.key == "prefix"
            ]
            return tuple(items)
        if self.cooldown is not None and self.cooldown.active:
            items.append(
                Lifted(str(_("the resend cooldown")), self.cooldown.available_at)
            )
        items += [
            Lifted(r.label, r.free_at)
            for r in (*self.rules, *self.failure_cap)
            if r.over and r.rule.key == "phone"
        ]
        return tuple(items)


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


# -- lifting ---------------------------------------------------------------------------
class LiftFailed(Exception):
    """The limits cache failed: :attr:`done` is what was lifted before it did (often
    nothing)."""

    def __init__(self, done: tuple[Lifted, ...] = ()) -> None:
        super().__init__("the limits cache is unavailable")
        self.done = done


@dataclass(frozen=True)
class LiftResult:
    """What a lift removed, and what it could not."""

    phone: str
    #: What was in force and is lifted (empty when nothing was: the counters were
    #: cleared all the same).
    lifted: tuple[Lifted, ...]
    #: The ``PrefixBlock`` rows stamped as lifted (:func:`lift_prefix` only).
    rows: tuple[PrefixBlock, ...]
    #: VerifyNow still holds a live code until then: no lift can make it send a new
    #: one before (it answers 506 and sends nothing).
    vendor_code_until: datetime | None


def lift_phone(e164: str, *, now: float | None = None) -> LiftResult:
    """Lift the cooldown of ``e164`` and clear its per-phone ``send``, ``resend`` and
    ``validate_failure`` counters (an operator decided).

    The cooldown record goes entirely, the vendor's window in it included: the next
    send is treated as the first of a streak. A send already in flight keeps its
    marker (it expires by itself), so two sends to the number still cannot race.
    Only the per-phone counters are cleared: rules on the requester (IP, session) or
    the site are not the number's, and resetting them would lift limits for others.
    The per-requester "has failed" markers of the failure cap stay: they matter only
    while the number is over its cap, which this clears.

    :raises LiftFailed: the limits cache failed; ``done`` says what was lifted.
    """
    before = inspect_phone(e164, now=now)
    if not before.limits_available:
        raise LiftFailed()
    cooling = before.cooldown
    done: list[Lifted] = []
    try:
        _delete_cooldown(e164)
        if cooling is not None and cooling.active:
            done.append(Lifted(str(_("the resend cooldown")), cooling.available_at))
        for action in (*SEND_ACTIONS, FAILURE_ACTION):
            rules = _number_rules(action, ("phone",))
            if rules:
                # Only the phone's rules: reset() with the configured rules would
                # also clear the site-wide ("global") counters of the action.
                ratelimit.reset(action, {"phone": e164}, now=now, rules=rules)
            done.extend(
                Lifted(r.label, r.free_at)
                for r in before.rules_over(action)
                if r.rule.key == "phone"
            )
    except ratelimit.StoreUnavailable:
        raise LiftFailed(tuple(done)) from None
    return LiftResult(
        phone=e164,
        lifted=tuple(done),
        rows=(),
        vendor_code_until=before.vendor_code_until,
    )


@ratelimit.guarded
def _delete_cooldown(e164: str) -> None:
    ratelimit.cache().delete(cooldown._key(e164))


def lift_prefix(e164: str, *, user: Any = None, now: float | None = None) -> LiftResult:
    """Lift the block on the prefix of ``e164`` and clear the prefix's counters, with
    :func:`~django_verifynow.policy.caps.lift_prefix_block`; stamp its ``PrefixBlock``
    rows in force with ``user`` and the time, as the blocked-prefix admin does.

    :raises LiftFailed: the limits cache failed; nothing was lifted or stamped.
    """
    before = inspect_phone(e164, now=now)
    if not before.limits_available:
        raise LiftFailed()
    try:
        caps.lift_prefix_block(before.prefix.prefix)
    except ratelimit.StoreUnavailable:
        raise LiftFailed() from None
    stamped: list[PrefixBlock] = []
    for block in before.prefix.rows:
        block.lifted_at = before.checked_at
        block.lifted_by = user if getattr(user, "is_authenticated", False) else None
        block.save(update_fields=["lifted_at", "lifted_by"])
        stamped.append(block)
    return LiftResult(
        phone=e164,
        lifted=before.in_force("prefix"),
        rows=tuple(stamped),
        vendor_code_until=before.vendor_code_until,
    )
