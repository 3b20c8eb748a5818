"""The one write path for jobs: validate and save; deleting a job unschedules it first."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from jobs.models import Job

EDITABLE_FIELDS = (
    "name",
    "description",
    "target_type",
    "target",
    "timeout_seconds",
    "max_attempts",
    "retry_backoff_seconds",
    "secret",
    "enabled",
)


def _apply(job: Job, fields: dict[str, Any]) -> None:
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({name: "Unknown or read-only field." for name in unknown})
    for name, value in fields.items():
        setattr(job, name, value)


def _check_name_free(job: Job) -> None:
    taken = Job.objects.filter(owner_id=job.owner_id, name=job.name).exclude(pk=job.pk).exists()
    if taken:
        raise ValidationError({"name": "You already have a job with this name."})


def job_create(*, owner: User, **fields: Any) -> Job:
    job = Job(owner=owner)
    _apply(job, fields)
    job.full_clean(validate_constraints=False)
    _check_name_free(job)
    job.save()
    return job


def job_update(job: Job, **fields: Any) -> Job:
    _apply(job, fields)
    job.full_clean(validate_constraints=False)
    _check_name_free(job)
    job.save()
    return job


def job_delete(job: Job) -> None:
    """Delete a job, unscheduling each of its schedules through the schedule service."""
    from schedules.services import schedule_delete

    for schedule in list(job.schedules.all()):
        schedule_delete(schedule)
    job.delete()
