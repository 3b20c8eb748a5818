"""Schedules declared in code: declared by decorator and setting, synced into MongoDB and the mirror, guarded."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from io import StringIO
from types import ModuleType
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import call_command
from django.db import connections
from django.test import Client, override_settings
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs import services as job_services
from jobs.models import Job
from jobscheduler import mongo
from jobscheduler.coordination import Coordination
from jobscheduler.epoch import to_epoch_ms
from schedules import checks, declarations, services
from schedules.due_index import DueIndex
from schedules.management.commands.run_scheduler import sync_declared_at_start
from schedules.models import Schedule
from schedules.sync_declared import (
    DEFAULT_CODE_OWNER,
    LOCK,
    ORPHANED,
    differences,
    sync_declared_schedules,
    sync_unlocked,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TASKS = "schedules.tests.declared_app.tasks"
TIDY_UP = {"task": f"{TASKS}.tidy_up", "every": 300, "kwargs": {"days": 30}, "max_attempts": 2}


def now() -> datetime:
    return NOW


def sync(**kwargs: Any) -> Any:
    return sync_declared_schedules(now=now, **kwargs)


def stored(key: str) -> tuple[Job, Schedule]:
    return Job.objects.get(code_key=key), Schedule.objects.get(code_key=key)


# --- declaring -----------------------------------------------------------------------------


@override_settings(JOBSCHEDULER_TASK_SCHEDULES={"tidy-up": TIDY_UP})
def test_decorator_and_setting_feed_one_registry(declared: ModuleType) -> None:
    found = declarations.declared()
    assert sorted(found) == ["nightly-report", "tidy-up"]
    report = found["nightly-report"]
    assert report.task == "schedules.tests.declared_app.tasks.send_report"
    assert report.job_fields()["target"] == {
        "task": "schedules.tests.declared_app.tasks.send_report",
        "args": [],
        "kwargs": {"kind": "daily"},
    }
    assert report.schedule_fields()["expression"] == "0 2 * * *"
    assert found["tidy-up"].schedule_fields()["interval_seconds"] == 300
    assert declarations.problems() == []
    assert checks.check_declarations() == []


def test_the_decorator_goes_above_task(declared: ModuleType) -> None:
    with pytest.raises(TypeError, match="put it above @task"):
        declarations.periodic(every=60)(declared.not_a_task)
    with pytest.raises(TypeError, match="unknown option"):
        declarations.periodic(every=60, colour="blue")


@override_settings(JOBSCHEDULER_TASK_SCHEDULES={"nightly-report": TIDY_UP})
def test_a_duplicate_name_is_a_system_check_error_and_syncs_nothing(declared: ModuleType) -> None:
    errors = checks.check_declarations()
    assert [error.id for error in errors] == ["schedules.E001"]
    assert "'nightly-report' is declared 2 times" in errors[0].msg
    with pytest.raises(ImproperlyConfigured, match="declared 2 times"):
        sync()
    assert not Job.objects.filter(code_key__isnull=False).exists()


@override_settings(
    JOBSCHEDULER_TASK_SCHEDULES={
        "bad-cron": {"task": "schedules.tests.declared_app.tasks.tidy_up", "cron": "61 * * * *"},
        "no-task": {"task": "schedules.tests.declared_app.tasks.not_a_task", "every": 60},
        "two-whens": {"task": "schedules.tests.declared_app.tasks.tidy_up", "every": 60, "cron": "@daily"},
        "odd-option": {"task": "schedules.tests.declared_app.tasks.tidy_up", "every": 60, "colour": "blue"},
        "naive": {"task": "schedules.tests.declared_app.tasks.tidy_up", "at": datetime(2026, 5, 1)},
    }
)
def test_invalid_declarations_are_reported_by_the_checks(declared: ModuleType) -> None:
    problems = "\n".join(error.msg for error in checks.check_declarations())
    assert "['bad-cron']: expression:" in problems
    assert "['no-task']: 'schedules.tests.declared_app.tasks.not_a_task' is not a Django Task" in problems
    assert "['two-whens']: Declare exactly one of every" in problems
    assert "['odd-option']: Unknown option(s): colour." in problems
    assert "['naive']: at must be an aware datetime" in problems


# --- syncing -------------------------------------------------------------------------------


@override_settings(JOBSCHEDULER_TASK_SCHEDULES={"tidy-up": TIDY_UP})
def test_sync_creates_a_job_and_a_schedule_per_declaration(declared: ModuleType, due_index: DueIndex) -> None:
    report = sync()
    assert report.created == ["nightly-report", "tidy-up"] and not report.errors

    job, schedule = stored("nightly-report")
    assert job.name == "nightly-report" and job.target_type == "python"
    assert job.target == {"task": f"{TASKS}.send_report", "args": [], "kwargs": {"kind": "daily"}}
    assert (schedule.job_id, schedule.kind, schedule.expression) == (job.pk, "cron", "0 2 * * *")
    assert schedule.timezone == "Europe/London"
    assert schedule.next_run_at == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 02:00 GMT
    assert due_index.state(str(schedule.pk))["gen"] == "1"
    assert due_index.due_score(str(schedule.pk)) == to_epoch_ms(schedule.next_run_at)

    tidy, every = stored("tidy-up")
    assert (tidy.max_attempts, tidy.target["kwargs"], every.interval_seconds) == (2, {"days": 30}, 300)

    owner = User.objects.get(username=DEFAULT_CODE_OWNER)
    assert job.owner_id == tidy.owner_id == owner.pk
    # Held to what operators are, yet nobody signs in as it.
    assert owner.is_superuser and owner.is_active and not owner.is_staff and not owner.has_usable_password()


@override_settings(JOBSCHEDULER_TASK_SCHEDULES={"tidy-up": TIDY_UP})
def test_a_second_sync_changes_nothing(declared: ModuleType) -> None:
    sync()
    before = {schedule.pk: schedule.generation for schedule in Schedule.objects.all()}
    report = sync()
    assert not report.changed and sorted(report.unchanged) == ["nightly-report", "tidy-up"]
    assert {schedule.pk: schedule.generation for schedule in Schedule.objects.all()} == before
    assert Job.objects.count() == 2 and [item.action for item in differences()] == ["none", "none"]


def test_a_changed_declaration_is_updated_in_place(declared: ModuleType, due_index: DueIndex) -> None:
    with override_settings(JOBSCHEDULER_TASK_SCHEDULES={"tidy-up": TIDY_UP}):
        sync()
    job, schedule = stored("tidy-up")
    report_job, report_schedule = stored("nightly-report")

    changed = {"tidy-up": {**TIDY_UP, "every": timedelta(minutes=10), "kwargs": {"days": 90}}}
    with override_settings(JOBSCHEDULER_TASK_SCHEDULES=changed), declarations.isolated():
        # The decorator's declaration changed too: another time, in another zone.
        declarations.periodic(cron="30 3 * * *", timezone="UTC", name="nightly-report")(declared.send_report)
        report = sync()
    assert sorted(report.updated) == ["nightly-report", "tidy-up"] and not report.restored
    assert "updated tidy-up (target, interval_seconds)" in report.lines()

    job_after, schedule_after = stored("tidy-up")
    assert (job_after.pk, schedule_after.pk) == (job.pk, schedule.pk)
    assert schedule_after.generation == schedule.generation + 1
    assert (schedule_after.interval_seconds, job_after.target["kwargs"]) == (600, {"days": 90})
    assert due_index.state(str(schedule.pk))["interval"] == "600000"

    report_after = Schedule.objects.get(pk=report_schedule.pk)
    assert (report_after.expression, report_after.timezone) == ("30 3 * * *", "UTC")
    assert Job.objects.get(pk=report_job.pk).target["kwargs"] == {}
    assert due_index.state(str(report_schedule.pk))["expression"] == "30 3 * * *"


def test_a_removed_declaration_is_paused_then_resumed_or_pruned(declared: ModuleType, due_index: DueIndex) -> None:
    with override_settings(JOBSCHEDULER_TASK_SCHEDULES={"tidy-up": TIDY_UP}):
        sync()
    job, schedule = stored("tidy-up")

    report = sync()  # the setting no longer declares it
    assert report.orphaned == ["tidy-up"]
    schedule.refresh_from_db()
    assert schedule.paused and schedule.pause_reason == ORPHANED and schedule.next_run_at is None
    assert due_index.due_score(str(schedule.pk)) is None
    assert Job.objects.filter(pk=job.pk).exists()  # its run history stays
    assert not sync().changed  # paused once

    with override_settings(JOBSCHEDULER_TASK_SCHEDULES={"tidy-up": TIDY_UP}):
        report = sync()  # declared again (a rolled-back deploy): the same schedule goes on
    assert report.updated == ["tidy-up"]
    schedule.refresh_from_db()
    assert not schedule.paused and schedule.pause_reason == "" and schedule.next_run_at is not None
    assert stored("tidy-up")[0].pk == job.pk

    report = sync(prune=True)
    assert report.pruned == ["tidy-up"]
    assert not Job.objects.filter(pk=job.pk).exists() and not Schedule.objects.filter(pk=schedule.pk).exists()
    assert due_index.state(str(schedule.pk)) == {}


def test_a_users_pause_survives_a_sync(declared: ModuleType) -> None:
    sync()
    _, schedule = stored("nightly-report")
    services.schedule_pause(schedule, now=now)
    with declarations.isolated():
        declarations.periodic(cron="0 4 * * *", name="nightly-report")(declared.send_report)
        assert sync().updated == ["nightly-report"]
    schedule.refresh_from_db()
    assert schedule.paused and schedule.expression == "0 4 * * *"


def run_at_once(count: int, work: Callable[[], Any]) -> list[Any]:
    """Run ``work`` in ``count`` threads started together; their results (or exceptions)."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = work()
        except Exception as error:
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@override_settings(JOBSCHEDULER_TASK_SCHEDULES={"tidy-up": TIDY_UP})
def test_syncs_at_once_without_the_lock_still_make_one_of_each(declared: ModuleType) -> None:
    found = declarations.declared()
    results = run_at_once(3, lambda: sync_unlocked(found, now=now))
    assert not [result for result in results if isinstance(result, Exception)], results
    assert not any(result.errors for result in results)
    for key in ("nightly-report", "tidy-up"):
        assert Job.objects.filter(code_key=key).count() == 1
        assert Schedule.objects.filter(code_key=key).count() == 1
    assert User.objects.filter(username=DEFAULT_CODE_OWNER).count() == 1


