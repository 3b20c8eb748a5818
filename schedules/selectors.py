"""Reads of schedules: who sees which (API and admin alike), and what the worker looks up."""

from __future__ import annotations

from bson import ObjectId
from bson.errors import InvalidId
from django.db.models import QuerySet

from jobs.models import Job
from jobs.selectors import AnyUser, job_ids_visible_to
from schedules.models import Schedule


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
