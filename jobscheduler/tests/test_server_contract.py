"""The MongoDB features the project relies on, checked against whichever server the suite uses.

SecantusDB here; a real MongoDB when MONGODB_URI points at one. When a check fails on one
server and not the other, the difference is the server's, not the project's: fix or work
around it here first. Known SecantusDB gaps are marked xfail (strict) on SecantusDB only,
so they pass on MongoDB and are noticed the day SecantusDB fixes them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from django.contrib.auth import authenticate
from django.contrib.auth.models import Permission, User
from django.db import IntegrityError, connection
from django.db.models import Count
from pymongo import UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from jobs.models import Job, Run
from schedules.models import Schedule

DUPLICATE_KEY = 11000


def mongo() -> Database[dict[str, Any]]:
    """The pymongo Database behind the ORM (django-mongodb-backend's ``connection.database``)."""
    return connection.database  # type: ignore[attr-defined]


def running_on_secantus() -> bool:
    """Whether the suite's MongoDB-wire server is SecantusDB (it says so in buildInfo)."""
    return "secantusVersion" in mongo().command("buildInfo")


def expect_secantus_gap(request: pytest.FixtureRequest, reason: str) -> None:
    """Mark the running test as a known SecantusDB gap: expected to fail there, pass on MongoDB."""
    if running_on_secantus():
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"SecantusDB gap: {reason}"))


def make_job(owner: User, name: str = "job", **fields: Any) -> Job:
    return Job.objects.create(
        owner=owner, name=name, target_type="python", target={"task": "demo.tasks.hello"}, **fields
    )


def test_unique_index_rejects_duplicate_fire_key_and_attempt(user: User) -> None:
    job = make_job(user)
    Run.objects.create(job=job, fire_key="s:1000", attempt=1)
    Run.objects.create(job=job, fire_key="s:1000", attempt=2)  # a retry is its own row
    with pytest.raises(IntegrityError):
        Run.objects.create(job=job, fire_key="s:1000", attempt=1)
    assert Run.objects.filter(fire_key="s:1000").count() == 2


def test_unordered_insert_many_continues_past_duplicates_and_reports_them(user: User) -> None:
    job = make_job(user)
    collection = mongo()[Run._meta.db_table]
    Run.objects.create(job=job, fire_key="s:1", attempt=1)
    documents = [{"job_id": job.pk, "fire_key": f"s:{n}", "attempt": 1, "status": "pending"} for n in range(5)]
    documents.append({"job_id": job.pk, "fire_key": "s:3", "attempt": 1, "status": "pending"})
    with pytest.raises(BulkWriteError) as error:
        collection.insert_many(documents, ordered=False)
    details = error.value.details
    assert details["nInserted"] == 4
    assert sorted(write["index"] for write in details["writeErrors"]) == [1, 5]
    assert {write["code"] for write in details["writeErrors"]} == {DUPLICATE_KEY}
    assert Run.objects.filter(job=job).count() == 5


def test_bulk_write_of_update_one(user: User) -> None:
    job = make_job(user)
    schedules = [Schedule.objects.create(job=job, kind="fixed", interval_seconds=n) for n in (1, 2, 3)]
    fired_at = datetime(2026, 5, 1, 12, 0, 0, 123_000, tzinfo=UTC)
    operations = [
        UpdateOne({"_id": schedule.pk}, {"$inc": {"run_count": 2}, "$set": {"last_run_at": fired_at}})
        for schedule in schedules[:2]
    ]
    operations.append(UpdateOne({"_id": ObjectId()}, {"$inc": {"run_count": 1}}))  # gone: matches nothing
    result = mongo()[Schedule._meta.db_table].bulk_write(operations, ordered=False)
    assert (result.matched_count, result.modified_count) == (2, 2)
    counts = dict(Schedule.objects.values_list("interval_seconds", "run_count"))
    assert counts == {1: 2, 2: 2, 3: 0}
    assert Schedule.objects.get(pk=schedules[0].pk).last_run_at == fired_at


