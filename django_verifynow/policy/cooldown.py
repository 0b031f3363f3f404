"""The resend cooldown of a phone: growing waits, and the vendor's validity window.

One cache entry per phone (keyed by an HMAC of the number) holds::

    {"n": sends since 24 h of silence, "last": time of the last send,
     "until": end of the growing wait, "valid_until": end of the vendor's window}

Two waits, whichever ends later, keep the next send of a phone away:

* the **growing wait**, ``RESEND_COOLDOWN * 2 ** (n - 1)`` capped at
  ``RESEND_COOLDOWN_MAX`` (30 s, 1, 2, 4 … 32 min), with ±10 % jitter from the second
  send on so bots cannot time it; the first wait is exact, so the first resend time the
  API advertises holds;
* the **vendor's validity window**: VerifyNow keeps a code live for its ``timeout``
  (60 s by default, 20-300 s per account) and answers 506 "already exists" to any send
  for that number until it ends, without sending an SMS. A resend before then would say
  "sent" and send nothing, so the cooldown never ends before the live code does.

Only :mod:`django_verifynow.policy` calls this module; it decides when a send starts a
cooldown (admission) and when it is taken back (nothing was sent).
"""

from __future__ import annotations

import contextlib
import math
import secrets
from dataclasses import dataclass
from typing import Any

from .. import ratelimit
from ..conf import verifynow_settings
from . import redis_store

__all__ = [
    "COOLDOWN_MEMORY",
    "INFLIGHT_RETRY_AFTER",
    "INFLIGHT_SECONDS",
    "Ticket",
    "Wait",
    "extend",
    "finish",
    "remaining",
    "restore",
    "start",
]

#: Cooldown growth resets after this much silence.
COOLDOWN_MEMORY = 24 * 3600

#: How long a send may hold its phone's in-flight marker if its process dies before
#: settling it (seconds; a settled send removes it at once).
INFLIGHT_SECONDS = 60

#: The wait told to a send refused because another send to the phone is in flight.
INFLIGHT_RETRY_AFTER = 5

# Jitter source: unpredictable to clients; tests may replace it.
_random = secrets.SystemRandom()


@dataclass(frozen=True)
class Wait:
    """How long until the next send to a phone, and whether a live code explains it."""

    seconds: int
    #: True when the vendor's window of the code already sent is what keeps the phone
    #: waiting: that code can still be entered.
    code_valid: bool


@dataclass(frozen=True)
class Ticket:
    """What :func:`start` replaced, so :func:`restore` can put it back; ``None`` from
    :func:`start` means another send to the phone is in flight."""

    phone: str
    previous: dict[str, Any] | None
    #: The end of the growing wait this send started (epoch seconds).
    until: float = 0.0


def _key(phone: str) -> str:
    return f"{ratelimit.KEY_ROOT}:cooldown:phone:{ratelimit.hashed(phone)}"


def _inflight_key(phone: str) -> str:
    return f"{ratelimit.KEY_ROOT}:inflight:phone:{ratelimit.hashed(phone)}"


def _state(phone: str) -> dict[str, Any] | None:
    cache = ratelimit.cache()
    store = redis_store.for_cache(cache)
    if store is not None:
        # JSON on Redis, so the admission script can read and write it.
        return redis_store.read_json(store, _key(phone))
    state = cache.get(_key(phone))
    return state if isinstance(state, dict) else None


def _put(phone: str, state: dict[str, Any], ttl: int) -> None:
    cache = ratelimit.cache()
    store = redis_store.for_cache(cache)
    if store is not None:
        store.set_json(_key(phone), state, ttl)
    else:
        cache.set(_key(phone), state, ttl)


def seconds_left(state: dict[str, Any] | None, now: float) -> int:
    """Seconds until a record lets the next send go (0: now)."""
    return _wait(state, now).seconds


def _ttl(state: dict[str, Any], now: float) -> int:
    ends = max(float(state.get("until", 0)), float(state.get("valid_until", 0)), now)
    return int(COOLDOWN_MEMORY + ends - now) + ratelimit.TTL_MARGIN


def _wait(state: dict[str, Any] | None, moment: float) -> Wait:
    if state is None:
        return Wait(0, False)
    until = float(state.get("until", 0))
    valid_until = float(state.get("valid_until", 0))
    seconds = max(0, math.ceil(max(until, valid_until) - moment))
    return Wait(seconds, seconds > 0 and valid_until > moment and valid_until >= until)


@ratelimit.guarded
def remaining(phone: str, *, now: float | None = None) -> Wait:
    """The wait before another code may go to ``phone`` (E.164), 0 seconds = now.

    :raises ratelimit.StoreUnavailable: the cache failed.
    """
    return _wait(_state(phone), ratelimit.now_or(now))


