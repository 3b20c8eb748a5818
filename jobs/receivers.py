"""Job edits made around the services (a shell's save or delete): workers hear of them, and a job
enabled or disabled this way starts or stops its schedules, as through the services."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from jobs import services
from jobs.models import SAVED_BY_SERVICE, Job

_STORED_ENABLED = "_stored_enabled"


@receiver(pre_save, sender=Job, dispatch_uid="jobs.remember_enabled")
def remember_enabled(sender: type[Job], *, instance: Job, raw: bool = False, **kwargs: Any) -> None:
    if raw or getattr(instance, SAVED_BY_SERVICE, False) or instance.pk is None:
        return
    stored = Job.objects.filter(pk=instance.pk).values_list("enabled", flat=True).first()
    setattr(instance, _STORED_ENABLED, stored)


@receiver(post_save, sender=Job, dispatch_uid="jobs.follow_outside_services")
def follow_outside_services(sender: type[Job], *, instance: Job, raw: bool = False, **kwargs: Any) -> None:
    if instance.__dict__.pop(SAVED_BY_SERVICE, False) or raw:
        return
    services.job_saved_outside_services(instance, instance.__dict__.pop(_STORED_ENABLED, None))
