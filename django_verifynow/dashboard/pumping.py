"""The SMS-pumping watch: countries and number prefixes whose conversion
collapsed while their sends rose.

A *send* here is what it is everywhere on the dashboard: an attempt that sent a new code
(``code_sent``) and was not refused by the vendor; a 506 reuse of a code already sent
costs no SMS, so it is no sign of pumping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import Left, Length
from django.utils import timezone

from ..models import AttemptStatus, VerificationAttempt
from ..policy.pumping import PUMPING_MIN_SENDS, PUMPING_RISE, PUMPING_THRESHOLD
from .queries import _SENT, _VERIFIED, _conversion

__all__ = [
    "PUMPING_BASELINE",
    "PUMPING_MIN_SENDS",
    "PUMPING_RISE",
    "PUMPING_THRESHOLD",
    "PUMPING_WINDOWS",
    "PumpingSignal",
    "pumping_signals",
]


@dataclass(frozen=True)
class PumpingSignal:
    """A country or number prefix whose conversion collapsed while its sends rose.

    ``baseline_sends`` is the average number of sends per window of the same length over
    the baseline period before it; ``baseline_conversion`` its conversion.
    """

    scope: str  # "country" or "prefix"
    key: str  # ISO code, or the number without its last 4 digits
    window: timedelta
    sends: int
    verified: int
    baseline_sends: float
    baseline_conversion: float | None

    @property
    def conversion(self) -> float:
        """Verified ÷ sent inside the window."""
        return self.verified / self.sends

    @property
    def rise(self) -> float | None:
        """Sends inside the window ÷ the baseline per window (``None``: no baseline)."""
        return self.sends / self.baseline_sends if self.baseline_sends else None

    @property
    def label(self) -> str:
        """What to show: the country code, or the prefix with its hidden digits."""
        return self.key if self.scope == "country" else f"{self.key}xxxx"


# One signature for the dashboard and the live watch of the send path: below 40 %
# conversion with at least 50 sends, while sends at least doubled.
PUMPING_WINDOWS = (timedelta(hours=1), timedelta(hours=24))
PUMPING_BASELINE = timedelta(days=7)


def _prefix_expression() -> Left:
    # phone.prefix(): the number without its last 4 digits, computed in the database.
    return Left("phone_number", Length("phone_number") - 4)


def _keyed(scope: str) -> QuerySet[VerificationAttempt]:
    # Not only the sends: a verified 506 reuse (no SMS of its own) still converts the
    # SMS sent before it. Sends and verifications are told apart by the COUNT filters.
    # Test numbers (TEST_NUMBERS) sent no SMS: neither sends nor conversions here.
    qs = VerificationAttempt.objects.exclude(status=AttemptStatus.FAILED).test_numbers(
        False
    )
    if scope == "prefix":
        return qs.annotate(key=_prefix_expression())
    return qs.annotate(key=F("country"))


def pumping_signals(
    *,
    now: datetime | None = None,
    windows: tuple[timedelta, ...] = PUMPING_WINDOWS,
    baseline: timedelta = PUMPING_BASELINE,
    min_sends: int = PUMPING_MIN_SENDS,
    threshold: float = PUMPING_THRESHOLD,
    rise: float = PUMPING_RISE,
) -> list[PumpingSignal]:
    """Countries and prefixes showing the SMS-pumping signature, worst first.

    For each window (by default the last hour and the last 24 hours) and each scope
    (country, prefix), a key is flagged when, inside the window, it had at least
    ``min_sends`` sends, a conversion below ``threshold``, and at least ``rise`` times
    its usual number of sends per window over the ``baseline`` period just before it
    (a key with no baseline counts as rising).

    Per scope, one query over the longest window finds the candidates (``HAVING`` keeps
    only keys with enough sends, so the result stays small); only when there are
    candidates does a second query read their baseline. Healthy traffic costs two
    small queries.
    """
    now = now or timezone.now()
    windows = tuple(sorted(windows))
    longest = windows[-1]
    found: list[PumpingSignal] = []
    for scope in ("country", "prefix"):
        counts: dict[str, Any] = {}
        for n, window in enumerate(windows):
            recent = Q(created_at__gte=now - window)
            counts[f"s{n}"] = Count("pk", filter=recent & _SENT)
            counts[f"v{n}"] = Count("pk", filter=recent & _VERIFIED)
        enough = Q()
        for n in range(len(windows)):
            enough |= Q(**{f"s{n}__gte": min_sends})
        rows = (
            _keyed(scope)  # type: ignore[misc]  # the plugin cannot see _keyed()'s "key"
            .filter(created_at__gte=now - longest, created_at__lte=now)
            .values("key")
            .annotate(**counts)
            .filter(enough)
            .order_by()
        )
        candidates = []
        for row in rows:
            for n, window in enumerate(windows):
                sends, verified = row[f"s{n}"], row[f"v{n}"]
                if sends >= min_sends and verified / sends < threshold:
                    candidates.append((row["key"] or "", n, window, sends, verified))
        if not candidates:
            continue
        base_counts: dict[str, Any] = {}
        for n, window in enumerate(windows):
            period = Q(
                created_at__gte=now - window - baseline, created_at__lt=now - window
            )
            base_counts[f"b{n}"] = Count("pk", filter=period & _SENT)
            base_counts[f"bv{n}"] = Count("pk", filter=period & _VERIFIED)
        base: dict[str, Mapping[str, Any]] = {
            row["key"] or "": row
            for row in _keyed(scope)
            .filter(
                created_at__gte=now - longest - baseline,
                created_at__lt=now - windows[0],
            )
            .annotate(k=F("key"))
            .filter(k__in={c[0] for c in candidates})
            .values("key")
            .annotate(**base_counts)
            .order_by()
        }
        for key, n, window, sends, verified in candidates:
            row = base.get(key, {})
            base_sends, base_verified = row.get(f"b{n}", 0), row.get(f"bv{n}", 0)
            usual = base_sends * (window / baseline)
            if usual and sends < rise * usual:
                continue
            found.append(
                PumpingSignal(
                    scope=scope,
                    key=key,
                    window=window,
                    sends=sends,
                    verified=verified,
                    baseline_sends=usual,
                    baseline_conversion=_conversion(base_verified, base_sends),
                )
            )
    found.sort(key=lambda s: (s.conversion, -s.sends, s.scope, s.key))
    return found
