"""The window figures of the dashboard (per day, totals, countries, vendor errors),
computed in the database. The out-of-credit check lives in :mod:`.credit` and is
importable from here too.

Every figure of the window comes from two aggregate queries (:func:`_rows`): one over
the attempts of the window, one over the
:class:`~django_verifynow.models.DailyAttemptStat` counters that ``verifynow_purge``
wrote for the attempts it deleted. Both are grouped
small enough to be summed in Python; the cost does not depend on how many attempts the
table holds beyond the rows inside the window.

**Purged days.** The purge adds each batch of attempts to the counters in the same
transaction that deletes it, so every attempt is counted exactly once: in the table
while it lives, in the counters once it is gone. A day the purge has only partly
deleted (its cutoff falls inside the day, or it kept a pending attempt whose code is
still valid) is the sum of both. The counters keep the day (local, in the time zone the
purge ran in), the country, the channel and the effective status, not the rest: a
purged attempt refused by VerifyNow counts as refused but not under its response code,
consumed proofs are not known, and since ``code_sent`` is not kept, a purged 506 reuse
(no SMS of its own) counts as a send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.functions import TruncDate
from django.utils import timezone

from ..codes import ResponseCode
from ..models import (
    AttemptStatus,
    CheckOutcome,
    DailyAttemptStat,
    VerificationAttempt,
    VerificationCheck,
)
from .credit import CREDIT_WINDOW, CreditOutage, out_of_credit_since
from .credit import INSUFFICIENT_BALANCE as INSUFFICIENT_BALANCE

__all__ = [
    "CREDIT_WINDOW",
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "CountryStats",
    "CreditOutage",
    "DayStats",
    "Overview",
    "Summary",
    "VendorError",
    "daily_stats",
    "out_of_credit_since",
    "overview",
    "summary",
    "top_countries",
    "vendor_errors",
]

#: Days shown on the dashboard.
DEFAULT_DAYS = 30
#: The longest window the dashboard shows (``?days=365``): a year of counters is at
#: most a few thousand rows, a bound the page's cost must keep.
MAX_DAYS = 366

#: A send in SQL: not refused by the vendor, and a new code really went out (a 506
#: reuse of the code already sent, ``code_sent=False``, cost no SMS).
_SENT = ~Q(status=AttemptStatus.FAILED) & Q(code_sent=True)
#: A verification in SQL. Counted whether or not the attempt sent its own SMS: a reused
#: code that gets verified is the conversion of the SMS sent before it.
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


# -- one pass over the window ---------------------------------------------------------

_ERROR_STATUSES = (AttemptStatus.FAILED, AttemptStatus.UNKNOWN)


def _bounded(days: int) -> int:
    """``days`` within 1 and :data:`MAX_DAYS`: what a URL asks for never decides what
    a query costs."""
    return min(max(int(days), 1), MAX_DAYS)


def _rows(days: int, now: datetime | None) -> tuple[datetime, list[dict[str, Any]]]:
    """Attempts of the window grouped by (local day, country, effective state, whether
    a code was sent, error code), then the purged ones from their counters.

    Two queries whose results are small (days × countries × states × 2 × a few codes)
    and from which the daily series, the totals, the countries and the failed sends are
    all derived in Python: one scan of the window instead of one per figure. ``state``
    is the effective status (:meth:`~VerificationAttemptQuerySet.with_state`): a
    pending attempt past its expiry counts as expired. Rows from the counters say
    ``purged``; see the module docstring for what they cannot tell.
    """
    days = _bounded(days)
    start, end = _window(now, days)
    tz = timezone.get_current_timezone()
    rows = (
        VerificationAttempt.objects.filter(created_at__gte=start, created_at__lte=end)
        # Test numbers (TEST_NUMBERS) sent no SMS and cost nothing: no figure counts
        # them, neither as sends nor as verifications.
        .test_numbers(False)
        .with_state()
        .annotate(
            day=TruncDate("created_at", tzinfo=tz),
            error_code=Case(
                # failed and unknown are never rewritten by expiry: the stored status
                # is the effective one here.
                When(status__in=_ERROR_STATUSES, then=F("last_response_code")),
                default=Value(None),
                output_field=IntegerField(),
            ),
        )
        .values("day", "country", "state", "code_sent", "error_code")
        .annotate(
            n=Count("pk"), consumed=Count("pk", filter=Q(consumed_at__isnull=False))
        )
        .order_by()
    )
    # dict(row): the stubs type values() rows as a TypedDict, not as dict[str, Any].
    result = [{**row, "purged": False} for row in rows]
    return start, result + _purged_rows(start, end)


def _purged_rows(start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The :class:`DailyAttemptStat` counters of the window's days, shaped like the
    rows of :func:`_rows`.

    Added to the live rows, never instead of them: the purge moves each attempt from
    the table to the counters in one transaction, so a day split between both is the
    sum of both. The counters do not keep ``code_sent`` (every attempt not refused is
    taken as a send), response codes or consumption.
    """
    first, last = timezone.localtime(start).date(), timezone.localtime(end).date()
    counters = (
        DailyAttemptStat.objects.filter(day__gte=first, day__lte=last)
        .annotate(state=F("status"))
        .values("day", "country", "state")
        .annotate(n=Sum("attempts"))
        .order_by()
    )
    return [
        {
            **row,
            "code_sent": True,
            "error_code": None,
            "consumed": 0,
            "purged": True,
        }
        for row in counters
        if row["n"]
    ]


