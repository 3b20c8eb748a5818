"""Per-owner limits: how many jobs and schedules one owner may have, and how often a schedule may fire.

Set in settings (``JOBSCHEDULER_MAX_JOBS_PER_OWNER``, ``JOBSCHEDULER_MAX_SCHEDULES_PER_OWNER``,
``JOBSCHEDULER_MIN_INTERVAL_SECONDS``; 0 turns a count limit off) and checked by the services,
so the API and the admin agree. Superusers are not limited: they are the operators.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from jobs.models import Job


def _limit(name: str) -> int:
    return int(getattr(settings, name, 0) or 0)


def _limited(owner: Any) -> bool:
    return not getattr(owner, "is_superuser", False)


def check_job_count(owner: Any, adding: int = 1) -> None:
    limit = _limit("JOBSCHEDULER_MAX_JOBS_PER_OWNER")
    if limit and _limited(owner) and Job.objects.filter(owner=owner).count() + adding > limit:
        raise ValidationError(f"An owner may have at most {limit} jobs (JOBSCHEDULER_MAX_JOBS_PER_OWNER).")


def check_schedule_count(owner: Any, count_existing: Any, adding: int = 1) -> None:
    """``count_existing(owner)`` counts the owner's schedules (the schedules app knows how)."""
    limit = _limit("JOBSCHEDULER_MAX_SCHEDULES_PER_OWNER")
    if not limit or not _limited(owner):
        return
    total = count_existing(owner) + adding
    if total > limit:
        raise ValidationError(
            f"An owner may have at most {limit} schedules (JOBSCHEDULER_MAX_SCHEDULES_PER_OWNER); "
            f"this would make {total}."
        )


def min_interval_seconds(owner: Any) -> int:
    """The shortest time between two occurrences of one of ``owner``'s schedules (0: no limit)."""
    return _limit("JOBSCHEDULER_MIN_INTERVAL_SECONDS") if _limited(owner) else 0
