"""Figures for the verification dashboard, computed in the database.

Plain functions over the ORM: every figure is an aggregate query (``GROUP BY`` with
conditional ``COUNT``), never a Python loop over rows, so the cost does not depend on
how many attempts the table holds beyond the rows inside the window. They return frozen
dataclasses that the admin view renders, and that operators can call from a shell or a
monitoring job.

Definitions used throughout:

* a **send** is an attempt whose code went out or may have gone out: a new code was
  sent (``code_sent``; a 506 reuse of the code already sent costs no SMS) and the
  status is not ``failed`` (the vendor refused, nothing was sent);
* a **verification** is an attempt in status ``verified``, counted on the day of its
  send, whether it sent its own SMS or reused one;
* **conversion** is verifications ÷ sends (``None`` when there were no sends);
* statuses are *effective* ones: a ``pending`` attempt past its expiry is ``expired``.

Sends refused by policy (limits, cooldown, country rules, daily cap) never create a row;
they are counted per day and reason in the cache by :func:`record_blocked`, a receiver
of :data:`~django_verifynow.signals.verification_blocked`.

The modules: :mod:`.queries` (the window figures), :mod:`.credit`
(:func:`out_of_credit_since`), :mod:`.blocked` (policy refusals), :mod:`.pumping` (the
SMS-pumping watch), :mod:`.charts` (the SVG geometry) and :mod:`.views` (the admin
page). Everything is importable from here.

Days the purge has already deleted are counted from the
:class:`~django_verifynow.models.DailyAttemptStat` rows it wrote (see
:mod:`.queries`), so a 90- or 365-day window is complete.
"""

from __future__ import annotations

from .blocked import (
    BLOCKED_DAYS,
    REASON_LABELS,
    BlockedCount,
    blocked_sends,
    reason_label,
    record_blocked,
)
from .charts import Bar, Chart, Marker, Segment, Tick, XLabel, chart, nice_ticks
from .credit import CREDIT_WINDOW, CreditOutage, out_of_credit_since
from .pumping import (
    PUMPING_BASELINE,
    PUMPING_MIN_SENDS,
    PUMPING_RISE,
    PUMPING_THRESHOLD,
    PUMPING_WINDOWS,
    PumpingSignal,
    pumping_signals,
)
from .queries import (
    DEFAULT_DAYS,
    MAX_DAYS,
    CountryStats,
    DayStats,
    Overview,
    Summary,
    VendorError,
    daily_stats,
    overview,
    summary,
    top_countries,
    vendor_errors,
)
from .views import WINDOW_CHOICES, dashboard_context, dashboard_view

__all__ = [
    "BLOCKED_DAYS",
    "CREDIT_WINDOW",
    "DEFAULT_DAYS",
    "MAX_DAYS",
    "PUMPING_BASELINE",
    "PUMPING_MIN_SENDS",
    "PUMPING_RISE",
    "PUMPING_THRESHOLD",
    "PUMPING_WINDOWS",
    "REASON_LABELS",
    "WINDOW_CHOICES",
    "Bar",
    "BlockedCount",
    "Chart",
    "CountryStats",
    "CreditOutage",
    "DayStats",
    "Marker",
    "Overview",
    "PumpingSignal",
    "Segment",
    "Summary",
    "Tick",
    "VendorError",
    "XLabel",
    "blocked_sends",
    "chart",
    "daily_stats",
    "dashboard_context",
    "dashboard_view",
    "nice_ticks",
    "out_of_credit_since",
    "overview",
    "pumping_signals",
    "reason_label",
    "record_blocked",
    "summary",
    "top_countries",
    "vendor_errors",
]
