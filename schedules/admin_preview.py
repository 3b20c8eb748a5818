"""A schedule's preview in the admin: its description and next occurrences, with daylight saving
moves and repeats, days without the event and exclusion calendars' days marked (HTML and rows).

The saved page renders these; the live preview (ScheduleAdmin.preview_view, fed by
schedules/static/schedules/preview.js) answers them as JSON while the form is edited.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from schedules import selectors, timeline
from schedules.kinds import zone
from schedules.models import Schedule

PREVIEW_COUNT = 10


def live_description(schedule: Schedule) -> SafeString:
    """The schedule in words, in an element the live preview rewrites as the fields change."""
    return format_html(
        '<span class="schedule-description" aria-live="polite">{}</span>',
        schedule.describe() if schedule.pk else "Fill in the fields to see it in words.",
    )


def live_preview(schedule: Schedule) -> SafeString:
    """The next occurrences (a saved schedule's now, from the server), in an element the live
    preview (schedules/static/schedules/preview.js) refreshes from the fields being edited."""
    shown = render_preview(schedule) if schedule.pk else format_html("<p>{}</p>", "Fill in the fields to see them.")
    return format_html(
        '<div class="schedule-live" data-preview-url="{}" data-schedule="{}">'
        '<div class="schedule-upcoming" aria-live="polite">{}</div></div>',
        reverse("admin:schedules_schedule_preview"),
        str(schedule.pk or ""),
        shown,
    )


def preview_rows(schedule: Schedule, after: Any = None, count: int = PREVIEW_COUNT) -> list[dict[str, Any]]:
    """The next occurrences in the schedule's time zone, and what it skips among them, in order.

    Each row has its time (``at``, ISO 8601 with offset; None for a skipped one), ``shown``, the
    wall time a daylight saving gap moved it from (``moved_from``), the pass of a wall time a
    fall-back repeats (``repeated_pass``), and for a skipped one ``skipped``: why, in words.
    Raises ValueError (or OverflowError) for a schedule that cannot be previewed."""
    tz = zone(schedule.timezone or "UTC")
    days = selectors.calendar_days(schedule.exclusion_calendars or [])
    found, skipped = timeline.preview_with_skipped(schedule, after or timezone.now(), count, days)
    # (local wall time, row): a skipped day falls in place among the occurrences; a stable sort
    # keeps both passes of a repeated wall time in order.
    rows: list[tuple[datetime, dict[str, Any]]] = []
    for occurrence in found:
        local = occurrence.at.astimezone(tz)
        moved = occurrence.moved_from
        row = {
            "at": local.isoformat(),
            "shown": local.strftime("%a %Y-%m-%d %H:%M:%S %Z"),
            "moved_from": f"{moved:%H:%M}" if moved is not None else None,
            "repeated_pass": occurrence.repeated_pass,
            "skipped": None,
        }
        rows.append((local.replace(tzinfo=None), row))
    for item in skipped:
        wall = item.wall_time or datetime.combine(item.day, time())
        if item.at is not None:
            wall = item.at.astimezone(tz).replace(tzinfo=None)
            shown = item.at.astimezone(tz).strftime("%a %Y-%m-%d %H:%M:%S %Z")
        else:
            shown = f"{wall:%a %Y-%m-%d %H:%M:%S}" if item.wall_time else f"{item.day:%a %Y-%m-%d}"
        row = {"at": None, "shown": shown, "moved_from": None, "repeated_pass": None, "skipped": item.message}
        rows.append((wall, row))
    rows.sort(key=lambda pair: pair[0])
    return [row for _, row in rows]


def _row_note(row: dict[str, Any]) -> str:
    if row["skipped"]:
        return (
            f" ({row['skipped'][0].lower()}{row['skipped'][1:]})"
            if row["skipped"].startswith("Skipped")
            else (f" (skipped: {row['skipped']})")
        )
    if row["moved_from"]:
        return f" (moved from {row['moved_from']} by a daylight saving gap)"
    if row["repeated_pass"]:
        which = "first" if row["repeated_pass"] == 1 else "second"
        return f" ({which} pass of a wall time the clocks go back over)"
    return ""


def render_preview(schedule: Schedule, after: Any = None, count: int = PREVIEW_COUNT) -> SafeString:
    """The next occurrences as an HTML list, in the schedule's time zone, DST moves, repeats and
    skipped days marked."""
    try:
        rows = preview_rows(schedule, after, count)
    except (ValueError, OverflowError, AssertionError) as error:
        return format_html("<p>No preview: {}</p>", error)
    if not rows:
        return format_html("<p>{}</p>", "No further occurrences.")
    items = [
        format_html("<li><s>{}</s><strong>{}</strong></li>", row["shown"], _row_note(row))
        if row["at"] is None
        else format_html(
            '<li><time datetime="{}">{}</time><strong>{}</strong></li>', row["at"], row["shown"], _row_note(row)
        )
        for row in rows
    ]
    return format_html(
        '<p>In {}{}:</p><ol class="schedule-preview">{}</ol>',
        schedule.timezone or "UTC",
        " (paused)" if schedule.paused else "",
        format_html_join("", "{}", ((item,) for item in items)),
    )


def fix_these(errors: dict[str, list[str]]) -> SafeString:
    """What the live preview shows while the fields do not make a schedule yet."""
    items = (
        (name.replace("_", " ").capitalize() if name != "__all__" else "Schedule", " ".join(messages))
        for name, messages in errors.items()
    )
    return format_html(
        '<p>No preview until these are fixed:</p><ul class="schedule-preview-errors">{}</ul>',
        format_html_join("", "<li>{}: {}</li>", items),
    )
