"""Site-wide spend guards: the daily send cap and the blocking of pumped prefixes.

Both keep their state in the limits cache next to the counters of
:mod:`django_verifynow.ratelimit`, and both alert operators on the
``django_verifynow.alerts`` logger (route it to a paging channel). Only
:mod:`django_verifynow.policy` calls them.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from typing import Any, NamedTuple

from django.core.cache import BaseCache

from .. import phone, ratelimit
from ..conf import verifynow_settings
from . import redis_store

__all__ = [
    "PREFIX_SOURCES",
    "DailySlot",
    "alerts_logger",
    "Block",
    "block_prefix",
    "lift_prefix_block",
    "source_share",
    "prefix_block_remaining",
    "take_daily_slot",
]

#: Operator alerts (prefix blocked, daily cap warnings).
alerts_logger = logging.getLogger("django_verifynow.alerts")


# -- daily cap -------------------------------------------------------------------------
class DailySlot:
    """One send counted against ``DAILY_SEND_CAP``; :meth:`release` gives it back."""

    def __init__(self, key: str | None) -> None:
        self.key = key

    def release(self) -> None:
        """Give the slot back (nothing was sent). A cache failure keeps it counted."""
        if self.key is None:
            return
        key, self.key = self.key, None
        try:
            ratelimit.decr(ratelimit.cache(), key)
        except Exception:  # noqa: BLE001 - the safe side: one refusal too many
            pass


@ratelimit.guarded
def take_daily_slot(*, now: float | None = None) -> DailySlot | int:
    """Count one send against ``VERIFYNOW["DAILY_SEND_CAP"]`` (per UTC day).

    Logs one WARNING per day when 80 % of the cap is used and one when it is reached.

    :returns: the :class:`DailySlot` taken (an empty one when no cap is set), or the
        seconds to UTC midnight when the cap is used up (nothing counted).
    :raises ratelimit.StoreUnavailable: the cache failed.
    """
    cap = verifynow_settings.DAILY_SEND_CAP
    if cap is None:
        return DailySlot(None)
    moment = ratelimit.now_or(now)
    to_midnight = seconds_to_midnight(moment)
    store = ratelimit.cache()
    key = daily_key(moment)
    count = redis_store.count(store, key, 86400 + ratelimit.TTL_MARGIN)
    daily_alerts(store, count, cap, moment)
    if count > cap:
        ratelimit.decr(store, key)
        return to_midnight
    return DailySlot(key)


def daily_key(moment: float) -> str:
    """The daily cap's counter for the UTC day of ``moment``."""
    day = datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%Y%m%d")
    return f"{ratelimit.KEY_ROOT}:daily_cap:global:all:{day}"


def seconds_to_midnight(moment: float) -> int:
    """Seconds until the daily cap's day (UTC) ends, at least 1."""
    return max(1, math.ceil(86400 - moment % 86400))


def daily_alerts(store: BaseCache, count: int, cap: int, moment: float) -> None:
    """Warn once per day at 80 % of the cap and once when it is reached.

    ``count`` is the day's count with this send; below 80 % this costs nothing.
    """
    day = datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%Y%m%d")
    ttl = 86400 + ratelimit.TTL_MARGIN
    if count * 5 >= cap * 4:
        _alert_once(
            store,
            f"{ratelimit.KEY_ROOT}:daily_cap:alert:80:{day}",
            ttl,
            "Daily send cap: 80%% used (%d of %d sends today, UTC).",
            min(count, cap),
            cap,
        )
    if count >= cap:
        _alert_once(
            store,
            f"{ratelimit.KEY_ROOT}:daily_cap:alert:100:{day}",
            ttl,
            "Daily send cap reached (%d of %d sends today, UTC); further sends are "
            "refused until UTC midnight.",
            min(count, cap),
            cap,
        )


def _alert_once(store: BaseCache, marker: str, ttl: int, msg: str, *args: Any) -> None:
    # cache.add is atomic: exactly one process wins and logs, whatever the concurrency.
    if store.add(marker, 1, ttl):
        alerts_logger.warning(msg, *args, extra={"event": "daily_cap"})