@override_settings(JOBSCHEDULER_TASK_SCHEDULES={"tidy-up": TIDY_UP})
def test_syncs_at_once_take_turns(declared: ModuleType, coordination: Coordination) -> None:
    results = run_at_once(2, lambda: sync())
    created = sorted(key for result in results for key in result.created)
    assert created == ["nightly-report", "tidy-up"]  # one created both; the other waited, then found them
    assert Schedule.objects.filter(code_key__isnull=False).count() == 2
    assert coordination.client.get(coordination.lock_key(LOCK)) is None  # freed


def test_a_held_lock_makes_a_sync_skip_after_waiting(declared: ModuleType, coordination: Coordination) -> None:
    assert coordination.try_lock(LOCK, "someone-else", 60_000)
    report = sync(wait_seconds=0)
    assert report.skipped and not Job.objects.exists()


def test_nothing_declared_and_nothing_stored_is_a_quick_no_op(db: Any) -> None:
    with declarations.isolated():
        assert not sync().changed
    assert not User.objects.filter(username=DEFAULT_CODE_OWNER).exists()


@override_settings(JOBSCHEDULER_CODE_OWNER="ops-robot")
def test_an_existing_code_owner_is_used_as_it_is(declared: ModuleType, plain_user: User) -> None:
    plain_user.username = "ops-robot"
    plain_user.save()
    report = sync()  # a user without jobs.create_python_jobs: refused, as through the API
    assert "create_python_jobs" in report.errors["nightly-report"]
    assert not Job.objects.filter(code_key__isnull=False).exists()


