"""Exclusion calendars' days: their stored form, the text form the admin edits, .ics import, and matching.

A calendar holds entries ``{"start": "YYYY-MM-DD", "end": "YYYY-MM-DD", "name": "..."}`` (both
days included) read in the calendar's time zone: an occurrence is excluded when its instant falls
on one of those local days. Pure functions; the models, services and the worker call them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

MAX_ENTRIES = 2000
LABEL_CHARS = 200
_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\s*(?:\.\.|to)\s*(\d{4}-\d{2}-\d{2}))?(?:\s+(.*))?$")


@dataclass(frozen=True)
class DayRange:
    start: date
    end: date
    label: str = ""

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end

    def stored(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "name": self.label}

    def text(self) -> str:
        days = self.start.isoformat() if self.start == self.end else f"{self.start} to {self.end}"
        return f"{days} {self.label}".strip()


@dataclass(frozen=True)
class CalendarDays:
    """A calendar as the matching needs it: its name, zone and ranges."""

    calendar_id: str
    name: str
    timezone: str
    ranges: tuple[DayRange, ...]

    def range_on(self, moment: datetime) -> DayRange | None:
        """The range whose local day (in the calendar's zone) holds the instant, if any."""
        day = moment.astimezone(ZoneInfo(self.timezone)).date()
        return next((entry for entry in self.ranges if entry.covers(day)), None)


@dataclass(frozen=True)
class Exclusion:
    """Why one occurrence does not run: the calendar and the range it falls in."""

    calendar: CalendarDays
    entry: DayRange
    day: date

    def message(self) -> str:
        label = f" ({self.entry.label})" if self.entry.label else ""
        return f"Skipped: {self.day:%Y-%m-%d} is in the exclusion calendar '{self.calendar.name}'{label}."


def excluded(calendars: Sequence[CalendarDays], moment: datetime) -> Exclusion | None:
    """The first calendar whose days hold ``moment``, if any."""
    for calendar in calendars:
        entry = calendar.range_on(moment)
        if entry is not None:
            return Exclusion(calendar, entry, moment.astimezone(ZoneInfo(calendar.timezone)).date())
    return None


def parse_entries(raw: Any) -> list[DayRange]:
    """Stored or API entries as ranges; ValueError says which entry is wrong and why."""
    if not isinstance(raw, list):
        raise ValueError("A list of {start, end, name} entries.")
    if len(raw) > MAX_ENTRIES:
        raise ValueError(f"At most {MAX_ENTRIES} entries.")
    ranges = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not set(item) <= {"start", "end", "name"} or "start" not in item:
            raise ValueError(f"Entry {index}: an object with start (YYYY-MM-DD), optional end and name.")
        try:
            start = date.fromisoformat(str(item["start"]))
            end = date.fromisoformat(str(item.get("end") or item["start"]))
        except ValueError:
            raise ValueError(f"Entry {index}: dates are written YYYY-MM-DD.") from None
        if end < start:
            raise ValueError(f"Entry {index}: end ({end}) is before start ({start}).")
        label = str(item.get("name") or "")
        if len(label) > LABEL_CHARS:
            raise ValueError(f"Entry {index}: the name is longer than {LABEL_CHARS} characters.")
        ranges.append(DayRange(start, end, label))
    return sorted(ranges, key=lambda entry: (entry.start, entry.end))


def parse_text(text: str) -> list[DayRange]:
    """One range a line: ``2026-12-25 Christmas`` or ``2026-12-24 to 2027-01-01 Freeze``."""
    entries: list[dict[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(
                f"Line {number}: write a day (YYYY-MM-DD) or a range (YYYY-MM-DD to YYYY-MM-DD), then a label."
            )
        start, end, label = match.groups()
        entries.append({"start": start, "end": end or start, "name": (label or "").strip()})
    try:
        return parse_entries(entries)
    except ValueError as error:
        raise ValueError(str(error).replace("Entry ", "Range ")) from None


def as_text(ranges: Iterable[DayRange]) -> str:
    return "\n".join(entry.text() for entry in ranges)


@dataclass(frozen=True)
class IcsImport:
    ranges: list[DayRange]
    recurring_skipped: list[str]  # summaries of events with RRULE, which are not expanded


def parse_ics(data: bytes | str, timezone: str) -> IcsImport:
    """The days of an iCalendar file's events (all-day or timed, read in ``timezone``).

    An all-day event's DTEND is the day after its last (RFC 5545); a timed event covers the
    local days from its start to its end. Recurring events (RRULE) are reported, not expanded:
    holiday feeds list each year's days as events of their own.
    """
    from icalendar import Calendar  # imported here: only an import needs it

    try:
        calendar = Calendar.from_ical(data)
    except (ValueError, IndexError, KeyError) as error:
        raise ValueError(f"Not an iCalendar file: {error}") from None
    tz = ZoneInfo(timezone)
    ranges, recurring = [], []
    for event in calendar.walk("VEVENT"):
        summary = str(event.get("SUMMARY", "")).strip()[:LABEL_CHARS]
        if event.get("RRULE") is not None:
            recurring.append(summary or "(untitled)")
            continue
        if event.get("DTSTART") is None:
            continue
        start = event.decoded("DTSTART")
        end = event.decoded("DTEND") if event.get("DTEND") is not None else None
        if isinstance(start, datetime):
            first = (start if start.tzinfo else start.replace(tzinfo=tz)).astimezone(tz)
            last = (end if end is not None and end.tzinfo else (end or start).replace(tzinfo=tz)).astimezone(tz)
            if last > first and last.time() == datetime.min.time():
                last -= timedelta(microseconds=1)  # ends at midnight: the day before is its last
            ranges.append(DayRange(first.date(), max(first.date(), last.date()), summary))
        else:
            last_day = (end - timedelta(days=1)) if isinstance(end, date) and end > start else start
            ranges.append(DayRange(start, last_day, summary))
    if len(ranges) > MAX_ENTRIES:
        raise ValueError(f"The file has {len(ranges)} events; a calendar holds at most {MAX_ENTRIES}.")
    return IcsImport(sorted(ranges, key=lambda entry: (entry.start, entry.end)), recurring)


def merge(existing: Sequence[DayRange], added: Sequence[DayRange]) -> list[DayRange]:
    """Both lists' ranges, without exact repeats (importing the same file twice adds nothing)."""
    seen: set[DayRange] = set()
    kept = []
    for entry in [*existing, *added]:
        if entry not in seen:
            seen.add(entry)
            kept.append(entry)
    return sorted(kept, key=lambda e: (e.start, e.end))
