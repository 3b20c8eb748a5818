"""Reads of schedules and exclusion calendars: who sees which (API and admin alike), what the worker looks up."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bson import ObjectId
from bson.errors import InvalidId
from django.db.models import QuerySet

from jobs.models import Job
from jobs.selectors import AnyUser, job_ids_visible_to
from schedules.calendars import CalendarDays
from schedules.models import Backfill, ExclusionCalendar, Schedule


def schedules_visible_to(user: AnyUser) -> QuerySet[Schedule]:
    """The schedules of the jobs ``user`` may see (by job id: no $lookup over all schedules)."""
    if getattr(user, "is_superuser", False):
        return Schedule.objects.all()
    return Schedule.objects.filter(job__in=job_ids_visible_to(user))


def schedule_count_of_owner(owner: AnyUser) -> int:
    """How many schedules ``owner``'s jobs have (by job id, as above)."""
    job_ids = list(Job.objects.filter(owner=owner).values_list("pk", flat=True))
    return Schedule.objects.filter(job__in=job_ids).count() if job_ids else 0


def schedule_by_id(schedule_id: str | ObjectId) -> Schedule | None:
    """The schedule with this id; None when there is none or the id is malformed."""
    try:
        return Schedule.objects.filter(pk=ObjectId(schedule_id)).first()
    except InvalidId:
        return None


def overlap_policy(schedule_id: str | ObjectId) -> str | None:
    """The schedule's overlap policy; None when the schedule is gone or the id is malformed."""
    try:
        return Schedule.objects.filter(pk=ObjectId(schedule_id)).values_list("overlap_policy", flat=True).first()
    except InvalidId:
        return None


def calendars_visible_to(user: AnyUser) -> QuerySet[ExclusionCalendar]:
    """The exclusion calendars ``user`` owns (a superuser: all, an anonymous user: none)."""
    if not getattr(user, "is_authenticated", False):
        return ExclusionCalendar.objects.none()
    if getattr(user, "is_superuser", False):
        return ExclusionCalendar.objects.all()
    return ExclusionCalendar.objects.filter(owner=user)


def calendars_by_ids(ids: Sequence[str]) -> list[ExclusionCalendar]:
    """The calendars with these ids, in the order given; malformed or missing ids are left out."""
    wanted = [ObjectId(value) for value in ids if ObjectId.is_valid(value)]
    found = ExclusionCalendar.objects.in_bulk(wanted) if wanted else {}
    return [found[key] for key in wanted if key in found]


def calendar_days(ids: Sequence[str]) -> list[CalendarDays]:
    """The days of the calendars with these ids (what previews and the worker match against)."""
    return [calendar.as_days() for calendar in calendars_by_ids(ids)]


def schedule_exclusions(schedule_id: str | ObjectId) -> list[CalendarDays]:
    """The days of the calendars a schedule names (none when it is gone or names none)."""
    try:
        ids = Schedule.objects.filter(pk=ObjectId(schedule_id)).values_list("exclusion_calendars", flat=True).first()
    except InvalidId:
        return []
    return calendar_days(ids) if ids else []


def worker_lookups(schedule_ids: Iterable[str]) -> dict[str, tuple[str, list[CalendarDays]]]:
    """What a worker looks up of each of many schedules, in two queries: its overlap policy and
    the days of the calendars it names (as ``overlap_policy`` and ``schedule_exclusions``).
    Schedules that are gone, and malformed ids, are left out."""
    ids = sorted({ObjectId(value) for value in schedule_ids if ObjectId.is_valid(value)})
    if not ids:
        return {}
    rows = list(Schedule.objects.filter(pk__in=ids).values_list("pk", "overlap_policy", "exclusion_calendars"))
    named = sorted({ident for _, _, calendars in rows for ident in calendars or []})
    days = {str(calendar.pk): calendar.as_days() for calendar in calendars_by_ids(named)} if named else {}
    return {
        str(pk): (policy, [days[ident] for ident in calendars or [] if ident in days]) for pk, policy, calendars in rows
    }


def schedules_naming_calendar(calendar: ExclusionCalendar) -> list[Schedule]:
    """The schedules (of its owner's jobs) that name ``calendar``."""
    job_ids = list(Job.objects.filter(owner_id=calendar.owner_id).values_list("pk", flat=True))
    mine = Schedule.objects.filter(job__in=job_ids) if job_ids else Schedule.objects.none()
    return [schedule for schedule in mine if str(calendar.pk) in (schedule.exclusion_calendars or [])]


def calendar_name_taken(owner_id: object, name: str, *, excluding: object = None) -> bool:
    """Whether the owner has a calendar called ``name`` other than ``excluding`` (a calendar's pk)."""
    found = ExclusionCalendar.objects.filter(owner_id=owner_id, name=name)
    if excluding is not None:
        found = found.exclude(pk=excluding)
    return found.exists()


def backfills_visible_to(user: AnyUser) -> QuerySet[Backfill]:
    """The backfills of the schedules ``user`` may see."""
    if getattr(user, "is_superuser", False):
        return Backfill.objects.all()
    return Backfill.objects.filter(schedule__in=list(schedules_visible_to(user).values_list("pk", flat=True)))


def backfill_by_id(backfill_id: str | ObjectId) -> Backfill | None:
    """The backfill with this id (operators' commands see every one); None when there is none."""
    try:
        return Backfill.objects.filter(pk=ObjectId(backfill_id)).first()
    except InvalidId:
        return None