def _is_send(row: dict[str, Any]) -> bool:
    """:data:`_SENT` for a row of :func:`_rows`."""
    return row["state"] != AttemptStatus.FAILED and bool(row["code_sent"])


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
    days = _bounded(days)
    counts: dict[date, list[int]] = {}
    for row in rows:
        sends_verified_failed = counts.setdefault(row["day"], [0, 0, 0])
        if _is_send(row):
            sends_verified_failed[0] += row["n"]
        if row["state"] == AttemptStatus.VERIFIED:
            sends_verified_failed[1] += row["n"]
        if row["state"] == AttemptStatus.FAILED:
            sends_verified_failed[2] += row["n"]
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

    Every day of the window is present, days without attempts as zeros; days already
    purged come from their :class:`DailyAttemptStat` counters. Two queries.
    """
    start, rows = _rows(days, now)
    return _daily(start, rows, days)


# -- totals ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Totals over the window, by effective state (``expired`` includes pending
    attempts past their expiry)."""

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
    by_state: dict[str, int] = {}
    for row in rows:
        by_state[row["state"]] = by_state.get(row["state"], 0) + row["n"]
    return Summary(
        sends=sum(row["n"] for row in rows if _is_send(row)),
        verified=by_state.get(AttemptStatus.VERIFIED, 0),
        locked=by_state.get(AttemptStatus.LOCKED, 0),
        failed=by_state.get(AttemptStatus.FAILED, 0),
        unknown=by_state.get(AttemptStatus.UNKNOWN, 0),
        expired=by_state.get(AttemptStatus.EXPIRED, 0),
        consumed=sum(row["consumed"] for row in rows),
    )


def summary(days: int = DEFAULT_DAYS, *, now: datetime | None = None) -> Summary:
    """Totals per outcome over the last ``days`` days (``consumed`` counts the attempts
    still in the table only). Two queries."""
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
        if row["state"] == AttemptStatus.FAILED:
            continue
        c = counts.setdefault(row["country"], [0, 0, 0])
        c[0] += row["n"] if _is_send(row) else 0
        c[1] += row["n"] if row["state"] == AttemptStatus.VERIFIED else 0
        c[2] += row["n"] if row["state"] == AttemptStatus.LOCKED else 0
    ranked = sorted(counts.items(), key=lambda item: (-item[1][0], item[0]))[:limit]
    return [CountryStats(country, *c) for country, c in ranked]


def top_countries(
    days: int = DEFAULT_DAYS, *, limit: int = 10, now: datetime | None = None
) -> list[CountryStats]:
    """The ``limit`` countries with the most sends, busiest first. Two queries."""
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
        # A purged attempt's response code is gone: counting it under "no answer"
        # would invent timeouts.
        if row["state"] in _ERROR_STATUSES and not row["purged"]:
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
    whose outcome is an error, unreachable or timed out; attempts and checks still in
    the table only (the purge keeps no response codes). Three queries.
    """
    now = now or timezone.now()
    start, rows = _rows(days, now)
    return _vendor_errors(start, now, rows)


@dataclass(frozen=True)
class Overview:
    """Everything the dashboard shows about the window, from three queries.

    ``purged`` is how many of the window's attempts were counted from the purge's
    :class:`DailyAttemptStat` counters (0 when the purge has not reached the window).
    """

    days: list[DayStats]
    summary: Summary
    countries: list[CountryStats]
    vendor_errors: list[VendorError]
    purged: int = 0


def overview(
    days: int = DEFAULT_DAYS, *, countries: int = 10, now: datetime | None = None
) -> Overview:
    """The daily series, totals, top countries and vendor errors in one scan of the
    window and of its purge counters, plus one query on the checks: three queries
    for any ``days`` (bounded by :data:`MAX_DAYS`)."""
    now = now or timezone.now()
    start, rows = _rows(days, now)
    return Overview(
        days=_daily(start, rows, days),
        summary=_summary(rows),
        countries=_countries(rows, countries),
        vendor_errors=_vendor_errors(start, now, rows),
        purged=sum(row["n"] for row in rows if row["purged"]),
    )