# -- prefix blocks ---------------------------------------------------------------------
#: Of a prefix rule's limit, the share one source (an IP, or a session without one)
#: may fill: ``limit // PREFIX_SOURCES``. A burst from fewer sources than this cannot
#: block a prefix (their own per-IP and per-session limits bound them); pumping
#: through many addresses still does.
PREFIX_SOURCES = 3


class Block(NamedTuple):
    """What :func:`block_prefix` did: the block's remaining seconds, and whether this
    call started it (the services then record it for the admin)."""

    seconds: int
    new: bool


def source_share(rule: ratelimit.Rule) -> ratelimit.Rule:
    """The per-source rule that caps one source's part of a prefix ``rule``."""
    return ratelimit.Rule(
        limit=max(1, rule.limit // PREFIX_SOURCES), period=rule.period, key="session"
    )


def block_key(prefix: str) -> str:
    """The cache key of the block on ``prefix``."""
    return _block_key(ratelimit.hashed(prefix))


def _block_key(digest: str) -> str:
    return f"{ratelimit.KEY_ROOT}:block:prefix:{digest}"


@ratelimit.guarded
def lift_prefix_block(
    prefix: str, actions: tuple[str, ...] = ("send", "resend")
) -> None:
    """Lift the block on ``prefix`` and forget its counters (an operator decided).

    :raises ratelimit.StoreUnavailable: the cache failed; the block stays.
    """
    ratelimit.cache().delete(_block_key(ratelimit.hashed(prefix)))
    for action in actions:
        ratelimit.reset(action, {"prefix": prefix})


@ratelimit.guarded
def prefix_block_remaining(prefix: str, *, now: float | None = None) -> int:
    """Seconds the prefix stays blocked (0 = not blocked).

    :raises ratelimit.StoreUnavailable: the cache failed.
    """
    until = ratelimit.cache().get(_block_key(ratelimit.hashed(prefix)))
    moment = ratelimit.now_or(now)
    if isinstance(until, (int, float)) and until > moment:
        return math.ceil(until - moment)
    return 0


@ratelimit.guarded
def block_prefix(
    prefix: str, rule: ratelimit.Rule, action: str, *, now: float | None = None
) -> Block:
    """Block ``prefix`` after its rule went over; alert once per block.

    :returns: the :class:`Block`: seconds the prefix stays blocked (0 when blocks are
        off, in which case the alert still goes out, once per rule period) and whether
        this call started it.
    :raises ratelimit.StoreUnavailable: the cache failed.
    """
    moment = ratelimit.now_or(now)
    seconds = verifynow_settings.PREFIX_BLOCK_SECONDS
    digest = ratelimit.hashed(prefix)
    store = ratelimit.cache()
    if seconds > 0:
        key = _block_key(digest)
        # Whole seconds, an int: Django's Redis serializer stores it as a plain
        # number, which the admission script on Redis can read.
        until = int(moment) + seconds
        if not store.add(key, until, seconds + ratelimit.TTL_MARGIN):
            existing = store.get(key)
            if isinstance(existing, (int, float)) and existing > moment:
                # Blocked already: no new alert.
                return Block(math.ceil(existing - moment), new=False)
            store.set(key, until, seconds + ratelimit.TTL_MARGIN)  # stale by our clock
    else:
        window = f"{rule.period}.{int(moment // rule.period)}"
        marker = f"{ratelimit.KEY_ROOT}:alert:prefix:{digest}:{window}"
        if not store.add(marker, 1, rule.period + ratelimit.TTL_MARGIN):
            return Block(0, new=False)
    alerts_logger.warning(
        "Possible SMS pumping: more than %d %s requests to numbers starting %s within "
        "%d s; %s.",
        rule.limit,
        action,
        # The prefix is most of a number: show only its calling code and last digits.
        phone.mask(prefix) + "XXXX",
        rule.period,
        f"prefix blocked for {seconds} s" if seconds > 0 else "prefix not blocked",
        extra={
            "event": "prefix_blocked",
            "action": action,
            "prefix_hash": digest,
            "block_seconds": seconds,
        },
    )
    return Block(seconds, new=seconds > 0)