def test_foreign_key_filters_and_select_related(user: User, other_user: User) -> None:
    mine, theirs = make_job(user, "mine"), make_job(other_user, "theirs")
    Schedule.objects.create(job=mine, kind="fixed", interval_seconds=5)
    Schedule.objects.create(job=theirs, kind="fixed", interval_seconds=7)
    assert [s.interval_seconds for s in Schedule.objects.filter(job__owner=user)] == [5]
    assert [s.interval_seconds for s in Schedule.objects.filter(job__owner__username="bob")] == [7]
    assert list(Job.objects.filter(schedules__interval_seconds=7)) == [theirs]
    schedule = Schedule.objects.select_related("job", "job__owner").get(job=mine)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(connection, "get_collection", _no_queries)
        assert (schedule.job.name, schedule.job.owner.username) == ("mine", "alice")


def _no_queries(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("select_related should have fetched this already")


def test_annotate_count(user: User) -> None:
    busy, idle = make_job(user, "busy"), make_job(user, "idle")
    for seconds in (1, 2, 3):
        Schedule.objects.create(job=busy, kind="fixed", interval_seconds=seconds)
    counts = dict(Job.objects.annotate(n=Count("schedules")).values_list("name", "n"))
    assert counts == {"busy": 3, "idle": 0}
    by_status = dict(Run.objects.values("status").annotate(n=Count("pk")).values_list("status", "n"))
    assert by_status == {}
    Run.objects.create(job=idle, fire_key="a:1", status="failed")
    Run.objects.create(job=idle, fire_key="a:2", status="failed")
    Run.objects.create(job=idle, fire_key="a:3", status="succeeded")
    by_status = dict(Run.objects.values("status").annotate(n=Count("pk")).values_list("status", "n"))
    assert by_status == {"failed": 2, "succeeded": 1}


def test_datetimes_round_trip_aware_to_the_millisecond(user: User) -> None:
    job = make_job(user)
    moment = datetime(2026, 3, 29, 1, 0, 0, 123_456, tzinfo=UTC)
    run = Run.objects.create(job=job, fire_key="a:1", nominal_time=moment)
    loaded = Run.objects.get(pk=run.pk).nominal_time
    assert loaded is not None and loaded.utcoffset() == timedelta(0)
    assert loaded == moment.replace(microsecond=123_000)  # BSON dates hold milliseconds
    assert Run.objects.filter(nominal_time__gte=moment.replace(microsecond=123_000)).count() == 1
    assert Run.objects.filter(nominal_time__gt=moment.replace(microsecond=124_000)).count() == 0


def test_json_field_round_trip(user: User) -> None:
    kwargs = {"n": 1, "x": 1.5, "ok": True, "none": None, "list": [1, "two"], "text": "naïve ☃"}
    target = {"task": "demo.tasks.echo", "kwargs": kwargs}
    job = Job.objects.create(owner=user, name="j", target_type="python", target=target)
    assert Job.objects.get(pk=job.pk).target == target


def test_save_updates_in_place(user: User) -> None:
    job = make_job(user)
    job.description = "changed"
    job.enabled = False
    job.save()
    loaded = Job.objects.get(pk=job.pk)
    assert (loaded.description, loaded.enabled) == ("changed", False)
    assert Job.objects.count() == 1


def test_ordering_and_slicing_paginate(user: User) -> None:
    for n in range(25):
        make_job(user, f"job-{n:02d}")
    names = [f"job-{n:02d}" for n in range(25)]
    assert [job.name for job in Job.objects.order_by("name")[10:20]] == names[10:20]
    assert [job.name for job in Job.objects.order_by("-name")[:3]] == names[::-1][:3]
    assert Job.objects.count() == 25
    assert Job.objects.order_by("name")[20:].count() == 5


def test_icontains_search_is_case_insensitive(user: User) -> None:
    make_job(user, "Nightly Report", description="Sends the REPORT")
    make_job(user, "cleanup")
    assert [job.name for job in Job.objects.filter(name__icontains="nightly")] == ["Nightly Report"]
    assert Job.objects.filter(description__icontains="report").count() == 1
    assert Job.objects.filter(name__icontains="a.b").count() == 0  # a regex metacharacter stays literal


def test_in_lookups(user: User) -> None:
    jobs = [make_job(user, name) for name in ("a", "b", "c")]
    assert {job.name for job in Job.objects.filter(pk__in=[jobs[0].pk, str(jobs[2].pk)])} == {"a", "c"}
    assert Job.objects.filter(name__in=["b", "z"]).count() == 1
    assert Job.objects.filter(name__in=[]).count() == 0


def test_delete_cascades_through_the_orm(user: User) -> None:
    job, kept = make_job(user, "gone"), make_job(user, "kept")
    schedule = Schedule.objects.create(job=job, kind="fixed", interval_seconds=5)
    Schedule.objects.create(job=kept, kind="fixed", interval_seconds=5)
    Run.objects.create(job=job, schedule=schedule, fire_key="a:1")
    kept_run = Run.objects.create(job=kept, schedule=schedule, fire_key="b:1")
    job.delete()
    assert not Schedule.objects.filter(job_id=job.pk).exists()
    assert not Run.objects.filter(job_id=job.pk).exists()
    assert Schedule.objects.count() == 1
    kept_run.refresh_from_db()
    assert kept_run.schedule is None  # SET_NULL, not a dangling id


def test_dates_for_the_admin_date_hierarchy(user: User) -> None:
    job = make_job(user)
    for day in (datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 30, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)):
        Run.objects.create(job=job, fire_key=f"a:{day.timestamp()}", nominal_time=day)
    months = [moment.month for moment in Run.objects.datetimes("nominal_time", "month")]
    assert months == [1, 3]


