"""Sends refused by policy (limits, cooldown, country rules, daily cap).

Such a refusal never creates an attempt row, so there is nothing to count in the
database: :func:`record_blocked`, a receiver of
:data:`~django_verifynow.signals.verification_blocked` connected when this module is
imported (the app's ``ready()`` imports the dashboard), counts them per UTC day and
reason in the cache, and :func:`blocked_sends` reads them back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import caches
from django.utils import timezone

from ..conf import verifynow_settings
from ..signals import verification_blocked
from .queries import DEFAULT_DAYS

__all__ = ["BlockedCount", "blocked_sends", "record_blocked"]

# The name the module had before it became a package, so logging configurations that
# route "django_verifynow.dashboard" keep catching this warning.
logger = logging.getLogger("django_verifynow.dashboard")

_BLOCKED_KEY = "verifynow:dash:blocked:{day}"
#: Counters outlive the dashboard window by a day, then the cache forgets them.
_BLOCKED_TTL = (DEFAULT_DAYS + 1) * 86400


@dataclass(frozen=True)
class BlockedCount:
    """Sends refused by policy for one reason over the window."""

    reason: str
    count: int


def record_blocked(
    sender: Any = None, *, reason: str | None = "", **kwargs: Any
) -> None:
    """Count one refused send per UTC day and reason (a ``verification_blocked``
    receiver).

    Never raises: a cache failure must not turn a refusal into a server error.
    """
    day = timezone.now().date().isoformat()
    key = _BLOCKED_KEY.format(day=day)
    try:
        cache = caches[verifynow_settings.CACHE]
        # One dict per day: a read-modify-write race may lose a count under heavy
        # concurrency, which a dashboard figure can afford (limits use atomic incr).
        counts = cache.get(key) or {}
        # str(): reasons arrive as Reason members; the cache keeps their plain value,
        # so the counters stay readable if the enum changes (and None is "unknown").
        label = str(reason or "") or "unknown"
        counts[label] = counts.get(label, 0) + 1
        cache.set(key, counts, _BLOCKED_TTL)
    except Exception:  # noqa: BLE001
        logger.warning("verifynow dashboard: could not count a blocked send")


verification_blocked.connect(
    record_blocked, dispatch_uid="django_verifynow.dashboard.blocked"
)


def blocked_sends(
    days: int = DEFAULT_DAYS, *, now: datetime | None = None
) -> list[BlockedCount]:
    """Sends refused by policy per reason over the last ``days`` UTC days, most first.

    Read from the cache (one ``get_many``): only as durable and as shared as the cache
    behind ``VERIFYNOW["CACHE"]``.
    """
    today = (now or timezone.now()).date()
    keys = [
        _BLOCKED_KEY.format(day=(today - timedelta(days=n)).isoformat())
        for n in range(days)
    ]
    try:
        found = caches[verifynow_settings.CACHE].get_many(keys)
    except Exception:  # noqa: BLE001
        return []
    totals: dict[str, int] = {}
    for counts in found.values():
        for reason, count in counts.items():
            totals[reason] = totals.get(reason, 0) + count
    return [
        BlockedCount(r, c)
        for r, c in sorted(totals.items(), key=lambda i: (-i[1], i[0]))
    ]
