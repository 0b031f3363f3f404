"""Figures for the verification dashboard, computed in the database.

Plain functions over the ORM: every figure is one aggregate query (``GROUP BY`` with
conditional ``COUNT``), never a Python loop over rows, so the cost does not depend on how
many attempts the table holds beyond the rows inside the window. They return frozen
dataclasses that the admin view renders, and that operators can call from a shell or a
monitoring job.

Definitions used throughout:

* a **send** is an attempt whose code went out or may have gone out: every status but
  ``failed`` (the vendor refused or nothing was sent);
* a **verification** is an attempt in status ``verified``, counted on the day of its send;
* **conversion** is verifications ÷ sends (``None`` when there were no sends).

Sends refused by policy (limits, cooldown, country rules, daily cap) never create a row;
they are counted per day and reason in the cache by :func:`record_blocked`, a receiver
of :data:`~django_verifynow.signals.verification_blocked`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.core.cache import caches
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When
from django.db.models.functions import Left, Length, TruncDate
from django.utils import timezone

from .codes import ResponseCode
from .conf import verifynow_settings
from .models import AttemptStatus, CheckOutcome, VerificationAttempt, VerificationCheck
from .signals import verification_blocked

__all__ = [
    "BlockedCount",
    "Chart",
    "CountryStats",
    "DayStats",
    "Overview",
    "PumpingSignal",
    "Summary",
    "VendorError",
    "blocked_sends",
    "chart",
    "daily_stats",
    "overview",
    "pumping_signals",
    "record_blocked",
    "summary",
    "top_countries",
    "vendor_errors",
]

logger = logging.getLogger(__name__)

#: Days shown on the dashboard.
DEFAULT_DAYS = 30

_SENT = ~Q(status=AttemptStatus.FAILED)
_VERIFIED = Q(status=AttemptStatus.VERIFIED)


def _conversion(verified: int, sends: int) -> float | None:
    return verified / sends if sends else None


def _day_start(now: datetime, days: int) -> datetime:
    """Local midnight ``days - 1`` days before ``now``: the first day of the window."""
    local = timezone.localtime(now)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=days - 1)


def _window(now: datetime | None, days: int) -> tuple[datetime, datetime]:
    now = now or timezone.now()
    return _day_start(now, days), now


# -- one pass over the window -----------------------------------------------------------

_ERROR_STATUSES = (AttemptStatus.FAILED, AttemptStatus.UNKNOWN)


def _rows(days: int, now: datetime | None) -> tuple[datetime, list[dict[str, Any]]]:
    """Attempts of the window grouped by (local day, country, status, error code).

    One query whose result is small (days × countries × statuses × a few codes) and from
    which the daily series, the totals, the countries and the failed sends are all
    derived in Python: one scan of the window instead of one per figure.
    """
    start, end = _window(now, days)
    tz = timezone.get_current_timezone()
    rows = (
        VerificationAttempt.objects.filter(created_at__gte=start, created_at__lte=end)
        .annotate(
            day=TruncDate("created_at", tzinfo=tz),
            error_code=Case(
                When(status__in=_ERROR_STATUSES, then=F("last_response_code")),
                default=Value(None),
                output_field=IntegerField(),
            ),
        )
        .values("day", "country", "status", "error_code")
        .annotate(
            n=Count("pk"), consumed=Count("pk", filter=Q(consumed_at__isnull=False))
        )
        .order_by()
    )
    # dict(row): the stubs type values() rows as a TypedDict, not as dict[str, Any].
    return start, [dict(row) for row in rows]


# -- per day ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DayStats:
    """One day of the chart."""

    day: date
    sends: int
    verified: int
    failed: int

    @property
    def conversion(self) -> float | None:
        """Verified ÷ sent, or ``None`` on a day without sends."""
        return _conversion(self.verified, self.sends)


def _daily(start: datetime, rows: list[dict[str, Any]], days: int) -> list[DayStats]:
    counts: dict[date, list[int]] = {}
    for row in rows:
        sends_verified_failed = counts.setdefault(row["day"], [0, 0, 0])
        if row["status"] == AttemptStatus.FAILED:
            sends_verified_failed[2] += row["n"]
        else:
            sends_verified_failed[0] += row["n"]
        if row["status"] == AttemptStatus.VERIFIED:
            sends_verified_failed[1] += row["n"]
    first = timezone.localtime(start).date()
    result = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        sends, verified, failed = counts.get(day, (0, 0, 0))
        result.append(DayStats(day=day, sends=sends, verified=verified, failed=failed))
    return result


def daily_stats(
    days: int = DEFAULT_DAYS, *, now: datetime | None = None
) -> list[DayStats]:
    """Sends, verifications and vendor refusals per local day, oldest first.

    Every day of the window is present, days without attempts as zeros. One query.
    """
    start, rows = _rows(days, now)
    return _daily(start, rows, days)


# -- totals ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Totals over the window."""

    sends: int
    verified: int
    locked: int
    failed: int
    unknown: int
    expired: int
    consumed: int

    @property
    def conversion(self) -> float | None:
        """Verified ÷ sent over the window."""
        return _conversion(self.verified, self.sends)


