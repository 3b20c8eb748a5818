"""The schedules side of job events (jobs.signals): stop, restart or delete a job's schedules."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from jobs.models import Job
from jobs.signals import job_deleting, job_enabled_changed
from schedules import services


@receiver(job_enabled_changed, sender=Job, dispatch_uid="schedules.follow_job")
def follow_job(sender: type[Job], *, job: Job, now: Any, **kwargs: Any) -> None:
    services.follow_job(job, now=now)


@receiver(job_deleting, sender=Job, dispatch_uid="schedules.unschedule_job")
def unschedule_job(sender: type[Job], *, job: Job, **kwargs: Any) -> None:
    for schedule in list(job.schedules.all()):
        services.schedule_delete(schedule)
