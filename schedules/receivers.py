"""The schedules side of job events (jobs.signals), and of schedule edits made outside the services."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone

from jobs.models import SAVED_BY_SERVICE, Job
from jobs.signals import job_deleting, job_enabled_changed
from schedules import services
from schedules.due_index import get_due_index
from schedules.models import Schedule, schedules_updated


@receiver(job_enabled_changed, sender=Job, dispatch_uid="schedules.follow_job")
def follow_job(sender: type[Job], *, job: Job, now: Any, **kwargs: Any) -> None:
    services.follow_job(job, now=now)


@receiver(job_deleting, sender=Job, dispatch_uid="schedules.unschedule_job")
def unschedule_job(sender: type[Job], *, job: Job, **kwargs: Any) -> None:
    # The job's deletion was the decision (and was refused already if it was not allowed).
    for schedule in list(job.schedules.all()):
        services.schedule_delete(schedule, override_code=True)


# --- edits made around the services ---------------------------------------------------------
# A save, delete or QuerySet.update() in a shell or a script keeps the Redis mirror in step,
# as the services do (they mark their own writes, and mirror those themselves). Bulk paths
# that skip model signals (bulk_create, raw pymongo writes) are not followed: the scheduler's
# periodic reconcile repairs what they leave (every 5 minutes; LoopSettings.reconcile_every).


@receiver(pre_save, sender=Schedule, dispatch_uid="schedules.prepare_outside_services")
def prepare_outside_services(sender: type[Schedule], *, instance: Schedule, raw: bool = False, **kwargs: Any) -> None:
    if raw or getattr(instance, SAVED_BY_SERVICE, False):
        return
    services.prepare_unvalidated(instance, timezone.now())


@receiver(post_save, sender=Schedule, dispatch_uid="schedules.mirror_outside_services")
def mirror_outside_services(sender: type[Schedule], *, instance: Schedule, raw: bool = False, **kwargs: Any) -> None:
    if instance.__dict__.pop(SAVED_BY_SERVICE, False) or raw:
        return
    services.mirror_unvalidated([instance])


@receiver(post_delete, sender=Schedule, dispatch_uid="schedules.unmirror_outside_services")
def unmirror_outside_services(sender: type[Schedule], *, instance: Schedule, **kwargs: Any) -> None:
    if instance.__dict__.pop(SAVED_BY_SERVICE, False):
        return
    get_due_index().remove(str(instance.pk))


@receiver(schedules_updated, sender=Schedule, dispatch_uid="schedules.resync_updated")
def resync_updated(sender: type[Schedule], *, ids: list[Any], **kwargs: Any) -> None:
    services.schedules_resync(ids)
