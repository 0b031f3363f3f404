"""The operator's lifts: what the support desk removes for one phone number.

:func:`lift_phone` and :func:`lift_prefix` are the operator's decisions and clear
exactly what they name: the number's cooldown and its per-phone ``send``, ``resend``
and ``validate_failure`` counters, or the block (and counters) of its prefix. They
cannot shorten VerifyNow's own window: while the vendor holds a live code for the
number it answers 506 to any send and sends no SMS
(:attr:`~django_verifynow.policy.state.PhoneState.vendor_code_until` says until when).

Each lift reads the number's state first with
:func:`~django_verifynow.policy.inspect.inspect_phone`, which is imported inside the
functions: :mod:`.inspect` re-exports the names of this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_lazy as _

from .. import ratelimit
from . import caps, cooldown
from .state import FAILURE_ACTION, SEND_ACTIONS, Lifted

if TYPE_CHECKING:
    from ..models import PrefixBlock

__all__ = ["LiftFailed", "LiftResult", "lift_phone", "lift_prefix"]


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
    from .inspect import _number_rules, inspect_phone

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
    from .inspect import inspect_phone

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
