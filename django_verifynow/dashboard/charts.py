"""The geometry of the dashboard's server-rendered SVG chart (no JavaScript).

The chart is three inline SVGs side by side (``dashboard.html``): the sends axis, the
plot, the conversion axis. None has a ``viewBox``, so nothing is scaled: text keeps its
size in CSS pixels at any screen width (a scaled 760-unit drawing shrinks 10 px labels
to 4 px on a phone). The plot stretches to the width it is given: horizontal positions
are percentages of its width, vertical ones pixels of its fixed height. Both axes start
at zero, the bars of one day stand side by side (sends, then verified: a day where all
sends were verified shows two equal bars, not one), and every label is an exact
number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

from django.utils import formats
from django.utils.translation import gettext as _

from .queries import DayStats

__all__ = [
    "Bar",
    "Chart",
    "Marker",
    "Segment",
    "Tick",
    "XLabel",
    "chart",
    "nice_ticks",
]

#: Height of every SVG of the chart, and where the plot sits in it (CSS px).
HEIGHT = 240
PLOT_TOP = 12
PLOT_BOTTOM = 206
#: Baseline of the day labels under the plot.
X_LABEL_Y = 226
#: Longest series drawn one bar per day; longer windows are drawn per week (365 daily
#: pairs of bars would be a fraction of a pixel each). The table stays per day.
MAX_DAILY_BARS = 62
#: Labels under the plot at most: five fit under a phone-wide plot without touching.
MAX_X_LABELS = 6
#: A day with sends is at least this tall (px), so "1" is not drawn as "0" next to a
#: busy day; the exact figure is in the bar's tooltip and the table.
MIN_BAR_HEIGHT = 1.0
#: Font size of the tick labels (dashboard.css) and a generous width per character,
#: to size the axis columns for their longest label.
FONT_PX = 11
CHAR_PX = 7.0


@dataclass(frozen=True)
class Bar:
    """One rectangle of the plot: ``x`` and ``width`` in percent of the plot's width,
    ``y`` and ``height`` in pixels."""

    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Marker:
    """One conversion value: a dot at (``x`` % of the width, ``y`` px). Drawn for
    every period with sends, so a single day of data is visible (a line needs two
    points)."""

    x: float
    y: float
    title: str


@dataclass(frozen=True)
class Segment:
    """A piece of the conversion line between two consecutive periods with sends (no
    line across a period without sends: there is no conversion to join)."""

    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Tick:
    """A gridline at ``y`` px and its exact, localised label."""

    y: float
    value: float
    label: str


@dataclass(frozen=True)
class XLabel:
    """A period's label under the plot, at ``x`` % of the width (its centre).

    Every other label is ``minor`` (counting from the newest, which never is): a
    phone-wide screen hides those (``dashboard.css``), so a long month abbreviation
    ("sept. 23") never runs into its neighbour.
    """

    x: float
    label: str
    minor: bool = False


@dataclass(frozen=True)
class Chart:
    """Geometry of the server-rendered chart: side-by-side bars for sends and
    verifications per period, dots and a line for conversion (right axis)."""

    height: int
    plot_top: int
    plot_bottom: int
    #: Widths (px) of the left (sends) and right (conversion) axis columns, sized for
    #: their longest label.
    axis_width: int
    conversion_axis_width: int
    sends: list[Bar]
    verified: list[Bar]
    conversion: list[Marker]
    conversion_segments: list[Segment]
    y_ticks: list[Tick] = field(default_factory=list)
    conversion_ticks: list[Tick] = field(default_factory=list)
    x_labels: list[XLabel] = field(default_factory=list)
    #: Days per bar: 1 (one pair of bars per day) or 7 (per week, long windows).
    period_days: int = 1
    x_label_y: int = X_LABEL_Y

    @property
    def per_week(self) -> bool:
        """True when a bar stands for a week."""
        return self.period_days > 1


def nice_ticks(maximum: int, *, count: int = 4) -> list[int]:
    """Evenly spaced integer ticks from 0 to at least ``maximum``: at most ``count``
    steps of 1, 2 or 5 × 10ⁿ.

    Integers throughout, so the labels are exact and distinct at any scale: 1 send
    gives ``[0, 1]``, 7 gives ``[0, 2, 4, 6, 8]``, a million ``[0, 500000, 1000000]``
    (rounding a fractional step after scaling is what once printed 0, 0, 0, 1, 1).
    """
    maximum = max(int(maximum), 1)
    magnitude = 1
    while True:
        step = next(
            (m * magnitude for m in (1, 2, 5) if m * magnitude * count >= maximum), 0
        )
        if step:
            break
        magnitude *= 10
    top = -(-maximum // step) * step
    return list(range(0, top + 1, step))


@dataclass(frozen=True)
class _Period:
    first: date
    last: date
    sends: int
    verified: int

    @property
    def conversion(self) -> float | None:
        return self.verified / self.sends if self.sends else None


def _periods(days: list[DayStats], period_days: int) -> list[_Period]:
    """Consecutive groups of ``period_days`` days, the last ending with the last day
    (so the current week is whole up to today and only the oldest group may be
    short)."""
    periods = []
    end = len(days)
    while end > 0:
        start = max(end - period_days, 0)
        group = days[start:end]
        periods.append(
            _Period(
                first=group[0].day,
                last=group[-1].day,
                sends=sum(d.sends for d in group),
                verified=sum(d.verified for d in group),
            )
        )
        end = start
    return periods[::-1]


def _number(value: int) -> str:
    # Exact and grouped in the active language ("1,000,000", "1 000 000").
    return formats.number_format(value, force_grouping=True)


def _percent(value: float) -> str:
    return f"{_number(round(value * 100))} %"


def _period_name(p: _Period) -> str:
    if p.first == p.last:
        return f"{p.first:%Y-%m-%d}"
    return f"{p.first:%Y-%m-%d} – {p.last:%Y-%m-%d}"


def _title(p: _Period) -> str:
    # Whole sentences for the translators, with and without a conversion.
    values = {
        "period": _period_name(p),
        "sends": _number(p.sends),
        "verified": _number(p.verified),
    }
    if p.conversion is None:
        return _("%(period)s: %(sends)s sent, %(verified)s verified") % values
    return _(
        "%(period)s: %(sends)s sent, %(verified)s verified, %(conversion)s converted"
    ) % {**values, "conversion": _percent(p.conversion)}


def _axis_width(labels: list[str]) -> int:
    return math.ceil(max((len(s) for s in labels), default=1) * CHAR_PX) + 10


def chart(days: list[DayStats], *, period_days: int | None = None) -> Chart:
    """Lay out ``days`` (from :func:`daily_stats`) as the dashboard's chart.

    One pair of bars per day up to :data:`MAX_DAILY_BARS` days, per week beyond (or
    per ``period_days`` when given).
    """
    if period_days is None:
        period_days = 1 if len(days) <= MAX_DAILY_BARS else 7
    periods = _periods(days, max(period_days, 1))
    n = max(len(periods), 1)
    plot_h = PLOT_BOTTOM - PLOT_TOP

    ticks = nice_ticks(max((max(p.sends, p.verified) for p in periods), default=0))
    top_value = ticks[-1]

    def height_of(value: int) -> float:
        if not value:
            return 0.0
        return round(max(plot_h * value / top_value, MIN_BAR_HEIGHT), 2)

    # The conversion axis is 0-100 %, stretched to the next 50 % when verifications
    # outnumber sends (a reused code verified after its SMS's period): the dot stays
    # inside the plot and the axis says how high it is, instead of clipping it.
    highest = max((p.conversion or 0.0 for p in periods), default=0.0)
    conversion_top = max(1.0, math.ceil(highest * 2) / 2)
    conversion_values = [k / 2 for k in range(int(conversion_top * 2) + 1)]

    def y_of_conversion(value: float) -> float:
        return round(PLOT_BOTTOM - plot_h * value / conversion_top, 2)

    slot = 100 / n
    bar_w = round(slot * 0.38, 3)
    sends: list[Bar] = []
    verified: list[Bar] = []
    markers: list[Marker] = []
    segments: list[Segment] = []
    previous: Marker | None = None
    for i, p in enumerate(periods):
        title = _title(p)
        left = i * slot
        h = height_of(p.sends)
        sends.append(
            Bar(round(left + slot * 0.1, 3), round(PLOT_BOTTOM - h, 2), bar_w, h, title)
        )
        h = height_of(p.verified)
        verified.append(
            Bar(
                round(left + slot * 0.52, 3), round(PLOT_BOTTOM - h, 2), bar_w, h, title
            )
        )
        if p.conversion is None:
            previous = None
            continue
        marker = Marker(round(left + slot / 2, 3), y_of_conversion(p.conversion), title)
        if previous is not None:
            segments.append(Segment(previous.x, previous.y, marker.x, marker.y))
        markers.append(marker)
        previous = marker

    # Labels from the newest period back, evenly spaced: the newest (today, or the
    # week ending today) is always labelled, by its first day.
    every = max(math.ceil(n / MAX_X_LABELS), 1)
    # The language's own day-and-month order with the month abbreviated ("Mar 15",
    # "15 mar"): short, and unambiguous about the month.
    day_format = formats.get_format("MONTH_DAY_FORMAT").replace("F", "M")
    x_labels = [
        XLabel(
            round(i * slot + slot / 2, 3),
            formats.date_format(periods[i].first, day_format),
            minor=k % 2 == 1,
        )
        for k, i in enumerate(range(len(periods) - 1, -1, -every))
    ][::-1]

    y_ticks = [
        Tick(round(PLOT_BOTTOM - plot_h * v / top_value, 2), v, _number(v))
        for v in ticks
    ]
    conversion_ticks = [
        Tick(y_of_conversion(v), v, _percent(v)) for v in conversion_values
    ]
    return Chart(
        height=HEIGHT,
        plot_top=PLOT_TOP,
        plot_bottom=PLOT_BOTTOM,
        axis_width=_axis_width([t.label for t in y_ticks]),
        conversion_axis_width=_axis_width([t.label for t in conversion_ticks]),
        sends=sends,
        verified=verified,
        conversion=markers,
        conversion_segments=segments,
        y_ticks=y_ticks,
        conversion_ticks=conversion_ticks,
        x_labels=x_labels,
        period_days=max(period_days, 1),
    )