def _summary(rows: list[dict[str, Any]]) -> Summary:
    by_status: dict[str, int] = {}
    for row in rows:
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
    return Summary(
        sends=sum(
            n for status, n in by_status.items() if status != AttemptStatus.FAILED
        ),
        verified=by_status.get(AttemptStatus.VERIFIED, 0),
        locked=by_status.get(AttemptStatus.LOCKED, 0),
        failed=by_status.get(AttemptStatus.FAILED, 0),
        unknown=by_status.get(AttemptStatus.UNKNOWN, 0),
        expired=by_status.get(AttemptStatus.EXPIRED, 0),
        consumed=sum(row["consumed"] for row in rows),
    )


def summary(days: int = DEFAULT_DAYS, *, now: datetime | None = None) -> Summary:
    """Totals per outcome over the last ``days`` days. One query."""
    return _summary(_rows(days, now)[1])


# -- countries -------------------------------------------------------------------------


@dataclass(frozen=True)
class CountryStats:
    """Sends and conversion for one country (ISO 3166 alpha-2, ``""`` when unknown)."""

    country: str
    sends: int
    verified: int
    locked: int

    @property
    def conversion(self) -> float | None:
        """Verified ÷ sent for this country."""
        return _conversion(self.verified, self.sends)


def _countries(rows: list[dict[str, Any]], limit: int) -> list[CountryStats]:
    counts: dict[str, list[int]] = {}
    for row in rows:
        if row["status"] == AttemptStatus.FAILED:
            continue
        c = counts.setdefault(row["country"], [0, 0, 0])
        c[0] += row["n"]
        c[1] += row["n"] if row["status"] == AttemptStatus.VERIFIED else 0
        c[2] += row["n"] if row["status"] == AttemptStatus.LOCKED else 0
    ranked = sorted(counts.items(), key=lambda item: (-item[1][0], item[0]))[:limit]
    return [CountryStats(country, *c) for country, c in ranked]


def top_countries(
    days: int = DEFAULT_DAYS, *, limit: int = 10, now: datetime | None = None
) -> list[CountryStats]:
    """The ``limit`` countries with the most sends, busiest first. One query."""
    return _countries(_rows(days, now)[1], limit)


# -- vendor errors ---------------------------------------------------------------------


@dataclass(frozen=True)
class VendorError:
    """How often one vendor answer (or its absence) failed a call."""

    call: str  # "send" or "validate"
    response_code: int | None  # None: no usable answer (timeout, connection, bad JSON)
    count: int

    @property
    def name(self) -> str:
        """The vendor's name for the code (``"no answer"`` without one)."""
        if self.response_code is None:
            return "no answer"
        return ResponseCode.name_of(self.response_code)


def _vendor_errors(
    start: datetime, end: datetime, rows: list[dict[str, Any]]
) -> list[VendorError]:
    sends: dict[int | None, int] = {}
    for row in rows:
        if row["status"] in _ERROR_STATUSES:
            sends[row["error_code"]] = sends.get(row["error_code"], 0) + row["n"]
    checks = (
        VerificationCheck.objects.filter(
            created_at__gte=start,
            created_at__lte=end,
            outcome__in=[
                CheckOutcome.ERROR,
                CheckOutcome.UNAVAILABLE,
                CheckOutcome.UNKNOWN,
            ],
        )
        .values("response_code")
        .annotate(count=Count("pk"))
        .order_by()
    )
    result = [VendorError("send", code, n) for code, n in sends.items()]
    result += [VendorError("validate", r["response_code"], r["count"]) for r in checks]
    result.sort(key=lambda e: (-e.count, e.call, e.response_code or 0))
    return result


def vendor_errors(
    days: int = DEFAULT_DAYS, *, now: datetime | None = None
) -> list[VendorError]:
    """Failed sends and failed checks grouped by vendor response code, most first.

    Sends in status ``failed`` or ``unknown`` by their last response code, and checks
    whose outcome is an error, unreachable or timed out. Two queries.
    """
    now = now or timezone.now()
    start, rows = _rows(days, now)
    return _vendor_errors(start, now, rows)


@dataclass(frozen=True)
class Overview:
    """Everything the dashboard shows about the window, from two queries."""

    days: list[DayStats]
    summary: Summary
    countries: list[CountryStats]
    vendor_errors: list[VendorError]


