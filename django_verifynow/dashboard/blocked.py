"""Sends refused by policy (limits, cooldown, country rules, daily cap).

Such a refusal never creates an attempt row, so there is nothing to count in the
database: :func:`record_blocked`, a receiver of
:data:`~django_verifynow.signals.verification_blocked` connected when this module is
imported (the app's ``ready()`` imports the dashboard), counts them per UTC day and
reason in the cache, and :func:`blocked_sends` reads them back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import caches
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..conf import verifynow_settings
from ..reasons import Reason
from ..signals import verification_blocked
from .queries import DEFAULT_DAYS

__all__ = [
    "BLOCKED_DAYS",
    "REASON_LABELS",
    "BlockedCount",
    "blocked_sends",
    "reason_label",
    "record_blocked",
]

#: What operators read for each :class:`~django_verifynow.reasons.Reason`: one table
#: for every member (a test keeps it complete), though only the
#: :data:`~django_verifynow.reasons.BLOCKED_REASONS` reach the blocked-sends table
#: today, so a reason that moves there is never shown as a raw key.
REASON_LABELS: Mapping[Reason, str | Promise] = {
    Reason.COUNTRY: _("Country not allowed"),
    Reason.NUMBER_TYPE: _("Number type not allowed (landline, premium rate, …)"),
    Reason.COOLDOWN: _("Resend cooldown running"),
    Reason.PHONE_LIMIT: _("Limit per phone number"),
    Reason.IP_LIMIT: _("Limit per IP address"),
    Reason.SESSION_LIMIT: _("Limit per session or user"),
    Reason.GLOBAL_LIMIT: _("Site-wide limit"),
    Reason.PREFIX_BLOCKED: _("Number prefix blocked (SMS pumping)"),
    Reason.DAILY_CAP: _("Daily send cap used up"),
    Reason.FAILURE_CAP: _("Too many wrong codes today"),
    Reason.LIMITS_UNAVAILABLE: _("Limits cache unavailable (failed closed)"),
    Reason.VENDOR_LIMIT: _("VerifyNow's own limit"),
    Reason.VENDOR_CODE_LOCKED: _("VerifyNow code locked (tries used up)"),
    Reason.VENDOR_CODE_PENDING: _("VerifyNow code pending for another requester"),
    Reason.VENDOR_REFUSED: _("Refused by VerifyNow"),
    Reason.CHANNEL_REFUSED: _("Channel refused by VerifyNow (no WhatsApp)"),
    Reason.CREDENTIALS_REFUSED: _("VerifyNow credentials refused"),
    Reason.OUT_OF_CREDIT: _("VerifyNow account out of credit"),
    Reason.PROVIDER_ERROR: _("VerifyNow error"),
    Reason.PROVIDER_UNAVAILABLE: _("VerifyNow unreachable"),
    Reason.PROVIDER_TIMEOUT: _("No answer (timed out)"),
    Reason.WRONG_CODE: _("Wrong code"),
    Reason.EXPIRED: _("Code expired"),
}

#: Keys counted before reasons were typed (``rate_limited:<scope>``): the counters
#: live for a month in the cache, so they are still read after an upgrade.
_LEGACY_KEYS: Mapping[str, Reason] = {
    "rate_limited:prefix": Reason.PREFIX_BLOCKED,
    "rate_limited:unavailable": Reason.LIMITS_UNAVAILABLE,
    "rate_limited:daily_cap": Reason.DAILY_CAP,
    "rate_limited:cooldown": Reason.COOLDOWN,
}


def reason_label(key: str) -> str:
    """The translated label of a reason as the counters store it (its value).

    A key from before typed reasons gets the label of its successor
    (``rate_limited:prefix``) or a generic one naming its scope
    (``rate_limited:send``: "Rate limit (send)"); anything else unknown is shown as
    it is, so a count is never hidden.
    """
    try:
        reason = Reason(key)
    except ValueError:
        legacy = _LEGACY_KEYS.get(key)
        if legacy is not None:
            return str(REASON_LABELS[legacy])
        if key.startswith("rate_limited:"):
            return gettext("Rate limit (%(scope)s)") % {"scope": key.partition(":")[2]}
        if key in ("", "unknown"):
            return gettext("Unknown reason")
        return key
    return str(REASON_LABELS.get(reason, key))


# The name the module had before it became a package, so logging configurations that
# route "django_verifynow.dashboard" keep catching this warning.
logger = logging.getLogger("django_verifynow.dashboard")

_BLOCKED_KEY = "verifynow:dash:blocked:{day}"
#: Days of blocked sends the cache keeps: a longer dashboard window shows these only.
BLOCKED_DAYS = DEFAULT_DAYS
#: Counters outlive the dashboard window by a day, then the cache forgets them.
_BLOCKED_TTL = (BLOCKED_DAYS + 1) * 86400


@dataclass(frozen=True)
class BlockedCount:
    """Sends refused by policy for one reason over the window; ``reason`` is the key
    as counted (a :class:`~django_verifynow.reasons.Reason` value)."""

    reason: str
    count: int

    @property
    def label(self) -> str:
        """The translated label of :attr:`reason` (:func:`reason_label`)."""
        return reason_label(self.reason)


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
    behind ``VERIFYNOW["CACHE"]``, and no further back than :data:`BLOCKED_DAYS`
    (older counters have expired).
    """
    days = min(max(days, 1), BLOCKED_DAYS)
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