def test_the_scheduler_syncs_at_start(declared: ModuleType) -> None:
    sync_declared_at_start()
    assert Schedule.objects.filter(code_key="nightly-report").exists()


# --- drift ---------------------------------------------------------------------------------


def test_drift_is_warned_about_and_undone(declared: ModuleType, due_index: DueIndex) -> None:
    sync()
    job, schedule = stored("nightly-report")
    # Edited around everything: straight into MongoDB.
    mongo.collection(Schedule).update_one({"_id": schedule.pk}, {"$set": {"expression": "* * * * *"}})
    mongo.collection(Job).update_one({"_id": job.pk}, {"$set": {"timeout_seconds": 5}})

    warnings = checks.check_declared_drift(databases=["default"])
    assert [warning.id for warning in warnings] == ["schedules.W001"]
    assert "nightly-report: differs from its declaration in code (timeout_seconds, expression)" in warnings[0].msg
    assert checks.check_declared_drift(databases=None) == []  # only with --database

    out = StringIO()
    call_command("sync_schedules", stdout=out)
    assert "WARNING: nightly-report differed from its declaration in code (timeout_seconds, expression)" in (
        out.getvalue()
    )
    job, schedule = stored("nightly-report")
    assert (schedule.expression, job.timeout_seconds) == ("0 2 * * *", 300)
    assert due_index.state(str(schedule.pk))["expression"] == "0 2 * * *"
    assert checks.check_declared_drift(databases=["default"]) == []


def test_sync_schedules_prints_what_it_changed(declared: ModuleType) -> None:
    out = StringIO()
    call_command("sync_schedules", stdout=out)
    assert "created nightly-report" in out.getvalue()
    again = StringIO()
    call_command("sync_schedules", stdout=again)
    assert "declared in code: 1 in step, nothing to change" in again.getvalue()


# --- refusing edits through the services, the API and the admin ---------------------------


