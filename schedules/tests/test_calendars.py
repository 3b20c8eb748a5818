"""Exclusion calendars: days as text and as stored, .ics import, and which instants they hold."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from schedules.calendars import CalendarDays, DayRange, as_text, excluded, merge, parse_entries, parse_ics, parse_text

HOLIDAYS_ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//holidays//EN
BEGIN:VEVENT
UID:1@test
DTSTART;VALUE=DATE:20261225
DTEND;VALUE=DATE:20261226
SUMMARY:Christmas Day
END:VEVENT
BEGIN:VEVENT
UID:2@test
DTSTART;VALUE=DATE:20261228
DTEND;VALUE=DATE:20261229
SUMMARY:Boxing Day (substitute day)
END:VEVENT
BEGIN:VEVENT
UID:3@test
DTSTART;VALUE=DATE:20261221
DTEND;VALUE=DATE:20270105
SUMMARY:Change freeze
END:VEVENT
BEGIN:VEVENT
UID:4@test
DTSTART:20261231T220000Z
DTEND:20270101T020000Z
SUMMARY:New Year maintenance
END:VEVENT
BEGIN:VEVENT
UID:5@test
DTSTART;VALUE=DATE:20260101
RRULE:FREQ=YEARLY
SUMMARY:Every New Year's Day
END:VEVENT
END:VCALENDAR
"""


def test_text_lines_are_days_and_ranges() -> None:
    ranges = parse_text(
        "# UK\n2026-12-25 Christmas Day\n\n2026-12-21 to 2027-01-04 Change freeze\n2027-01-01..2027-01-01\n"
    )
    assert ranges == [
        DayRange(date(2026, 12, 21), date(2027, 1, 4), "Change freeze"),
        DayRange(date(2026, 12, 25), date(2026, 12, 25), "Christmas Day"),
        DayRange(date(2027, 1, 1), date(2027, 1, 1), ""),
    ]
    assert as_text(ranges).splitlines() == [
        "2026-12-21 to 2027-01-04 Change freeze",
        "2026-12-25 Christmas Day",
        "2027-01-01",
    ]
    assert parse_text(as_text(ranges)) == ranges


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("25/12/2026 Christmas", "Line 1: write a day (YYYY-MM-DD)"),
        ("2026-12-25\n2026-13-01", "Range 1: dates are written YYYY-MM-DD."),
        ("2026-12-25 to 2026-12-20", "Range 0: end (2026-12-20) is before start (2026-12-25)."),
    ],
)
def test_bad_lines_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_text(text)


def test_stored_entries_are_checked() -> None:
    assert parse_entries([{"start": "2026-12-25", "name": "Christmas"}]) == [
        DayRange(date(2026, 12, 25), date(2026, 12, 25), "Christmas")
    ]
    for bad in ("2026-12-25", [{"end": "2026-12-25"}], [{"start": "2026-12-25", "colour": "red"}]):
        with pytest.raises(ValueError):
            parse_entries(bad)


def test_an_ics_files_events_become_days_in_the_calendars_zone() -> None:
    read = parse_ics(HOLIDAYS_ICS, "Europe/London")
    assert [(entry.start.isoformat(), entry.end.isoformat(), entry.label) for entry in read.ranges] == [
        ("2026-12-21", "2027-01-04", "Change freeze"),  # DTEND of an all-day event is the day after
        ("2026-12-25", "2026-12-25", "Christmas Day"),
        ("2026-12-28", "2026-12-28", "Boxing Day (substitute day)"),
        ("2026-12-31", "2027-01-01", "New Year maintenance"),  # 22:00-02:00 UTC: two London days
    ]
    assert read.recurring_skipped == ["Every New Year's Day"]
    # Read in Tokyo (UTC+9) the timed event lies on 1 January only (07:00-11:00).
    tokyo = parse_ics(HOLIDAYS_ICS, "Asia/Tokyo").ranges
    assert ("2027-01-01", "2027-01-01") in [(entry.start.isoformat(), entry.end.isoformat()) for entry in tokyo]
    with pytest.raises(ValueError, match="Not an iCalendar file"):
        parse_ics("hello", "UTC")


def test_merging_an_import_again_adds_nothing() -> None:
    first = parse_ics(HOLIDAYS_ICS, "UTC").ranges
    assert merge(first, parse_ics(HOLIDAYS_ICS, "UTC").ranges) == first


def test_an_instant_is_excluded_by_its_local_day_in_the_calendars_zone() -> None:
    christmas = (DayRange(date(2026, 12, 25), date(2026, 12, 25), "Christmas Day"),)
    tokyo = CalendarDays("c1", "Japan", "Asia/Tokyo", christmas)
    london = CalendarDays("c2", "UK", "Europe/London", christmas)
    late_eve = datetime(2026, 12, 24, 20, 0, tzinfo=UTC)  # 05:00 on the 25th in Tokyo
    assert excluded([london], late_eve) is None
    found = excluded([london, tokyo], late_eve)
    assert found is not None and found.calendar.name == "Japan" and found.day == date(2026, 12, 25)
    assert found.message() == "Skipped: 2026-12-25 is in the exclusion calendar 'Japan' (Christmas Day)."
    assert excluded([london], datetime(2026, 12, 25, 23, 59, tzinfo=UTC)) is not None
    assert excluded([london], datetime(2026, 12, 26, 0, 0, tzinfo=UTC)) is None
