"""The rate-limit mechanism: rules, sliding windows and counters in the Django cache.

This module only counts. *What* is limited, in which order, what a refusal is called
and whether a dead cache refuses or lets through is decided in
:mod:`django_verifynow.policy`; nothing here knows about phones, cooldowns or SMS.

Limits are declared per action as comma-separated ``"N/period/key"`` rules, for example
``"5/h/phone,10/d/ip"`` (see :data:`~django_verifynow.conf.DEFAULT_RATE_LIMITS`). Every
rule of an action must pass::

    reservation = ratelimit.hit("send", {"phone": e164, "ip": ip, "session": s})
    ...                               # LimitExceeded if a rule is over: nothing counted
    reservation.release()             # give the hit back (nothing was sent after all)

State lives in the cache named by ``VERIFYNOW["CACHE"]``; it must be shared by every
process and support atomic ``incr`` (Redis, Memcached). Every key is built from an HMAC
of the value, never from the raw value (:func:`hashed`).

Two properties the policy builds on:

* **All or nothing.** A hit increments every counter of the action atomically; if any
  rule is then over its limit, the increments are taken back and :exc:`LimitExceeded`
  names the rule. So a limit of N means N *allowed* hits per period, also under
  concurrency, and a client that keeps hammering does not extend its own block.
* **Store failures are reported, never decided.** Any cache error becomes
  :exc:`StoreUnavailable`; the caller chooses to fail open or closed.

Windows are a sliding-window counter: two fixed windows per rule, the previous one
weighted by how much of it still overlaps the sliding period. Timestamps are passed in
(``now=``) or come from :data:`timer`, the one clock of the limits, so tests move time
without sleeping; the cache TTLs only collect garbage and never decide a result.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.core.cache import BaseCache, caches
from django.utils.crypto import salted_hmac

from .conf import verifynow_settings
from .exceptions import VerifyNowConfigurationError
from .rules import KEY_KINDS, Rule, parse_rules, rules_for

__all__ = [
    "KEY_KINDS",
    "LimitExceeded",
    "Reservation",
    "Rule",
    "StoreUnavailable",
    "cache",
    "check",
    "count_free",
    "guarded",
    "hashed",
    "hit",
    "incr",
    "parse_rules",
    "reset",
    "rules_for",
    "timer",
]

#: The clock of every limit, in epoch seconds. Tests may replace it (or pass ``now=``).
timer: Callable[[], float] = time.time

#: Extra TTL on top of what a key needs, so it cannot vanish while it is still read.
TTL_MARGIN = 60

_P = ParamSpec("_P")
_R = TypeVar("_R")

KEY_ROOT = "verifynow:rl"


class LimitExceeded(Exception):
    """A rule of ``action`` is over its limit; nothing was counted.

    :attr:`rule` is the rule that needs the longest wait, :attr:`retry_after` that wait
    in whole seconds (at least 1), :attr:`exceeded` every rule that is over.
    """

    def __init__(
        self,
        action: str,
        rule: Rule,
        retry_after: int,
        exceeded: tuple[Rule, ...] = (),
    ) -> None:
        super().__init__(f"{action}: {rule}")
        self.action = action
        self.rule = rule
        self.retry_after = max(1, int(retry_after))
        self.exceeded = exceeded or (rule,)


class StoreUnavailable(Exception):
    """The cache failed (unreachable, timed out, refused); the original is chained."""


# -- keys and the store ----------------------------------------------------------------
def hashed(value: str) -> str:
    """Keyed hash of ``value`` for cache keys: raw phones, IPs or sessions never appear.

    HMAC-SHA256 under ``SECRET_KEY``, truncated to 128 bits.
    """
    return _hashed(value, settings.SECRET_KEY)


@functools.lru_cache(maxsize=4096)
def _hashed(value: str, secret: str) -> str:
    # One request hashes the same phone, IP and session for every rule and key it
    # touches (about 18 per send and validate); salted_hmac derives its key anew
    # each time. The secret is part of the cache key, so a changed SECRET_KEY (a
    # rotation, a test's override) never reuses an old digest.
    return salted_hmac(
        "django_verifynow.ratelimit", value, secret=secret, algorithm="sha256"
    ).hexdigest()[:32]


def cache() -> BaseCache:
    """The cache that holds the limits (``VERIFYNOW["CACHE"]``).

    A bad alias raises :class:`VerifyNowConfigurationError` (the site's bug, not an
    outage); a backend that cannot even be built is an outage.
    """
    return caches[verifynow_settings.CACHE]


def guarded(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn any cache exception inside ``func`` into :exc:`StoreUnavailable`.

    Cache backends raise anything (``redis.ConnectionError``, ``OSError``, pickling
    errors, ...): every one of them means "cannot count". Configuration errors and the
    mechanism's own exceptions pass unchanged.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except (LimitExceeded, StoreUnavailable, VerifyNowConfigurationError):
            raise
        except Exception as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    return wrapper


def _counter_key(action: str, kind: str, digest: str, period: int, index: int) -> str:
    return f"{KEY_ROOT}:{action}:{kind}:{digest}:{period}.{index}"


def incr(store: BaseCache, key: str, timeout: int) -> int:
    """Atomically add one to ``key`` (created with ``timeout``) and return the count."""
    try:
        return store.incr(key)
    except ValueError:  # the key does not exist yet (the normal first hit)
        pass
    if store.add(key, 1, timeout):
        return 1
    # Another process created it between our incr and add.
    return store.incr(key)


def decr(store: BaseCache, key: str) -> None:
    """Take one back from ``key``; a key that is gone already needs nothing."""
    with contextlib.suppress(ValueError):
        store.decr(key)


@dataclass(frozen=True)
class _Bucket:
    rule: Rule
    current: str
    previous: str
    elapsed: float  # seconds into the current window


def _buckets(
    action: str,
    keys: Mapping[str, str | None],
    now: float,
    rules: Sequence[Rule] | None = None,
) -> list[_Bucket]:
    """The counters the rules apply to (a rule without a key value is skipped)."""
    buckets = []
    digests: dict[str, str] = {}
    for rule in rules_for(action) if rules is None else rules:
        if rule.key == "global":
            digest = "all"
        else:
            value = keys.get(rule.key) or None
            if value is None:
                continue
            if rule.key not in digests:
                digests[rule.key] = hashed(value)
            digest = digests[rule.key]
        index = int(now // rule.period)
        buckets.append(
            _Bucket(
                rule=rule,
                current=_counter_key(action, rule.key, digest, rule.period, index),
                previous=_counter_key(action, rule.key, digest, rule.period, index - 1),
                elapsed=now - index * rule.period,
            )
        )
    return buckets


# -- sliding windows -------------------------------------------------------------------
def _over(rule: Rule, previous: int, current: int, elapsed: float) -> bool:
    """Whether ``previous * (1 - elapsed / period) + current`` exceeds the limit.

    Multiplied out by the period, so whole-second clocks give exact integer maths and a
    count that lands exactly on the limit is never pushed over by a rounding error.
    """
    period = rule.period
    return previous * (period - elapsed) + current * period > rule.limit * period


def _wait(rule: Rule, previous: int, current: int, elapsed: float) -> int:
    """Seconds until one more hit would pass, given counts without that hit."""
    period, limit = rule.period, rule.limit
    if current + 1 <= limit and previous > 0:
        # Still room in this window once enough of the previous one slides out.
        needed = 1.0 - (limit - 1 - current) / previous
        seconds = needed * period - elapsed
    else:
        # Wait for the next window, where this count becomes the weighted "previous".
        needed = max(0.0, 1.0 - (limit - 1) / current) if current else 0.0
        seconds = (period - elapsed) + needed * period
    return max(1, math.ceil(seconds))


def now_or(now: float | None) -> float:
    """``now`` if given, else the limits' clock :data:`timer`."""
    return timer() if now is None else float(now)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _exceeded(action: str, found: list[tuple[Rule, int]]) -> LimitExceeded:
    rule, wait = max(found, key=lambda item: item[1])
    return LimitExceeded(action, rule, wait, tuple(r for r, _ in found))