@ratelimit.guarded
def start(phone: str, *, now: float | None = None) -> Ticket | Wait:
    """Record a send to ``phone`` and start its growing wait, if it may go now.

    The cooldown's read-modify-write runs under an in-flight marker taken with the
    cache's atomic ``add``, and the cooldown is read again under it: of concurrent
    sends to one phone exactly one gets a ticket, and a send that settled a moment
    ago is seen. :func:`finish` or :func:`restore` removes the marker.

    :returns: a :class:`Ticket` that :func:`restore` uses if nothing was sent; or the
        :class:`Wait` that refuses this send (``INFLIGHT_RETRY_AFTER`` seconds while
        another send to the phone is in flight).
    :raises ratelimit.StoreUnavailable: the cache failed.
    """
    store = ratelimit.cache()
    if not store.add(_inflight_key(phone), 1, INFLIGHT_SECONDS):
        return Wait(INFLIGHT_RETRY_AFTER, False)
    try:
        return _start(store, phone, ratelimit.now_or(now))
    except Exception:
        # A cache failure after the marker was taken: give it back, or the phone
        # would be refused as "in flight" until the marker expires.
        with contextlib.suppress(Exception):
            store.delete(_inflight_key(phone))
        raise


def _start(store: Any, phone: str, moment: float) -> Ticket | Wait:
    previous = _state(phone)
    wait = _wait(previous, moment)
    if wait.seconds > 0:
        store.delete(_inflight_key(phone))
        return wait
    sends = 0
    if previous is not None and moment - previous.get("last", 0) < COOLDOWN_MEMORY:
        sends = int(previous.get("n", 0))
    sends += 1
    state = {
        "n": sends,
        "last": moment,
        "until": moment + wait_for(sends),
        "valid_until": float((previous or {}).get("valid_until", 0)),
    }
    _put(phone, state, _ttl(state, moment))
    return Ticket(phone=phone, previous=previous, until=state["until"])


@ratelimit.guarded
def restore(ticket: Ticket, *, valid_for: int | None = None) -> None:
    """Put back the state :func:`start` replaced: the send did not happen.

    :param valid_for: the vendor still holds a live code for the phone for this many
        seconds (506): resends wait for it. Written before the in-flight marker is
        removed, so no send slips in between.
    :raises ratelimit.StoreUnavailable: the cache failed; the cooldown then stays.
    """
    store = ratelimit.cache()
    moment = ratelimit.now_or(None)
    state = restored(ticket, valid_for, moment)
    if state is None:
        store.delete(_key(ticket.phone))
    else:
        _put(ticket.phone, state, _ttl(state, moment))
    store.delete(_inflight_key(ticket.phone))


def restored(
    ticket: Ticket, valid_for: int | None, moment: float
) -> dict[str, Any] | None:
    """The record :func:`restore` puts back (``None``: none, delete it)."""
    state = ticket.previous
    if valid_for and valid_for > 0:
        state = state or {"n": 0, "last": moment, "until": 0}
        state = {
            **state,
            "valid_until": max(float(state.get("valid_until", 0)), moment + valid_for),
        }
    return state


@ratelimit.guarded
def finish(ticket: Ticket) -> None:
    """The send of ``ticket`` is settled (its cooldown stays): let the next one in.

    :raises ratelimit.StoreUnavailable: the cache failed; the marker then expires
        after :data:`INFLIGHT_SECONDS`.
    """
    ratelimit.cache().delete(_inflight_key(ticket.phone))


@ratelimit.guarded
def extend(phone: str, valid_for: int, *, now: float | None = None) -> None:
    """Keep ``phone`` waiting until the vendor's window of its live code has passed.

    :param valid_for: seconds the vendor keeps the code it sent live.
    :raises ratelimit.StoreUnavailable: the cache failed.
    """
    if valid_for <= 0:
        return
    moment = ratelimit.now_or(now)
    state = _state(phone) or {"n": 0, "last": moment, "until": 0}
    state = {
        **state,
        "valid_until": max(float(state.get("valid_until", 0)), moment + valid_for),
    }
    _put(phone, state, _ttl(state, moment))


def wait_for(sends: int) -> int:
    """The growing wait after the ``sends``-th send (see the module docstring)."""
    base = verifynow_settings.RESEND_COOLDOWN
    cap = verifynow_settings.RESEND_COOLDOWN_MAX
    if base <= 0:
        return 0
    # Cap the exponent too, so a long streak cannot build a huge integer.
    raw = base * 2 ** min(sends - 1, 32)
    wait = min(raw, cap) if cap > 0 else raw
    if sends > 1:
        wait = round(wait * _random.uniform(0.9, 1.1))
        if cap > 0:
            wait = min(wait, cap)
    return max(1, int(wait))
