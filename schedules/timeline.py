"""A schedule's occurrences with its bounds applied: start, end, maximum runs, jitter.

Pure functions of a schedule and a time; the engine, the API preview and the admin all
use them, so they can never disagree about when something fires.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from itertools import islice
from typing import Protocol

from jobscheduler.epoch import to_epoch_ms
from schedules.calendars import CalendarDays
from schedules.calendars import excluded as excluded_by
from schedules.kinds import Occurrence, ScheduleFields, Skipped, get_kind

MAX_PREVIEW = 1000


class TimelineFields(ScheduleFields, Protocol):
    """What a timeline reads of a schedule: its kind's fields and its bounds. A saved or
    unsaved ``Schedule`` provides them, and so does the scheduler's ``MirroredSchedule``."""

    kind: str
    end_at: datetime | None
    max_runs: int | None
    run_count: int


def fire_key(schedule_id: object, nominal: datetime) -> str:
    """The identity of one occurrence: ``<schedule id>:<nominal epoch ms>``."""
    return f"{schedule_id}:{to_epoch_ms(nominal)}"


def next_occurrence(schedule: TimelineFields, after: datetime, fired: int | None = None) -> Occurrence | None:
    """The first occurrence strictly after ``after`` within the schedule's bounds.

    ``fired`` is how many occurrences have fired already (default: the schedule's
    run_count); with ``max_runs`` reached there is none.
    """
    return next(occurrences(schedule, after, fired), None)


def occurrences(schedule: TimelineFields, after: datetime, fired: int | None = None) -> Iterator[Occurrence]:
    """The occurrences strictly after ``after`` within the schedule's bounds, in order."""
    fired = schedule.run_count if fired is None else fired
    if schedule.start_at is not None:
        after = max(after, schedule.start_at - timedelta(microseconds=1))
    for occurrence in get_kind(schedule.kind).iter_after(schedule, after):
        if schedule.max_runs is not None and fired >= schedule.max_runs:
            return
        if schedule.end_at is not None and occurrence.at > schedule.end_at:
            return
        yield occurrence
        fired += 1


def occurrences_between(schedule: TimelineFields, start: datetime, end: datetime) -> Iterator[datetime]:
    """The occurrences in [start, end] within the schedule's own start and end, whatever its
    run count (what a backfill fills in)."""
    if schedule.start_at is not None:
        start = max(start, schedule.start_at)
    if schedule.end_at is not None:
        end = min(end, schedule.end_at)
    for occurrence in get_kind(schedule.kind).iter_after(schedule, start - timedelta(microseconds=1)):
        if occurrence.at > end:
            return
        yield occurrence.at


def preview(schedule: TimelineFields, after: datetime, count: int = 10) -> list[Occurrence]:
    """The next ``count`` occurrences strictly after ``after``."""
    return list(islice(occurrences(schedule, after), max(0, min(count, MAX_PREVIEW))))


def skipped(schedule: TimelineFields, after: datetime, until: datetime) -> list[Skipped]:
    """What the schedule's rule names after ``after`` up to ``until`` within its start and end,
    but does not fire, with the reason (previews show these beside the occurrences)."""
    if schedule.start_at is not None:
        after = max(after, schedule.start_at - timedelta(microseconds=1))
    if schedule.end_at is not None:
        until = min(until, schedule.end_at)
    if until <= after:
        return []
    return get_kind(schedule.kind).skipped_between(schedule, after, until)[:MAX_PREVIEW]


def preview_with_skipped(
    schedule: TimelineFields, after: datetime, count: int = 10, calendars: Sequence[CalendarDays] = ()
) -> tuple[list[Occurrence], list[Skipped]]:
    """The next ``count`` occurrences that run, and what is skipped from ``after`` up to the
    last of them: days the rule names but does not fire, and occurrences on a day of one of
    ``calendars`` (exclusion calendars: dispatched, then skipped by the worker)."""
    found: list[Occurrence] = []
    excluded: list[Skipped] = []
    wanted = max(0, min(count, MAX_PREVIEW))
    for occurrence in occurrences(schedule, after) if wanted else ():
        exclusion = excluded_by(calendars, occurrence.at) if calendars else None
        if exclusion is None:
            found.append(occurrence)
            if len(found) >= wanted:
                break
            continue
        excluded.append(
            Skipped(
                day=exclusion.day,
                reason="calendar",
                message=exclusion.message(),
                at=occurrence.at,
                calendar=exclusion.calendar.calendar_id,
            )
        )
        if len(excluded) >= MAX_PREVIEW:
            break
    named = skipped(schedule, after, found[-1].at if found else after)
    return found, sorted([*named, *excluded], key=lambda item: item.day)


def jitter_ms(key: str, jitter_seconds: int, until_next_ms: int | None) -> int:
    """A delay for one occurrence: stable (derived from its fire key), below the next one."""
    if jitter_seconds <= 0:
        return 0
    bound = jitter_seconds * 1000
    if until_next_ms is not None:
        bound = min(bound, until_next_ms - 1)
    if bound <= 0:
        return 0
    # The same formula runs in the dispatch Lua (redis.sha1hex), so both agree exactly.
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % (bound + 1)  # noqa: S324
