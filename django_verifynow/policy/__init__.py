"""The admission policy: the only place that decides "may this happen".

The services ask here before anything costs money or counts against anyone, and act on
the answer; they never read a limit themselves. Two kinds of decision:

**Sends** are admitted all or nothing. :func:`admit_send` checks, in this order, the
resend cooldown of the phone (which also covers the vendor's validity window of a
code already sent), that no other send to the phone is in flight, a block on the
number's prefix, the ``RATE_LIMITS`` of the action
(per phone, prefix, IP, session or user, site-wide) and ``DAILY_SEND_CAP``. If every
rule passes it reserves every counter at once and returns an :class:`Admission`;
if any refuses, whatever was reserved is taken back and :exc:`RateLimited` says why
(a :class:`~django_verifynow.reasons.Reason`). The caller then:

* :meth:`Admission.commit` when an SMS went out or may have (a timeout), passing the
  vendor's validity window so no resend is offered before the live code ends;
* :meth:`Admission.release` when nothing was sent: a connect error, an open breaker, a
  vendor refusal, or a 506 that kept the code already sent. The user keeps the budget.

**Code checks** spend the per-IP ``validate`` budget on every call (malformed ones too,
so guessing hits the limit) and are refused once the phone has used up its daily
failure cap (``RATE_LIMITS["validate_failure"]``). The attempt cap per code lives in the
database (see :mod:`django_verifynow.services.check`), not here.

When the cache is down, :data:`FAILS_OPEN` says per action whether to let the request
through or refuse it with :exc:`LimitsUnavailable` (an SMS that cannot be counted is
never sent; a check bounded by the database cap may still run).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import phone, ratelimit
from ..conf import verifynow_settings
from ..exceptions import (
    DailyCapReached,
    LimitsUnavailable,
    PrefixBlocked,
    RateLimited,
)
from ..reasons import Reason
from . import caps, cooldown, redis_admission, redis_store, refusals
from .inspect import PhoneState, inspect_phone
from .lift import LiftFailed, LiftResult, lift_phone, lift_prefix
from .refusals import LIMIT_REASONS

__all__ = [
    "FAILS_OPEN",
    "LIMIT_REASONS",
    "Action",
    "Admission",
    "CheckAdmission",
    "LiftFailed",
    "LiftResult",
    "PhoneState",
    "Reason",
    "admit_check",
    "admit_send",
    "forget_failures",
    "inspect_phone",
    "lift_phone",
    "lift_prefix",
    "record_failure",
    "resend_wait",
    "spend",
]

logger = logging.getLogger("django_verifynow.ratelimit")

#: Retry-After given when the limits cannot be enforced.
UNAVAILABLE_RETRY_AFTER = 60


class Action(str, enum.Enum):
    """What is being admitted; the values are the ``RATE_LIMITS`` keys."""

    SEND = "send"
    RESEND = "resend"
    VALIDATE = "validate"
    READ = "read"
    VALIDATE_FAILURE = "validate_failure"


#: With the limits cache down: True lets the action through, False refuses it.
#: Sends cost money and cannot be counted, so they fail closed; checks and reads are
#: bounded by the attempt cap in the database, so a cache outage must not stop users
#: who already have their code from entering it.
FAILS_OPEN: Mapping[Action, bool] = {
    Action.SEND: False,
    Action.RESEND: False,
    Action.VALIDATE: True,
    Action.READ: True,
    Action.VALIDATE_FAILURE: True,
}


def _store_down(action: Action, exc: ratelimit.StoreUnavailable) -> None:
    """Apply :data:`FAILS_OPEN`: return to let the action through, or raise."""
    # One line, no traceback: during an outage every request would log one. It names
    # the cache, so a site does not blame VerifyNow for the 503 (verifynow_check
    # tests the cache).
    logger.error(
        'Rate-limit cache VERIFYNOW["CACHE"] = "%s" failed during %s (%s); %s.',
        verifynow_settings.CACHE,
        action.value,
        exc,
        "let through (fails open)"
        if FAILS_OPEN[action]
        else "refused (fails closed): VerifyNow was not called",
    )
    if not FAILS_OPEN[action]:
        raise LimitsUnavailable(retry_after=UNAVAILABLE_RETRY_AFTER) from None


@dataclass
class Admission:
    """Every budget one send needs, reserved; commit or release it exactly once."""

    phone: str
    reservations: list[ratelimit.Reservation] = field(default_factory=list)
    daily: caps.DailySlot | None = None
    ticket: cooldown.Ticket | None = None
    settled: bool = False
    #: Seconds until the next send to the phone may go, known once settled (None:
    #: not known without reading the cooldown back; see :func:`resend_wait`).
    resend_wait: int | None = None
    #: The hour's count of real SMS to the country, when :meth:`commit` counted this
    #: one for the pumping watch (pass it to ``pumping.record_send(sends=...)``).
    pumped: int | None = None
    #: The Redis store that reserved it all in one script (None: the generic path).
    store: redis_store.RedisStore | None = field(default=None, repr=False)
    #: The values of the ``prefetch`` keys, read with the admission (absent keys left
    #: out); None when they were not read (the generic path).
    prefetched: dict[str, Any] | None = field(default=None, repr=False)

    def commit(
        self, *, valid_for: int | None = None, country: str | None = None
    ) -> None:
        """An SMS went out, or may have: keep every budget spent.

        :param valid_for: seconds the vendor keeps the new code live (its ``timeout``);
            no resend is offered before then.
        :param country: the SMS went to this country: count it for the pumping watch
            in the same round trip where the store allows (see :attr:`pumped`).
        """
        if self.settled:
            return
        self.settled = True
        if self.store is not None and self.ticket is not None:
            redis_admission.commit(self, valid_for or 0, country)
            return
        moment = ratelimit.now_or(None)
        if valid_for:
            self._keep_waiting(valid_for)
        if self.ticket is not None:
            ends = max(self.ticket.until, moment + (valid_for or 0))
            self.resend_wait = max(0, math.ceil(ends - moment))
        self._finish()

    def release(self, *, valid_for: int | None = None) -> None:
        """Nothing was sent: give back every budget this admission reserved.

        :param valid_for: the vendor kept a live code for this number (506) for this
            many more seconds: resends wait for it, but nothing counts as a send.
        """
        if self.settled:
            return
        self.settled = True
        if self.store is not None and self.ticket is not None:
            redis_admission.release(self, valid_for)
            return
        for reservation in self.reservations:
            reservation.release()
        if self.daily is not None:
            self.daily.release()
        if self.ticket is not None:
            moment = ratelimit.now_or(None)
            try:
                cooldown.restore(self.ticket, valid_for=valid_for)
            except ratelimit.StoreUnavailable as exc:
                logger.error("Rate-limit cache failed restoring a cooldown (%s)", exc)
            state = cooldown.restored(self.ticket, valid_for, moment)
            self.resend_wait = cooldown.seconds_left(state, moment)
        elif valid_for:
            self._keep_waiting(valid_for)

    def _finish(self) -> None:
        if self.ticket is None:
            return
        try:
            cooldown.finish(self.ticket)
        except ratelimit.StoreUnavailable as exc:
            logger.error("Rate-limit cache failed ending a send (%s)", exc)

    def _keep_waiting(self, valid_for: int) -> None:
        try:
            cooldown.extend(self.phone, valid_for)
        except ratelimit.StoreUnavailable as exc:
            logger.error("Rate-limit cache failed extending a cooldown (%s)", exc)


def admit_send(
    e164: str,
    keys: Mapping[str, str | None],
    *,
    resend: bool = False,
    code_usable: bool = True,
    prefetch: Sequence[str] = (),
) -> Admission:
    """Admit one send to ``e164`` for the requester identified by ``keys``.

    :param keys: the requester's limit keys (``"ip"``, ``"session"``); the phone and
        its prefix are added here.
    :param resend: also apply the ``resend`` rules.
    :param code_usable: whether the requester can still enter the code already sent
        (False for a locked attempt): only then does a cooldown refusal say that the
        code is still valid.
    :param prefetch: keys of the limits cache the caller reads next (the vendor
        client's state): where the store allows, they are read in the admission's
        round trip, into :attr:`Admission.prefetched`.
    :returns: the :class:`Admission`; commit or release it.
    :raises RateLimited: refused by a rule (:attr:`~RateLimited.reason` says which);
        :class:`DailyCapReached` for the daily cap. Nothing is reserved.
    :raises LimitsUnavailable: the cache is down (sends fail closed).
    """
    action = Action.RESEND if resend else Action.SEND
    admission = Admission(phone=e164)
    try:
        store = _store()
        if store is None or not redis_admission.admit_send(
            store,
            admission,
            e164,
            keys,
            resend=resend,
            code_usable=code_usable,
            prefetch=prefetch,
        ):
            _admit_send(admission, e164, keys, resend=resend, code_usable=code_usable)
    except ratelimit.StoreUnavailable as exc:
        admission.release()
        _store_down(action, exc)
    except BaseException:
        admission.release()
        raise
    return admission


def _admit_send(
    admission: Admission,
    e164: str,
    keys: Mapping[str, str | None],
    *,
    resend: bool,
    code_usable: bool,
) -> None:
    # The cooldown is taken first, before any counter, so concurrent sends to one
    # phone are refused by its in-flight marker, not by limits their own siblings
    # filled for a moment.
    started = cooldown.start(e164)
    if isinstance(started, cooldown.Wait):
        raise refusals.cooldown_refusal(
            started.seconds, started.code_valid, code_usable
        )
    admission.ticket = started
    prefix = phone.prefix(e164)
    blocked = caps.prefix_block_remaining(prefix)
    if blocked:
        raise PrefixBlocked(retry_after=blocked)
    values = {**keys, "phone": e164, "prefix": prefix}
    actions = (Action.SEND, Action.RESEND) if resend else (Action.SEND,)
    for action in actions:
        counted = dict(values)
        if not _within_source_share(admission, action, prefix, keys):
            # This source already filled its share of the prefix: its sends still
            # count against its own limits, but no longer toward a prefix block.
            counted["prefix"] = None
        try:
            admission.reservations.append(ratelimit.hit(action.value, counted))
        except ratelimit.LimitExceeded as exc:
            raise refusals.limit_refusal(exc, prefix, action.value) from None
    slot = caps.take_daily_slot()
    if isinstance(slot, int):
        raise DailyCapReached(retry_after=slot)
    admission.daily = slot


def _within_source_share(
    admission: Admission,
    action: Action,
    prefix: str,
    keys: Mapping[str, str | None],
) -> bool:
    """Count this send toward its prefix's rules only within its source's share.

    The source is the requester's IP (or its session without one). Server-side
    callers have neither and are trusted: their sends always count.
    """
    source = keys.get("ip") or keys.get("session")
    if not source:
        return True
    shares = [
        caps.source_share(rule)
        for rule in ratelimit.rules_for(action.value)
        if rule.key == "prefix"
    ]
    if not shares:
        return True
    try:
        admission.reservations.append(
            ratelimit.hit(
                f"{action.value}_prefix_source",
                {"session": f"{prefix}|{source}"},
                rules=shares,
            )
        )
    except ratelimit.LimitExceeded:
        return False
    return True


def resend_wait(e164: str) -> int:
    """Seconds until a new code may go to ``e164`` (for ``resend_available_at``).

    With the cache down it answers a minute: a read must not fail, and sends are
    refused meanwhile anyway.
    """
    try:
        return cooldown.remaining(e164).seconds
    except ratelimit.StoreUnavailable as exc:
        logger.error("Rate-limit cache failed reading a cooldown (%s)", exc)
        return UNAVAILABLE_RETRY_AFTER


def spend(action: Action, keys: Mapping[str, str | None]) -> None:
    """Count one call of ``action`` (``validate``, ``read``) against the requester.

    Spent by every call, malformed and unknown ones included, and never given back.

    :raises RateLimited: a rule of the action is over.
    :raises LimitsUnavailable: the cache is down and the action fails closed.
    """
    try:
        _hit(action.value, keys)
    except ratelimit.LimitExceeded as exc:
        raise refusals.refusal(exc) from None
    except ratelimit.StoreUnavailable as exc:
        _store_down(action, exc)


@ratelimit.guarded
def _store() -> redis_store.RedisStore | None:
    """The Redis store behind the limits cache, or None (the generic path)."""
    return redis_store.for_cache(ratelimit.cache())


@ratelimit.guarded
def _hit(
    action: str,
    keys: Mapping[str, str | None],
    rules: list[ratelimit.Rule] | None = None,
) -> ratelimit.Reservation:
    """``ratelimit.hit``, in one script when the cache is Redis."""
    store = _store()
    if store is not None:
        return redis_store.hit(store, action, keys, rules=rules)
    return ratelimit.hit(action, keys, rules=rules)


def _failed_here(e164: str, requester: str) -> dict[str, str | None]:
    return {"session": f"{e164}|{requester}"}


def _requester_rules() -> list[ratelimit.Rule]:
    """One "has failed" marker per phone rule period: a count of 1 means "failed"."""
    return [
        ratelimit.Rule(limit=1, period=rule.period, key="session")
        for rule in ratelimit.rules_for(Action.VALIDATE_FAILURE.value)
        if rule.key == "phone"
    ]


@dataclass
class CheckAdmission:
    """What :func:`admit_check` read on its way, for the rest of the check."""

    #: The values of the ``prefetch`` keys (absent keys left out); None when they
    #: were not read (the generic path).
    prefetched: dict[str, Any] | None = None
    #: The phone's cooldown record as the check found it (None: none, or not read).
    cooldown: dict[str, Any] | None = None
    #: Whether the record was read (False: ask :func:`resend_wait`).
    read_cooldown: bool = False
    #: False when the check found the phone's failure counters all empty: a success
    #: then has nothing for :func:`forget_failures` to forget (True when unknown).
    failures_counted: bool = True

    def resend_wait(self) -> int | None:
        """Seconds until a new code may go to the phone, from the record read with
        the check (None: not read; ask :func:`resend_wait`)."""
        if not self.read_cooldown:
            return None
        return cooldown.seconds_left(self.cooldown, ratelimit.now_or(None))


def admit_check(
    e164: str,
    requester: str,
    *,
    spend_keys: Mapping[str, str | None] | None = None,
    prefetch: Sequence[str] = (),
) -> CheckAdmission:
    """Refuse a code check for ``e164`` once its daily failure cap is used up, unless
    this requester has no wrong code for the phone in that period.

    The cap bounds guessing per phone across all requesters, but a stranger's wrong
    codes must not lock the owner out: a requester (``requester``: its session or
    user key) with no failure of its own on this phone may still check its own code.
    Each attempt needs an SMS, so the total stays bounded (see ``docs/security.md``).

    :param spend_keys: the requester's limit keys: first :func:`spend` the ``validate``
        budget for them, in the same round trip where the store allows.
    :param prefetch: keys of the limits cache the caller reads next (the vendor
        client's state), read with the check where the store allows.
    :raises RateLimited: the ``validate`` budget (as :func:`spend`), or reason
        :attr:`~Reason.FAILURE_CAP`.
    """
    admission = CheckAdmission()
    try:
        store = _store()
    except ratelimit.StoreUnavailable:
        store = None
    if store is not None:
        try:
            clean = redis_admission.admit_check(
                store, admission, e164, requester, spend=spend_keys, prefetch=prefetch
            )
        except RateLimited:
            raise
        except Exception as exc:  # noqa: BLE001 - both parts fail open
            _store_down(Action.VALIDATE, ratelimit.StoreUnavailable(type(exc).__name__))
            return CheckAdmission()
        admission.failures_counted = not clean
        return admission
    if spend_keys is not None:
        spend(Action.VALIDATE, spend_keys)
    admission.failures_counted = _check_failures(e164, requester)
    return admission


def _check_failures(e164: str, requester: str) -> bool:
    """The failure cap of :func:`admit_check`, on the generic path; whether the
    phone may have failures counted (True unless its counters were read empty)."""
    try:
        return not ratelimit.count_free(Action.VALIDATE_FAILURE.value, {"phone": e164})
    except ratelimit.LimitExceeded as exc:
        try:
            ratelimit.check(
                "validate_failure_requester",
                _failed_here(e164, requester),
                rules=_requester_rules(),
            )
        except ratelimit.LimitExceeded:
            raise RateLimited(
                retry_after=exc.retry_after, reason=Reason.FAILURE_CAP
            ) from None
        except ratelimit.StoreUnavailable as store_exc:
            _store_down(Action.VALIDATE_FAILURE, store_exc)
    except ratelimit.StoreUnavailable as exc:
        _store_down(Action.VALIDATE_FAILURE, exc)
    return True


def record_failure(e164: str, requester: str) -> None:
    """Count a wrong code for ``e164`` by ``requester``; the cap applies to the *next*
    check."""
    try:
        store = _store()
        if store is not None:
            # Both counts in one round trip; each is skipped when already over.
            redis_store.hit_each(
                store,
                [
                    (Action.VALIDATE_FAILURE.value, {"phone": e164}, None),
                    (
                        "validate_failure_requester",
                        _failed_here(e164, requester),
                        _requester_rules(),
                    ),
                ],
            )
            return
        with contextlib.suppress(ratelimit.LimitExceeded):
            # Over the cap: this check has been answered; the next one is refused.
            _hit(Action.VALIDATE_FAILURE.value, {"phone": e164})
        with contextlib.suppress(ratelimit.LimitExceeded):  # marked already
            _hit(
                "validate_failure_requester",
                _failed_here(e164, requester),
                rules=_requester_rules(),
            )
    except ratelimit.StoreUnavailable as exc:
        logger.error("Rate-limit cache failed counting a wrong code (%s)", exc)


def forget_failures(e164: str, *, counted: bool = True) -> None:
    """Forget the wrong codes of ``e164`` after it was verified.

    ``counted=False`` (the check's :attr:`CheckAdmission.failures_counted`): its
    :func:`admit_check` found no failure counted for the phone, so there is nothing
    to forget and no round trip is made. A wrong code another requester entered in
    between then stays counted: the strict side.
    """
    if not counted:
        return
    try:
        ratelimit.reset(Action.VALIDATE_FAILURE.value, {"phone": e164})
    except ratelimit.StoreUnavailable as exc:
        logger.error("Rate-limit cache failed forgetting failures (%s)", exc)