def overview(
    days: int = DEFAULT_DAYS, *, countries: int = 10, now: datetime | None = None
) -> Overview:
    """The daily series, totals, top countries and vendor errors in one scan of the
    window (plus one query on the checks)."""
    now = now or timezone.now()
    start, rows = _rows(days, now)
    return Overview(
        days=_daily(start, rows, days),
        summary=_summary(rows),
        countries=_countries(rows, countries),
        vendor_errors=_vendor_errors(start, now, rows),
    )


# -- blocked sends (policy refusals: no row exists) -----------------------------------

_BLOCKED_KEY = "verifynow:dash:blocked:{day}"
#: Counters outlive the dashboard window by a day, then the cache forgets them.
_BLOCKED_TTL = (DEFAULT_DAYS + 1) * 86400


@dataclass(frozen=True)
class BlockedCount:
    """Sends refused by policy for one reason over the window."""

    reason: str
    count: int


def record_blocked(sender: Any = None, *, reason: str = "", **kwargs: Any) -> None:
    """Count one refused send per UTC day and reason (a ``verification_blocked`` receiver).

    Never raises: a cache failure must not turn a refusal into a server error.
    """
    day = timezone.now().date().isoformat()
    key = _BLOCKED_KEY.format(day=day)
    try:
        cache = caches[verifynow_settings.CACHE]
        # One dict per day: a read-modify-write race may lose a count under heavy
        # concurrency, which a dashboard figure can afford (limits use atomic incr).
        counts = cache.get(key) or {}
        counts[reason or "unknown"] = counts.get(reason or "unknown", 0) + 1
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


# -- SMS pumping (R22) -----------------------------------------------------------------


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


#: R22 project defaults: alert below 40 % conversion with at least 50 sends.
PUMPING_THRESHOLD = 0.4
PUMPING_MIN_SENDS = 50
#: Sends must be at least this multiple of their usual rate to count as rising.
PUMPING_RISE = 2.0
PUMPING_WINDOWS = (timedelta(hours=1), timedelta(hours=24))
PUMPING_BASELINE = timedelta(days=7)


def _prefix_expression() -> Left:
    # phone.prefix(): the number without its last 4 digits, computed in the database.
    return Left("phone_number", Length("phone_number") - 4)


def _keyed(scope: str) -> QuerySet[VerificationAttempt]:
    qs = VerificationAttempt.objects.filter(_SENT)
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
            counts[f"s{n}"] = Count("pk", filter=recent)
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
            base_counts[f"b{n}"] = Count("pk", filter=period)
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


# -- chart -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One rectangle of the SVG chart, in user units."""

    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Chart:
    """Geometry of the server-rendered SVG chart: bars for sends and verifications per
    day, a line for conversion (right axis, 0-100 %)."""

    width: int
    height: int
    plot_top: int
    plot_bottom: int
    plot_left: int
    plot_right: int
    sends: list[Bar]
    verified: list[Bar]
    conversion_points: str
    y_ticks: list[tuple[float, int]] = field(default_factory=list)
    x_labels: list[tuple[float, str]] = field(default_factory=list)


def _nice_max(value: int) -> int:
    """The smallest 1/2/5 × 10^n at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def chart(days: list[DayStats], *, width: int = 760, height: int = 240) -> Chart:
    """Lay out ``days`` (from :func:`daily_stats`) as an SVG bar-and-line chart."""
    left, right, top, bottom = 48, width - 44, 12, height - 28
    plot_w, plot_h = right - left, bottom - top
    top_value = _nice_max(max((d.sends for d in days), default=0))
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.7, 1.0)

    def y_of(value: float) -> float:
        return round(bottom - plot_h * value / top_value, 1)

    sends, verified, points, labels = [], [], [], []
    for i, d in enumerate(days):
        x = round(left + i * slot + (slot - bar_w) / 2, 1)
        conv = d.conversion
        text = f"{d.day:%Y-%m-%d}: {d.sends} sent, {d.verified} verified" + (
            f", {conv:.0%}" if conv is not None else ""
        )
        sends.append(
            Bar(
                x,
                y_of(d.sends),
                round(bar_w, 1),
                round(bottom - y_of(d.sends), 1),
                text,
            )
        )
        verified.append(
            Bar(
                x,
                y_of(d.verified),
                round(bar_w, 1),
                round(bottom - y_of(d.verified), 1),
                text,
            )
        )
        if conv is not None:
            cx = round(left + i * slot + slot / 2, 1)
            points.append(f"{cx},{round(bottom - plot_h * conv, 1)}")
        if i % 5 == 0 or i == len(days) - 1:
            labels.append((round(left + i * slot + slot / 2, 1), f"{d.day:%m-%d}"))
    ticks = [(y_of(top_value * k / 4), round(top_value * k / 4)) for k in range(5)]
    return Chart(
        width=width,
        height=height,
        plot_top=top,
        plot_bottom=bottom,
        plot_left=left,
        plot_right=right,
        sends=sends,
        verified=verified,
        conversion_points=" ".join(points),
        y_ticks=ticks,
        x_labels=labels,
    )
