"""Reads of jobs and runs: who sees which (API and admin alike), and what the engine and worker look up.

Runs (and schedules, in schedules.selectors) of a user's jobs are found by job id in two
plain queries, never through ``job__owner``: the MongoDB backend turns that into a $lookup
over the whole collection, and joins are where SecantusDB has gaps (jobscheduler/auth.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet

from jobs.models import Job, Run
from jobscheduler import mongo
from jobscheduler.epoch import to_epoch_ms

# DRF's request.user, or the admin's.
AnyUser = AbstractBaseUser | AnonymousUser


def jobs_visible_to(user: AnyUser) -> QuerySet[Job]:
    """The jobs ``user`` owns; a superuser sees them all, an anonymous user none."""
    if not getattr(user, "is_authenticated", False):
        return Job.objects.none()
    return Job.objects.all() if getattr(user, "is_superuser", False) else Job.objects.filter(owner=user)


def job_ids_visible_to(user: AnyUser) -> list[Any]:
    """The ids of ``jobs_visible_to(user)``: what other collections are filtered on."""
    return list(jobs_visible_to(user).values_list("pk", flat=True))


def runs_visible_to(user: AnyUser) -> QuerySet[Run]:
    """The runs of the jobs ``user`` may see (by the indexed job id)."""
    if getattr(user, "is_superuser", False):
        return Run.objects.all()
    return Run.objects.filter(job__in=job_ids_visible_to(user))


def job_name_taken(owner_id: Any, name: str, *, excluding: Any = None) -> bool:
    """Whether the owner has a job called ``name`` other than ``excluding`` (a job's pk)."""
    return Job.objects.filter(owner_id=owner_id, name=name).exclude(pk=excluding).exists()


def job_of_owner_named(owner: Any, name: str) -> Job | None:
    """The owner's job called ``name`` (names are unique per owner), if any."""
    return Job.objects.filter(owner=owner, name=name).first()


def job_by_id(job_id: str | ObjectId) -> Job | None:
    """The job with this id; None when there is none or the id is malformed."""
    try:
        return Job.objects.filter(pk=ObjectId(job_id)).first()
    except InvalidId:
        return None


def disabled_job_ids(job_ids: Iterable[Any]) -> set[Any]:
    """Which of these jobs are disabled: their schedules stay stopped when Redis is rebuilt."""
    held = mongo.collection(Job).find({"_id": {"$in": list(job_ids)}, "enabled": False}, {"_id": 1})
    return {row["_id"] for row in held}


def last_nominal_times(schedule_ids: Iterable[Any]) -> dict[str, datetime]:
    """The latest nominal time of any run of each schedule, by schedule id as text (none: absent)."""
    pipeline: list[dict[str, Any]] = [
        {"$match": {"schedule_id": {"$in": list(schedule_ids)}}},
        {"$group": {"_id": "$schedule_id", "last": {"$max": "$nominal_time"}}},
    ]
    collection = mongo.collection(Run)
    return {str(row["_id"]): row["last"].replace(tzinfo=UTC) for row in collection.aggregate(pipeline) if row["last"]}


def finished_nominal_times(schedule_ids: Iterable[Any], since: datetime) -> dict[str, set[int]]:
    """The nominal times (epoch ms) of each schedule's finished runs since ``since``, by schedule
    id as text (pending and running ones are left out)."""
    found: dict[str, set[int]] = {}
    rows = mongo.collection(Run).find(
        {
            "schedule_id": {"$in": list(schedule_ids)},
            "nominal_time": {"$gte": since},
            "status": {"$in": [status.value for status in Run.FINISHED]},
        },
        {"schedule_id": 1, "nominal_time": 1, "_id": 0},
    )
    for row in rows:
        if row.get("nominal_time") is not None:
            found.setdefault(str(row["schedule_id"]), set()).add(to_epoch_ms(row["nominal_time"].replace(tzinfo=UTC)))
    return found


def recorded_attempts(attempts: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
    """Which of these (fire key, attempt) pairs have a run record, in one indexed query."""
    wanted = set(attempts)
    if not wanted:
        return set()
    found = mongo.collection(Run).find(
        {"fire_key": {"$in": sorted({fire_key for fire_key, _ in wanted})}}, {"fire_key": 1, "attempt": 1, "_id": 0}
    )
    return {(row["fire_key"], row["attempt"]) for row in found} & wanted


def runs_by_ids(run_ids: Iterable[str]) -> dict[str, Run]:
    """The runs with these ids (malformed ids are left out), by id as a string."""
    ids = [ObjectId(ident) for ident in run_ids if ObjectId.is_valid(ident)]
    return {str(run.pk): run for run in Run.objects.filter(pk__in=ids)} if ids else {}


def attempt_recorded(fire_key: str, attempt: int) -> bool:
    """Whether this attempt of an occurrence has a run record (the unique (fire key, attempt))."""
    return run_of_attempt(fire_key, attempt) is not None


def run_of_attempt(fire_key: str, attempt: int) -> Run | None:
    """The run record of one attempt of an occurrence, if there is one.

    Filtered on the fire key alone, then on the attempt here: an occurrence has a few attempts,
    and SecantusDB plans a filter of two fields as a collection scan (jobscheduler/tests/
    test_server_contract.py) where it uses the fire-key index for one.
    """
    return next((run for run in Run.objects.filter(fire_key=fire_key) if run.attempt == attempt), None)


# Runs of a schedule read beyond limit * attempts, for the ones not finished (pending, running).
RECENT_SLACK = 20


def recent_outcomes(schedule_id: Any, limit: int, max_attempts: int) -> list[str]:
    """How the schedule's last ``limit`` occurrences ended, newest first: each one's newest
    finished attempt (succeeded, failed or timed out). Manual runs and their retries do not count.

    One condition only, on the schedule, answered by the (schedule, -nominal_time, -id) index; the
    rest is sorted out here (SecantusDB plans a filter on two fields as a collection scan).
    """
    ended = {Run.Status.SUCCEEDED, Run.Status.FAILED, Run.Status.TIMED_OUT}
    window = limit * (max_attempts + 1) + RECENT_SLACK
    recent = (
        Run.objects.filter(schedule_id=schedule_id)
        .order_by("-nominal_time", "-pk")  # the index's order: MongoDB reads the window, sorts nothing
        .values_list("fire_key", "status", "attempt")[:window]
    )
    newest: dict[str, tuple[int, str]] = {}
    for fire_key, status, attempt in recent:
        if fire_key.startswith(Run.MANUAL_PREFIX) or status not in ended:
            continue
        if fire_key not in newest or attempt > newest[fire_key][0]:
            newest[fire_key] = (attempt, status)
    return [status for _, status in newest.values()][:limit]


def run_count_of_jobs(job_ids: Iterable[Any]) -> int:
    """How many runs these jobs have (their history, deleted with them); one indexed count."""
    return mongo.collection(Run).count_documents({"job_id": {"$in": list(job_ids)}})


def recent_runs_of_job(job_id: Any, limit: int = 50) -> list[Run]:
    """A job's last ``limit`` runs, newest first, with their status, nominal time and attempt
    (the admin's strip): one condition, on the job, answered by the (job, -nominal_time, -id) index.

    A find rather than the ORM's aggregate: SecantusDB reads every run of the job either way
    (its sort does not stream from the index; MongoDB's does), and the find takes half as long.
    """
    rows = (
        mongo.collection(Run)
        .find({"job_id": job_id}, {"status": 1, "nominal_time": 1, "attempt": 1})
        .sort("nominal_time", -1)  # the index's order: no blocking sort on MongoDB
        .limit(limit)
    )
    return [
        Run(
            pk=row["_id"],
            job_id=job_id,
            status=row.get("status", ""),
            attempt=row.get("attempt", 1),
            nominal_time=row["nominal_time"].replace(tzinfo=UTC) if row.get("nominal_time") else None,
        )
        for row in rows
    ]


def with_jobs_and_schedules(runs: list[Run]) -> list[Run]:
    """``runs`` with their jobs and schedules loaded, one query on ids each (no join, no query
    per run): what a page of runs shows beside each one.

    ``in_bulk`` asks ``{_id: {$in: [...]}}``, which the id index answers; ``prefetch_related``
    would ask ``{$expr: {$in: ["$_id", [...]]}}``, which no index answers.
    """
    jobs = Job.objects.in_bulk({run.job_id for run in runs})
    schedule_field = Run._meta.get_field("schedule")
    schedule_ids = {run.schedule_id for run in runs if run.schedule_id is not None}
    schedules = schedule_field.related_model._default_manager.in_bulk(schedule_ids) if schedule_ids else {}
    job_field = Run._meta.get_field("job")
    for run in runs:
        if run.job_id in jobs:
            job_field.set_cached_value(run, jobs[run.job_id])
        if run.schedule_id is not None:
            schedule_field.set_cached_value(run, schedules.get(run.schedule_id))
    return runs


def attempts_of(fire_key: str) -> list[Run]:
    """Every recorded attempt of one occurrence or manual run (an enqueued Task's), first first."""
    return list(Run.objects.filter(fire_key=fire_key).order_by("attempt"))
