"""The geometry of the dashboard's server-rendered SVG chart (no JavaScript)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .queries import DayStats

__all__ = ["Bar", "Chart", "chart"]


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
