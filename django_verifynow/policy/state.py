"""The state :func:`~django_verifynow.policy.inspect.inspect_phone` reads: what the
policy holds against one phone number, as frozen dataclasses.

:class:`PhoneState` gathers the resend cooldown (:class:`CooldownState`), the per-phone
and per-prefix rules (:class:`RuleState`), the block on the prefix
(:class:`PrefixState`) and the daily cap (:class:`DailyCapState`);
:meth:`PhoneState.in_force` says what a lift would remove (:class:`Lifted`). Nothing
here reads the cache or the database: see :mod:`.inspect` for that, and :mod:`.lift`
for the operator's lifts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from .. import ratelimit

if TYPE_CHECKING:
    from ..models import PrefixBlock

__all__ = [
    "FAILURE_ACTION",
    "NUMBER_KEYS",
    "SEND_ACTIONS",
    "CooldownState",
    "DailyCapState",
    "Lifted",
    "PhoneState",
    "PrefixState",
    "RuleState",
    "describe_rule",
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
        """What :func:`~.lift.lift_phone` (``scope="phone"``) or
        :func:`~.lift.lift_prefix` (``"prefix"``) would lift now: only what currently
        refuses something."""
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
