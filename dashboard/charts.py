"""The dashboard's charts, drawn on the server as inline SVG: no script library, no CDN.

Colours come from CSS classes (dashboard.css), so the admin's light and dark themes both
apply. Every chart is described in words (its ``aria-label``) and its figures are in a table
next to it, for people who cannot see it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# The runs chart: one unit of width per minute over 24 hours, a margin for the y labels.
LEFT, TOP, PLOT_HEIGHT, BOTTOM = 64, 12, 200, 34
MINUTES = 24 * 60


def nice_ceiling(value: float) -> int:
    """The smallest of 1, 2, 5 times a power of ten that is at least ``value`` (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return int(step * power)
    return int(10 * power)


def clock_text(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%H:%M")


def runs_chart(first_minute: datetime, per_minute: list[dict[str, int]], statuses: list[str], label: str) -> SafeString:
    """Stacked bars of attempts per minute by status (``statuses`` bottom first), one unit a minute."""
    minutes = len(per_minute)
    width, height = LEFT + minutes + 8, TOP + PLOT_HEIGHT + BOTTOM
    peak = max((sum(minute.values()) for minute in per_minute), default=0)
    top = nice_ceiling(peak)
    scale = PLOT_HEIGHT / top
    base = TOP + PLOT_HEIGHT
    parts = [
        f'<svg class="dash-chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
        'preserveAspectRatio="xMinYMin meet" focusable="false">'
    ]
    # Grid lines and the y axis's figures (runs per minute).
    for step in range(5):
        value = top * step / 4
        y = base - value * scale
        parts.append(f'<line class="dash-grid" x1="{LEFT}" x2="{LEFT + minutes}" y1="{y:.1f}" y2="{y:.1f}"/>')
        text = f"{value:g}" if value < 10 else f"{value:,.0f}"
        parts.append(f'<text class="dash-axis" x="{LEFT - 6}" y="{y + 5:.1f}" text-anchor="end">{text}</text>')
    # One path per status: a 1-unit rectangle per minute, stacked on the statuses below it.
    stacked = [0.0] * minutes
    for status in statuses:
        commands = []
        for x, minute in enumerate(per_minute):
            count = minute.get(status, 0)
            if not count:
                continue
            h = count * scale
            y = base - stacked[x] - h
            commands.append(f"M{LEFT + x} {y:.1f}h1v{h:.1f}h-1z")
            stacked[x] += h
        if commands:
            parts.append(f'<path class="dash-fill dash-s-{escape(status)}" d="{"".join(commands)}"/>')
    # The time axis: a tick and a label every 3 hours, on the hour (local time).
    end = first_minute + timedelta(minutes=minutes)
    tick = timezone.localtime(first_minute).replace(minute=0, second=0, microsecond=0)
    while tick < end:
        if tick >= first_minute and timezone.localtime(tick).hour % 3 == 0:
            at = LEFT + (tick - first_minute).total_seconds() / 60
            parts.append(f'<line class="dash-grid" x1="{at:.1f}" x2="{at:.1f}" y1="{base}" y2="{base + 6}"/>')
            parts.append(
                f'<text class="dash-axis" x="{at:.1f}" y="{base + 26}" text-anchor="middle">{clock_text(tick)}</text>'
            )
        tick += timedelta(hours=1)
    parts.append(f'<line class="dash-baseline" x1="{LEFT}" x2="{LEFT + minutes}" y1="{base}" y2="{base}"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (every text in it is escaped or a number)


# The timeline strips: one unit a minute over the horizon, rows drawn one per table row.
STRIP_HEIGHT = 18


def timeline_hours(start: datetime, hours: int) -> list[tuple[float, str]]:
    """The hours marked above the timeline's strips (local time, every 3 hours): each one's
    position in percent of the horizon, and its label. HTML places them, so they stay legible
    however wide the strips are drawn."""
    marks = []
    first = timezone.localtime(start).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    for hour in range(hours):
        moment = first + timedelta(hours=hour)
        offset = (moment - start).total_seconds() / (hours * 3600)
        if offset >= 1:
            break
        if moment.hour % 3 == 0:
            marks.append((round(offset * 100, 2), clock_text(moment)))
    return marks


def timeline_strip(
    start: datetime, hours: int, times: list[datetime], more: bool, marks: Sequence[float] = ()
) -> SafeString:
    """One schedule's occurrences as ticks over the horizon; with ``more``, the stretch after the
    last tick drawn is a band (too many occurrences to draw one by one). ``marks``: where the
    hour labels are (percent), drawn as faint lines."""
    width = hours * 60
    parts = [
        f'<svg class="dash-strip" viewBox="0 0 {width} {STRIP_HEIGHT}" preserveAspectRatio="none" '
        'aria-hidden="true" focusable="false">'
    ]
    parts.append(f'<rect class="dash-track" x="0" y="0" width="{width}" height="{STRIP_HEIGHT}"/>')
    for percent in marks:
        x = percent * width / 100
        parts.append(f'<line class="dash-grid" x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{STRIP_HEIGHT}"/>')
    ticks = []
    last_x = 0.0
    for moment in times:
        x = min(max((moment - start).total_seconds() / 60, 0), width - 1)
        ticks.append(f"M{x:.1f} 2v{STRIP_HEIGHT - 4}")
        last_x = x
    if ticks:
        parts.append(f'<path class="dash-tick" d="{"".join(ticks)}"/>')
    if more and last_x < width:
        parts.append(f'<rect class="dash-band" x="{last_x:.1f}" y="4" width="{width - last_x:.1f}" height="10"/>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 (numbers only)
