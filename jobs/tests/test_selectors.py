"""Reads of jobs and runs, against real MongoDB: who sees what, and the engine's and worker's lookups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from django.contrib.auth.models import AnonymousUser, User

from jobs import selectors
from jobs.models import Job, Run
from jobs.services import job_create

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_job(owner: User, name: str, **fields: Any) -> Job:
    return job_create(owner=owner, name=name, target_type="python", target={"task": "demo.tasks.hello"}, **fields)


@pytest.fixture
def superuser(db: Any) -> User:
    return User.objects.create_superuser("root", "root@example.com", "root-password-1")


@pytest.fixture
def carol(db: Any) -> User:
    """A user who owns nothing."""
    return User.objects.create_user("carol", "carol@example.com", "carol-password-1")


@pytest.fixture
def two_jobs(user: User, other_user: User) -> tuple[Job, Job]:
    return make_job(user, "alice's"), make_job(other_user, "bob's")


# --- who sees what ---------------------------------------------------------------------------


def test_jobs_visible_to_owner_superuser_and_others(
    user: User, other_user: User, superuser: User, carol: User, two_jobs: tuple[Job, Job]
) -> None:
    alices, bobs = two_jobs
    assert list(selectors.jobs_visible_to(user)) == [alices]
    assert list(selectors.jobs_visible_to(other_user)) == [bobs]
    assert set(selectors.jobs_visible_to(superuser)) == {alices, bobs}
    assert list(selectors.jobs_visible_to(carol)) == []
    assert list(selectors.jobs_visible_to(AnonymousUser())) == []


def test_job_ids_visible_to(user: User, superuser: User, carol: User, two_jobs: tuple[Job, Job]) -> None:
    alices, bobs = two_jobs
    assert selectors.job_ids_visible_to(user) == [alices.pk]
    assert set(selectors.job_ids_visible_to(superuser)) == {alices.pk, bobs.pk}
    assert selectors.job_ids_visible_to(carol) == []


def test_runs_visible_to_owner_superuser_and_others(
    user: User, other_user: User, superuser: User, carol: User, two_jobs: tuple[Job, Job]
) -> None:
    alices, bobs = two_jobs
    mine = Run.objects.create(job=alices, fire_key="a:1", nominal_time=T0)
    theirs = Run.objects.create(job=bobs, fire_key="b:1", nominal_time=T0)
    assert list(selectors.runs_visible_to(user)) == [mine]
    assert list(selectors.runs_visible_to(other_user)) == [theirs]
    assert set(selectors.runs_visible_to(superuser)) == {mine, theirs}
    assert list(selectors.runs_visible_to(carol)) == []
    assert list(selectors.runs_visible_to(AnonymousUser())) == []


def test_job_name_taken_is_per_owner_and_skips_the_job_itself(user: User, other_user: User) -> None:
    job = make_job(user, "nightly")
    assert selectors.job_name_taken(user.pk, "nightly")
    assert not selectors.job_name_taken(user.pk, "nightly", excluding=job.pk)
    assert not selectors.job_name_taken(other_user.pk, "nightly")
    assert not selectors.job_name_taken(user.pk, "hourly")


# --- lookups by id ---------------------------------------------------------------------------


def test_job_by_id(job: Job) -> None:
    assert selectors.job_by_id(str(job.pk)) == job
    assert selectors.job_by_id(job.pk) == job
    assert selectors.job_by_id(str(ObjectId())) is None
    assert selectors.job_by_id("not-an-object-id") is None
    assert selectors.job_by_id("") is None


def test_disabled_job_ids(user: User) -> None:
    on, off, also_off = make_job(user, "on"), make_job(user, "off", enabled=False), make_job(user, "x", enabled=False)
    assert selectors.disabled_job_ids({on.pk, off.pk}) == {off.pk}
    assert selectors.disabled_job_ids([on.pk, off.pk, also_off.pk, ObjectId()]) == {off.pk, also_off.pk}
    assert selectors.disabled_job_ids(set()) == set()


def test_last_nominal_times_per_schedule(job: Job) -> None:
    # Runs are matched on their schedule id alone: plain ids stand in for schedules.
    first, second, quiet = ObjectId(), ObjectId(), ObjectId()
    Run.objects.create(job=job, schedule_id=first, fire_key="f:1", nominal_time=T0)
    Run.objects.create(
        job=job, schedule_id=first, fire_key="f:2", nominal_time=T0 + timedelta(minutes=2, milliseconds=5)
    )
    Run.objects.create(job=job, schedule_id=first, fire_key="f:0", nominal_time=T0 - timedelta(hours=1))
    Run.objects.create(job=job, schedule_id=second, fire_key="s:1", nominal_time=T0 + timedelta(days=1))
    Run.objects.create(job=job, schedule_id=quiet, fire_key="q:1", nominal_time=None)
    Run.objects.create(job=job, fire_key="manual:1", nominal_time=T0 + timedelta(days=9))  # no schedule

    found = selectors.last_nominal_times([first, second, quiet, ObjectId()])

    assert found == {str(first): T0 + timedelta(minutes=2, milliseconds=5), str(second): T0 + timedelta(days=1)}
    assert all(moment.tzinfo is UTC for moment in found.values())
    assert selectors.last_nominal_times([]) == {}


# --- how a schedule's recent occurrences ended -----------------------------------------------


def finished(job: Job, schedule_id: ObjectId, fire_key: str, status: str, minute: int, **fields: Any) -> Run:
    return Run.objects.create(
        job=job,
        schedule_id=schedule_id,
        fire_key=fire_key,
        status=status,
        nominal_time=T0 + timedelta(minutes=minute),
        finished_at=T0 + timedelta(minutes=minute),
        **fields,
    )


def test_recent_outcomes_newest_first_one_per_occurrence(job: Job) -> None:
    schedule, other = ObjectId(), ObjectId()
    finished(job, schedule, "s:1", "succeeded", 1)
    finished(job, schedule, "s:2", "failed", 2)
    finished(job, schedule, "s:2", "succeeded", 3, attempt=2, trigger="retry")  # its retry: the outcome
    finished(job, schedule, "s:3", "timed_out", 4)
    finished(job, schedule, "s:4", "skipped", 5)  # not an outcome that counts
    finished(job, schedule, "s:5", "missed", 6)
    Run.objects.create(job=job, schedule_id=schedule, fire_key="s:6", status="running")
    finished(job, schedule, "s:7", "failed", 7)
    finished(job, schedule, "manual:a", "failed", 8, trigger="manual")
    finished(job, schedule, "manual:a", "failed", 9, attempt=2, trigger="retry")  # a manual run's retry
    finished(job, other, "o:1", "failed", 10)

    assert selectors.recent_outcomes(schedule, 10, 1) == ["failed", "timed_out", "succeeded", "succeeded"]
    assert selectors.recent_outcomes(schedule, 2, 1) == ["failed", "timed_out"]
    assert selectors.recent_outcomes(other, 5, 1) == ["failed"]
    assert selectors.recent_outcomes(ObjectId(), 5, 1) == []


def test_recent_outcomes_reads_a_bounded_number_of_attempts(job: Job) -> None:
    schedule = ObjectId()
    # Forty failed attempts of the newest occurrence, older ones succeeded: with max_attempts=1
    # only limit * 2 + RECENT_SLACK rows are read, all of that one occurrence.
    for attempt in range(1, 41):
        finished(job, schedule, "s:9", "failed", 100, attempt=attempt, trigger="retry")
    for minute in range(5):
        finished(job, schedule, f"s:{minute}", "succeeded", minute)

    assert selectors.recent_outcomes(schedule, 2, 1) == ["failed"]
    assert selectors.recent_outcomes(schedule, 2, 40) == ["failed", "succeeded"]