def test_create_superuser_and_authenticate(db: Any) -> None:
    User.objects.create_superuser("root", "root@example.com", "a-long-password-1")
    root = authenticate(username="root", password="a-long-password-1")
    assert isinstance(root, User) and root.is_superuser and root.is_staff
    assert authenticate(username="root", password="wrong") is None


NESTED_PROJECT_GAP = "0.7.0b3 reads a nested $project ({'rel': {'field': 1}}) as a literal, so joined fields read 1"


def test_values_list_across_a_foreign_key(request: pytest.FixtureRequest, user: User) -> None:
    # Django's ModelBackend loads a staff user's permissions exactly like this, so on
    # SecantusDB non-superuser staff have no effective permissions (superusers are unaffected).
    expect_secantus_gap(request, NESTED_PROJECT_GAP)
    labels = set(Permission.objects.filter(codename="view_job").values_list("content_type__app_label", flat=True))
    assert labels == {"jobs"}


def test_annotate_with_select_related(request: pytest.FixtureRequest, user: User) -> None:
    expect_secantus_gap(request, NESTED_PROJECT_GAP)
    make_job(user)
    job = Job.objects.annotate(n=Count("schedules")).select_related("owner").get()
    assert (job.n, job.owner.username) == (0, "alice")


def winning_stages(collection: str, query: dict[str, Any]) -> list[str]:
    """The stages of the plan the server picks for a find with ``query`` (outermost first)."""
    plan = mongo().command("explain", {"find": collection, "filter": query})["queryPlanner"]["winningPlan"]
    stages = []
    while plan:
        stages.append(plan["stage"])
        plan = plan.get("inputStage")
    return stages


def test_look_ups_by_fire_key_use_an_index(user: User) -> None:
    # The unique (fire_key, attempt) index django-mongodb-backend builds is partial, which a plain
    # query cannot use; runs have a plain fire_key index for these (jobs.selectors, the worker).
    job = make_job(user)
    Run.objects.bulk_create([Run(job=job, fire_key=f"s:{n}", attempt=1) for n in range(200)])
    table = Run._meta.db_table
    assert "IXSCAN" in winning_stages(table, {"fire_key": "s:7"})
    assert "IXSCAN" in winning_stages(table, {"fire_key": {"$in": ["s:7", "s:8"]}})


def test_a_filter_on_two_fields_uses_an_index(request: pytest.FixtureRequest, user: User) -> None:
    expect_secantus_gap(request, "0.7.0b3 plans a filter on two fields as a collection scan")
    job = make_job(user)
    Run.objects.bulk_create([Run(job=job, fire_key=f"s:{n}", attempt=1) for n in range(200)])
    assert "IXSCAN" in winning_stages(Run._meta.db_table, {"fire_key": "s:7", "attempt": 1})
