"""Create or update the jobs and schedules celery beat entries translate to, through the services.

An imported entry is keyed by its name: it becomes the owner's job of that name (job names are
unique per owner), with one schedule. Importing again updates that job and schedule to match
the entry (``paused`` included: a disabled entry pauses it, an enabled one resumes it) and
leaves what matches alone; it never makes a second job. A job of that name that is not a celery
job, is declared in code, or has several schedules is not the import's: it is reported and left
alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError

from jobs import selectors as job_selectors
from jobs import services as job_services
from jobs.models import Job
from schedules import services as schedule_services
from schedules.beat_import.entries import BeatEntry
from schedules.beat_import.translate import Planned, Refused, translate
from schedules.models import Schedule

CREATE, UPDATE, SAME, REFUSE = "create", "update", "same", "refuse"


@dataclass(frozen=True)
class Line:
    """What became (or, in a dry run, would become) of one entry."""

    action: str
    name: str
    task: str
    detail: str
    notes: tuple[str, ...] = ()


def import_entries(entries: Iterable[BeatEntry], *, owner: User, dry_run: bool, paused: bool = False) -> list[Line]:
    lines = []
    for entry in entries:
        planned = translate(entry, paused=paused)
        if isinstance(planned, Refused):
            lines.append(Line(REFUSE, planned.name, planned.task, planned.reason))
            continue
        try:
            lines.append(_import(planned, owner=owner, dry_run=dry_run))
        except (ValidationError, PermissionDenied) as error:
            lines.append(Line(REFUSE, planned.name, planned.task, _message(error)))
    return lines


def _import(planned: Planned, *, owner: User, dry_run: bool) -> Line:
    notes = tuple(planned.notes)
    draft = Schedule(**{"anchor": planned.first_anchor, **planned.schedule})
    described = f"{draft.describe()}{', paused' if planned.schedule['paused'] else ''}"
    job = job_selectors.job_of_owner_named(owner, planned.name)
    if job is None:
        if not dry_run:
            job = job_services.job_create(owner=owner, name=planned.name, **planned.job)
            fields = dict(planned.schedule)
            if planned.first_anchor is not None:
                fields["anchor"] = planned.first_anchor
            schedule_services.schedule_create(job=job, **fields)
        return Line(CREATE, planned.name, planned.task, described, notes)
    if job.target_type != Job.TargetType.CELERY or job.code_key:
        why = "is declared in code" if job.code_key else f"is a {job.target_type} job"
        return Line(REFUSE, planned.name, planned.task, f"a job of this name {why}; left alone", notes)
    schedules = list(job.schedules.all())
    if len(schedules) > 1:
        detail = f"its job has {len(schedules)} schedules; an imported job has one. Left alone"
        return Line(REFUSE, planned.name, planned.task, detail, notes)
    job_changes = {name: value for name, value in planned.job.items() if getattr(job, name) != value}
    schedule = schedules[0] if schedules else None
    schedule_changes = dict(planned.schedule)
    if schedule is not None:
        schedule_changes = {name: value for name, value in planned.schedule.items() if getattr(schedule, name) != value}
    if not job_changes and not schedule_changes:
        return Line(SAME, planned.name, planned.task, described, notes)
    if not dry_run:
        if job_changes:
            job_services.job_update(job, **job_changes)
        if schedule is None:
            schedule_services.schedule_create(job=job, **schedule_changes)
        elif schedule_changes:
            schedule_services.schedule_update(schedule, **schedule_changes)
    changed = ", ".join(sorted({*job_changes, *schedule_changes}))
    return Line(UPDATE, planned.name, planned.task, f"{described} (changed: {changed})", notes)


def _message(error: ValidationError | PermissionDenied) -> str:
    if isinstance(error, ValidationError) and hasattr(error, "message_dict"):
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items())
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error)


def summary(lines: list[Line]) -> dict[str, int]:
    counts = dict.fromkeys((CREATE, UPDATE, SAME, REFUSE), 0)
    for line in lines:
        counts[line.action] += 1
    return counts


def as_text(line: Line) -> str:
    task = f" ({line.task})" if line.task else ""
    text = f"{line.action:<7} {line.name}{task}: {line.detail}"
    return "\n".join([text, *(f"        note: {note}" for note in line.notes)])