def test_services_refuse_to_redefine_what_code_declares(declared: ModuleType) -> None:
    sync()
    job, schedule = stored("nightly-report")
    with pytest.raises(ValidationError, match="declared in code"):
        services.schedule_update(schedule, expression="0 3 * * *", now=now)
    with pytest.raises(ValidationError, match="declared in code"):
        services.schedule_delete(schedule)
    with pytest.raises(ValidationError, match="declared in code"):
        services.schedule_create(job=job, kind="fixed", interval_seconds=60, now=now)
    with pytest.raises(ValidationError, match="declared in code"):
        job_services.job_update(job, timeout_seconds=5)
    with pytest.raises(ValidationError, match="declared in code"):
        job_services.job_delete(job)
    # What runs them stays the users': pausing, resuming, turning the job off and on.
    services.schedule_pause(schedule, now=now)
    services.schedule_resume(schedule, now=now)
    job_services.job_update(job, enabled=False)
    job_services.job_update(job, enabled=True, timeout_seconds=300)  # unchanged values pass
    assert differences()[0].action == "none"


@pytest.fixture
def root(db: Any) -> User:
    return User.objects.create_superuser("root", "root@example.com", "root-password-1")


@pytest.fixture
def root_api(root: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=root).key}")
    return client


def test_the_api_shows_the_key_and_refuses_edits(declared: ModuleType, root_api: APIClient) -> None:
    sync()
    job, schedule = stored("nightly-report")
    shown = root_api.get(f"/api/schedules/{schedule.pk}/")
    assert shown.json()["code_key"] == "nightly-report"
    assert root_api.get(f"/api/jobs/{job.pk}/").json()["code_key"] == "nightly-report"

    edit = root_api.patch(f"/api/schedules/{schedule.pk}/", {"expression": "0 3 * * *"}, format="json")
    assert edit.status_code == 400 and "declared in code" in edit.json()["expression"][0]
    renamed = root_api.patch(f"/api/schedules/{schedule.pk}/", {"code_key": "mine"}, format="json")
    assert renamed.status_code == 400 and renamed.json() == {"code_key": ["Read-only field."]}
    assert Schedule.objects.get(pk=schedule.pk).code_key == "nightly-report"
    assert root_api.delete(f"/api/schedules/{schedule.pk}/").status_code == 400
    added = root_api.post(
        "/api/schedules/", {"job": str(job.pk), "kind": "fixed", "interval_seconds": 60}, format="json"
    )
    assert added.status_code == 400 and "declared in code" in added.json()["job"][0]
    assert root_api.patch(f"/api/jobs/{job.pk}/", {"timeout_seconds": 5}, format="json").status_code == 400
    assert root_api.delete(f"/api/jobs/{job.pk}/").status_code == 400

    assert root_api.post(f"/api/schedules/{schedule.pk}/pause/", {}, format="json").status_code == 200
    assert root_api.patch(f"/api/jobs/{job.pk}/", {"enabled": False}, format="json").status_code == 200
    assert Schedule.objects.get(pk=schedule.pk).expression == "0 2 * * *"


def test_the_admin_marks_them_and_lets_only_pausing_through(declared: ModuleType, root: User) -> None:
    sync()
    job, schedule = stored("nightly-report")
    client = Client()
    client.force_login(root)

    listed = client.get(reverse("admin:schedules_schedule_changelist"), {"declared_in_code": "yes"})
    assert listed.status_code == 200 and list(listed.context["cl"].result_list) == [schedule]
    assert client.get(reverse("admin:jobs_job_changelist"), {"declared_in_code": "no"}).context["cl"].result_count == 0

    page = client.get(reverse("admin:schedules_schedule_change", args=[schedule.pk]))
    assert page.status_code == 200 and "Declared in code as <code>nightly-report</code>" in page.content.decode()
    assert set(page.context["adminform"].form.fields) == {"paused", "paused_until"}
    posted = client.post(
        reverse("admin:schedules_schedule_change", args=[schedule.pk]),
        {"paused": "on", "expression": "0 3 * * *"},
    )
    assert posted.status_code == 302, posted.context and posted.context["errors"]
    schedule.refresh_from_db()
    assert schedule.paused and schedule.expression == "0 2 * * *"
    assert client.get(reverse("admin:schedules_schedule_delete", args=[schedule.pk])).status_code == 403

    job_page = client.get(reverse("admin:jobs_job_change", args=[job.pk]))
    assert job_page.status_code == 200
    assert "Declared in code as <code>nightly-report</code>" in job_page.content.decode()
    assert set(job_page.context["adminform"].form.fields) == {"enabled"}
    assert client.get(reverse("admin:jobs_job_delete", args=[job.pk])).status_code == 403

    add = client.post(
        reverse("admin:schedules_schedule_add"),
        {"job": str(job.pk), "kind": "fixed", "interval_seconds": "60", "timezone": "UTC", "jitter_seconds": "0"},
    )
    assert add.status_code == 200 and "declared in code" in str(add.context["adminform"].form.errors["job"])
    assert Schedule.objects.filter(job=job).count() == 1