@dataclass
class Reservation:
    """Hits counted by :func:`hit`, which :meth:`release` takes back exactly once."""

    keys: tuple[str, ...] = ()
    _released: bool = field(default=False, repr=False)

    def release(self) -> None:
        """Take the hits back (the action did not happen after all).

        Never raises for a cache failure: the counts then stay, which is the safe side
        (a refusal too many, never an SMS too many); the caller logs it.
        """
        if self._released or not self.keys:
            return
        self._released = True
        with contextlib.suppress(Exception):
            store = cache()
            for key in self.keys:
                decr(store, key)


# -- public API ------------------------------------------------------------------------
@guarded
def hit(
    action: str,
    keys: Mapping[str, str | None],
    *,
    now: float | None = None,
    rules: Sequence[Rule] | None = None,
) -> Reservation:
    """Count one ``action`` against every rule that applies, or refuse it.

    A rule applies when ``keys`` has a non-empty value for its key kind (``global``
    always applies). A refused hit is not counted. ``rules`` replaces the configured
    ``RATE_LIMITS[action]`` (for limits the policy derives itself).

    :returns: the :class:`Reservation` of the hits, to release if the action does not
        happen after all.
    :raises LimitExceeded: a rule is over; nothing counted.
    :raises StoreUnavailable: the cache failed; whatever was counted is taken back.
    """
    moment = now_or(now)
    buckets = _buckets(action, keys, moment, rules)
    if not buckets:
        return Reservation()
    store = cache()
    previous = store.get_many(list({b.previous for b in buckets}))
    counted: dict[str, int] = {}
    try:
        for bucket in buckets:
            # Two rules with the same kind and period share one counter: count it once.
            if bucket.current not in counted:
                ttl = 2 * bucket.rule.period + TTL_MARGIN
                counted[bucket.current] = incr(store, bucket.current, ttl)
    except Exception:
        Reservation(tuple(counted)).release()
        raise
    over = []
    for b in buckets:
        prev, cur = _int(previous.get(b.previous)), counted[b.current]
        if _over(b.rule, prev, cur, b.elapsed):
            over.append((b.rule, _wait(b.rule, prev, cur - 1, b.elapsed)))
    reservation = Reservation(tuple(counted))
    if over:
        reservation.release()
        raise _exceeded(action, over)
    return reservation


