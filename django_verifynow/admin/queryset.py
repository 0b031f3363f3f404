"""The changelist's queryset: a date drill-down that needs no ``DISTINCT`` scan."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from django.db.models import Max, Min
from django.utils import timezone

from ..models import VerificationAttemptQuerySet

__all__ = ["AdminAttemptQuerySet"]

_KINDS = ("year", "month", "day")
#: The ``kind`` and ``order`` that ``QuerySet.datetimes()`` accepts.
_DatetimesKind = Literal["year", "month", "week", "day", "hour", "minute", "second"]
_DatetimesOrder = Literal["ASC", "DESC"]


def _truncate(value: datetime, kind: str) -> datetime:
    value = value.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind in ("year", "month"):
        value = value.replace(day=1)
    if kind == "year":
        value = value.replace(month=1)
    return value


def _step(value: datetime, kind: str) -> datetime:
    if kind == "day":
        # Through a naive date so DST changes do not shift the local midnight.
        nxt = value.date() + timedelta(days=1)
        return value.replace(year=nxt.year, month=nxt.month, day=nxt.day)
    if kind == "month":
        if value.month == 12:
            return value.replace(year=value.year + 1, month=1)
        return value.replace(month=value.month + 1)
    return value.replace(year=value.year + 1)


class AdminAttemptQuerySet(VerificationAttemptQuerySet):
    """The changelist's queryset.

    Django's date hierarchy lists the years, months or days that hold rows with
    ``SELECT DISTINCT date_trunc(…)`` over every matching row: a full scan of a large
    table on each page view. Here :meth:`datetimes` lists every period between the
    first and the last matching row instead, from one ``MIN``/``MAX`` query that the
    ``created_at`` indexes answer directly. A period without rows may appear (its link
    shows an empty list).
    """

    def datetimes(  # type: ignore[override]  # returns a list, not a QuerySet
        self,
        field_name: str,
        kind: _DatetimesKind,
        order: _DatetimesOrder = "ASC",
        tzinfo: Any = None,
    ) -> list[datetime]:
        """Every ``kind`` period between the first and the last row, in local time."""
        if kind not in _KINDS:
            return list(super().datetimes(field_name, kind, order, tzinfo))
        bounds = self.order_by().aggregate(first=Min(field_name), last=Max(field_name))
        if bounds["first"] is None:
            return []
        tz = tzinfo or timezone.get_current_timezone()
        first = _truncate(timezone.localtime(bounds["first"], tz), kind)
        last = timezone.localtime(bounds["last"], tz)
        periods: list[datetime] = []
        current = first
        while current <= last and len(periods) < 400:
            periods.append(current)
            current = _step(current, kind)
        return periods if order == "ASC" else periods[::-1]
