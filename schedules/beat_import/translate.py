"""One celery beat entry as a celery job and its schedule, or the reason it cannot be one.

- interval -> ``fixed`` every N seconds (whole seconds, at least 1), on the grid of its
  ``start_time``, else of its last run (the phase beat kept), else of the import;
- crontab -> ``cron`` with its five fields and time zone. Celery fires a crontab whose day of
  the month and day of the week are both restricted when *both* match; cron (and this
  scheduler, as Debian cron) when *either* does: such an entry is refused, not changed;
- clocked -> ``at`` (one run at that time);
- solar -> refused: there is no solar schedule kind;
- ``enabled`` -> ``paused`` (beat's disabled entries are imported paused), ``one_off`` -> at
  most one run, ``start_time`` -> ``start_at``, ``expires`` -> ``end_at``, ``expire_seconds``
  -> the target's ``expires``; args, kwargs, queue, exchange, routing key, priority and headers
  go into the celery target.
- Misfires are ``run_once``: what beat does when it finds a task overdue after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jobs.targets import celery as celery_target
from schedules.beat_import.entries import BeatEntry, Clocked, Crontab, Interval, Solar, Unreadable
from schedules.kinds import parse_cron
from schedules.models import Schedule


@dataclass(frozen=True)
class Planned:
    """What an entry becomes: the job's fields and its schedule's."""

    name: str
    task: str
    job: dict[str, Any]
    schedule: dict[str, Any]
    # The fixed grid's anchor when the schedule is created (the last run's phase): later
    # imports keep the grid the schedule has.
    first_anchor: datetime | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Refused:
    """An entry that is not imported, and why."""

    name: str
    task: str
    reason: str


def translate(entry: BeatEntry, *, paused: bool = False) -> Planned | Refused:
    """``entry`` as a job and schedule; with ``paused``, every schedule is made paused."""

    def refuse(reason: str) -> Refused:
        return Refused(entry.name, entry.task, reason)

    if not entry.name or len(entry.name) > 200:
        return refuse("its name must be 1-200 characters (it becomes the job's name)")
    if not isinstance(entry.args, list):
        return refuse(f"its args are not a JSON list: {entry.args!r:.80}")
    if not isinstance(entry.kwargs, dict):
        return refuse(f"its kwargs are not a JSON object: {entry.kwargs!r:.80}")
    options = dict(entry.options)
    notes = [f"options not carried over: {', '.join(options.pop('unsupported'))}"] if "unsupported" in options else []
    target: dict[str, Any] = {"task": entry.task}
    if entry.args:
        target["args"] = entry.args
    if entry.kwargs:
        target["kwargs"] = entry.kwargs
    target.update(options)
    problem = celery_target.check(target)
    if problem:
        return refuse(f"its task or options cannot make a celery target: {problem}")
    schedule: dict[str, Any] = {
        "misfire_policy": Schedule.Misfire.RUN_ONCE,
        "paused": paused or not entry.enabled,
        "start_at": _ms(entry.start_time),
        "end_at": _ms(entry.expires),
        "max_runs": None,
    }
    first_anchor = None
    timing = entry.timing
    if isinstance(timing, Interval):
        seconds = timing.seconds
        if seconds < 1 or seconds != int(seconds):
            return refuse(f"it runs every {seconds:g} seconds: intervals here are whole seconds, at least 1")
        schedule.update(kind="fixed", interval_seconds=int(seconds), timezone="UTC", expression="")
        if entry.start_time is not None:
            schedule["anchor"] = _ms(entry.start_time)
        else:
            first_anchor = _ms(entry.last_run_at)
    elif isinstance(timing, Crontab):
        if timing.day_of_month.strip() != "*" and timing.day_of_week.strip() != "*":
            return refuse(
                f"its crontab restricts both day_of_month ({timing.day_of_month}) and day_of_week "
                f"({timing.day_of_week}): Celery runs it when both match, cron when either does; "
                "make it two schedules, or one with a check in the task"
            )
        expression = " ".join(
            (timing.minute, timing.hour, timing.day_of_month, timing.month_of_year, timing.day_of_week)
        )
        try:
            parse_cron(expression)
            ZoneInfo(timing.timezone)
        except (ValueError, ZoneInfoNotFoundError) as error:
            return refuse(f"its crontab '{expression}' in {timing.timezone} cannot be read here: {error}")
        schedule.update(kind="cron", expression=expression, timezone=timing.timezone, interval_seconds=None)
    elif isinstance(timing, Clocked):
        schedule.update(kind="at", anchor=_ms(timing.at), timezone="UTC", expression="", interval_seconds=None)
        if timing.at <= datetime.now(UTC):
            notes.append("its clocked time has passed: it will not run")
    elif isinstance(timing, Solar):
        return refuse(
            f"it runs at {timing.event} at ({timing.latitude}, {timing.longitude}): solar schedules have no "
            "equivalent here (there is no solar schedule kind); give it a cron schedule by hand"
        )
    elif isinstance(timing, Unreadable):
        return refuse(f"its schedule cannot be read: {timing.why}")
    if entry.one_off and schedule["kind"] != "at":
        schedule["max_runs"] = 1
    job = {
        "target_type": "celery",
        "target": target,
        "description": entry.description.strip() or f"Imported from celery beat ({entry.name}).",
    }
    return Planned(entry.name, entry.task, job, schedule, first_anchor, notes)


def _ms(moment: datetime | None) -> datetime | None:
    """In UTC, to the millisecond: as MongoDB keeps it, so a later import compares equal."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