@guarded
def check(
    action: str,
    keys: Mapping[str, str | None],
    *,
    now: float | None = None,
    rules: Sequence[Rule] | None = None,
) -> None:
    """Refuse if one more ``action`` would be over a limit, without counting anything.

    For limits on failures: ``check("validate_failure", keys)`` before a validate,
    ``hit("validate_failure", keys)`` after a wrong code.

    :raises LimitExceeded: as :func:`hit` would.
    :raises StoreUnavailable: the cache failed.
    """
    count_free(action, keys, now=now, rules=rules)


@guarded
def count_free(
    action: str,
    keys: Mapping[str, str | None],
    *,
    now: float | None = None,
    rules: Sequence[Rule] | None = None,
) -> bool:
    """:func:`check`, also saying whether every counter read was empty (nothing to
    :func:`reset`).

    :raises LimitExceeded: as :func:`hit` would.
    :raises StoreUnavailable: the cache failed.
    """
    moment = now_or(now)
    buckets = _buckets(action, keys, moment, rules)
    if not buckets:
        return True
    counts = cache().get_many(
        sorted({k for b in buckets for k in (b.current, b.previous)})
    )
    over = []
    for b in buckets:
        prev, cur = _int(counts.get(b.previous)), _int(counts.get(b.current))
        if _over(b.rule, prev, cur + 1, b.elapsed):
            over.append((b.rule, _wait(b.rule, prev, cur, b.elapsed)))
    if over:
        raise _exceeded(action, over)
    return not any(_int(value) for value in counts.values())


@guarded
def reset(
    action: str,
    keys: Mapping[str, str | None],
    *,
    now: float | None = None,
    rules: Sequence[Rule] | None = None,
) -> None:
    """Clear the counters of ``action`` for these keys (e.g. forget failures after a
    success).

    Site-wide (``global``) counters are cleared only when ``keys`` names ``"global"``:
    forgetting one phone's counters must not reset everyone's.

    :raises StoreUnavailable: the cache failed; the counters then stay.
    """
    moment = now_or(now)
    buckets = [
        b
        for b in _buckets(action, keys, moment, rules)
        if b.rule.key != "global" or keys.get("global")
    ]
    cache().delete_many([k for b in buckets for k in (b.current, b.previous)])
