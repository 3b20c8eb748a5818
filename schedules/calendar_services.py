"""The one write path for exclusion calendars: validate, save, import .ics, and tell workers and
the schedules that name a calendar when its days change."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from schedules import calendars, selectors
from schedules.due_index import get_due_index
from schedules.models import ExclusionCalendar

EDITABLE_FIELDS = ("name", "description", "timezone", "days")


def _apply(calendar: ExclusionCalendar, fields: dict[str, Any]) -> None:
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({name: "Unknown or read-only field." for name in unknown})
    for name, value in fields.items():
        setattr(calendar, name, value)


def _save(calendar: ExclusionCalendar) -> ExclusionCalendar:
    if selectors.calendar_name_taken(calendar.owner_id, calendar.name, excluding=calendar.pk):
        raise ValidationError({"name": f"You already have a calendar called {calendar.name!r}."})
    calendar.full_clean(exclude={"owner"}, validate_unique=False, validate_constraints=False)
    calendar.save()
    _tell_schedules(calendar)
    return calendar


def calendar_create(*, owner: User, **fields: Any) -> ExclusionCalendar:
    calendar = ExclusionCalendar(owner=owner)
    _apply(calendar, fields)
    return _save(calendar)


def calendar_update(calendar: ExclusionCalendar, **fields: Any) -> ExclusionCalendar:
    """Change a calendar; the schedules naming it skip its new days from the next occurrence on."""
    _apply(calendar, fields)
    return _save(calendar)


def calendar_delete(calendar: ExclusionCalendar) -> None:
    """Delete a calendar no schedule names (a 400 lists how many still do)."""
    naming = selectors.schedules_naming_calendar(calendar)
    if naming:
        raise ValidationError(
            f"{len(naming)} schedule{'s' if len(naming) != 1 else ''} still name{'s' if len(naming) == 1 else ''} "
            f"this calendar; take it off them first."
        )
    calendar.delete()


def calendar_import_ics(
    *,
    owner: User,
    data: bytes | str,
    name: str = "",
    timezone: str = "UTC",
    calendar: ExclusionCalendar | None = None,
) -> tuple[ExclusionCalendar, calendars.IcsImport]:
    """Add an iCalendar file's event days to ``calendar``, or to a new one called ``name``.

    Days already there are not added twice, so importing the same file again changes nothing.
    Returns the calendar and what was read (recurring events are named, not expanded).
    """
    zone_name = calendar.timezone if calendar is not None else timezone
    try:
        read = calendars.parse_ics(data, zone_name or "UTC")
    except ValueError as error:
        raise ValidationError({"file": str(error)}) from None
    if calendar is None:
        saved = calendar_create(
            owner=owner,
            name=name,
            timezone=zone_name,
            days=[entry.stored() for entry in read.ranges],
        )
        return saved, read
    merged = calendars.merge(calendar.ranges(), read.ranges)
    return calendar_update(calendar, days=[entry.stored() for entry in merged]), read


def check_schedule_calendars(ids: Any, owner_id: Any) -> list[str]:
    """The calendar ids a schedule of ``owner_id``'s job names, checked: a list of the owner's
    calendars' ids, each once. Raises ValidationError on exclusion_calendars otherwise."""
    if ids in (None, ""):
        return []
    if not isinstance(ids, list) or not all(isinstance(value, str) for value in ids):
        raise ValidationError({"exclusion_calendars": "A list of calendar ids."})
    unique = list(dict.fromkeys(ids))
    found = {str(calendar.pk): calendar for calendar in selectors.calendars_by_ids(unique)}
    unknown = [value for value in unique if value not in found or found[value].owner_id != owner_id]
    if unknown:
        raise ValidationError({"exclusion_calendars": f"No calendar of yours has the id(s) {', '.join(unknown)}."})
    return unique


def _tell_schedules(calendar: ExclusionCalendar) -> None:
    """Have workers read the days again for the schedules naming the calendar (they cache them)."""
    index = get_due_index()
    for schedule in selectors.schedules_naming_calendar(calendar):
        index.client.publish(index.keyspace.changes_channel, str(schedule.pk))
