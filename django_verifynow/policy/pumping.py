"""The SMS-pumping watch while it happens: countries whose sends rise while their
conversion collapses.

Fraudsters "pump" SMS to numbers they are paid for: many sends, almost none verified.
The admin dashboard shows that signature over past windows; this module notices it on
the send path, so a site hears about it at once: a WARNING event and the
``pumping_suspected`` signal, once per country per hour.

Per country, two counters per hour live in the limits cache: real SMS sent (a send
that reused a live code is none) and verifications. At a send, from
:data:`PUMPING_MIN_SENDS` on and every tenth send after, the hour is compared with the
one before: the signature is conversion below :data:`PUMPING_THRESHOLD` while sends
are at least :data:`PUMPING_RISE` times the previous hour's. Codes sent in the last
minute may still be verified, which only makes the watch more cautious.

Monitoring never refuses anything and never fails a request: a cache failure just
skips the watch.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import ratelimit
from . import redis_store

__all__ = [
    "PUMPING_MIN_SENDS",
    "PUMPING_RISE",
    "PUMPING_THRESHOLD",
    "Suspicion",
    "record_send",
    "record_verified",
]

#: Conversion (verified ÷ sent) below this is the pumping signature.
PUMPING_THRESHOLD = 0.4
#: Fewer sends than this in a window say nothing.
PUMPING_MIN_SENDS = 50
#: Sends must be at least this multiple of their usual rate to count as rising.
PUMPING_RISE = 2.0

_HOUR = 3600
_EVERY = 10


@dataclass(frozen=True)
class Suspicion:
    """A country showing the pumping signature in the current hour."""

    country: str
    sends: int
    verified: int
    previous_sends: int

    @property
    def conversion(self) -> float:
        """Verified ÷ sent this hour."""
        return self.verified / self.sends


def _key(kind: str, country: str, index: int) -> str:
    return f"{ratelimit.KEY_ROOT}:pump:{kind}:{ratelimit.hashed(country)}:{index}"


def sent_key(country: str, moment: float) -> str:
    """The counter of real SMS to ``country`` in the hour of ``moment``."""
    return _key("sent", country, int(moment // _HOUR))


#: TTL of the hourly counters.
TTL = 2 * _HOUR + ratelimit.TTL_MARGIN


def record_send(
    country: str, *, now: float | None = None, sends: int | None = None
) -> Suspicion | None:
    """Count one real SMS to ``country``; return a :class:`Suspicion` the first time
    in the hour the country shows the signature.

    :param sends: the hour's count with this SMS, when the send's commit counted it
        already (on Redis it does, in the same round trip); nothing is counted again.
    """
    try:
        return _record_send(country, ratelimit.now_or(now), sends)
    except Exception:  # noqa: BLE001 - monitoring must never fail a send
        return None


def _record_send(country: str, moment: float, sends: int | None) -> Suspicion | None:
    store = ratelimit.cache()
    index = int(moment // _HOUR)
    ttl = TTL
    if sends is None:
        sends = redis_store.count(store, _key("sent", country, index), ttl)
    if sends < PUMPING_MIN_SENDS or (sends - PUMPING_MIN_SENDS) % _EVERY:
        return None
    verified_key = _key("verified", country, index)
    previous_key = _key("sent", country, index - 1)
    found = store.get_many([verified_key, previous_key])
    verified = int(found.get(verified_key) or 0)
    previous = int(found.get(previous_key) or 0)
    if verified >= sends * PUMPING_THRESHOLD or sends < previous * PUMPING_RISE:
        return None
    if not store.add(_key("alerted", country, index), 1, ttl):
        return None  # told already this hour
    return Suspicion(country, sends, verified, previous)


def record_verified(country: str, *, now: float | None = None) -> None:
    """Count one verification in ``country``."""
    try:
        index = int(ratelimit.now_or(now) // _HOUR)
        redis_store.count(ratelimit.cache(), _key("verified", country, index), TTL)
    except Exception:  # noqa: BLE001 - monitoring must never fail a check
        pass
