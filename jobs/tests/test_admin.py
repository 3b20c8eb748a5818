"""The admin: pages load, and every write goes through the services (so Redis is mirrored)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django import forms
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from jobs.models import Job, Run
from jobscheduler.epoch import to_epoch_ms
from schedules import services as schedule_services
from schedules.due_index import DueIndex
from schedules.models import Schedule


@pytest.fixture
def admin_user(db: Any) -> User:
    return User.objects.create_superuser("root", "root@example.com", "root-password-1")


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def job_post(name: str = "nightly", owner: User | None = None, **schedule: str) -> dict[str, str]:
    """The job form as a browser posts it, with one inline schedule form."""
    data = {
        **({"owner": str(owner.pk)} if owner else {}),
        "name": name,
        "description": "",
        "enabled": "on",
        "target_type": "python",
        "python_task": "demo.tasks.hello",
        "webhook_method": "POST",
        "timeout_seconds": "300",
        "max_attempts": "1",
        "retry_backoff_seconds": "10",
        "secret": "",
        "schedules-TOTAL_FORMS": "1",
        "schedules-INITIAL_FORMS": "0",
        "schedules-MIN_NUM_FORMS": "0",
        "schedules-MAX_NUM_FORMS": "1000",
    }
    defaults = {
        "timezone": "UTC",
        "jitter_seconds": "0",
        "misfire_policy": "skip",
        "misfire_grace_seconds": "60",
        "catchup_window_seconds": "3600",
        "catchup_max_runs": "100",
        "overlap_policy": "allow",
    }
    data.update({f"schedules-0-{key}": value for key, value in {**defaults, **schedule}.items()})
    return data


@pytest.mark.parametrize("model", ["job", "run", "schedule"])
def test_changelists_load(admin_client: Client, job: Job, model: str) -> None:
    app = "schedules" if model == "schedule" else "jobs"
    schedule_services.schedule_create(job=job, kind="cron", expression="*/5 * * * *")
    Run.objects.create(job=job, fire_key="x:1", nominal_time=datetime(2026, 1, 1, tzinfo=UTC))
    response = admin_client.get(reverse(f"admin:{app}_{model}_changelist"))
    assert response.status_code == 200
    searched = admin_client.get(reverse(f"admin:{app}_{model}_changelist"), {"q": "hello"})
    assert searched.status_code == 200


def test_run_changelist_filters_and_date_hierarchy(admin_client: Client, job: Job) -> None:
    Run.objects.create(job=job, fire_key="a:1", status="failed", nominal_time=datetime(2026, 1, 2, tzinfo=UTC))
    Run.objects.create(job=job, fire_key="b:1", status="succeeded", nominal_time=datetime(2026, 2, 3, tzinfo=UTC))
    url = reverse("admin:jobs_run_changelist")
    failed = admin_client.get(url, {"status__exact": "failed"})
    assert failed.status_code == 200
    assert b"a:1" in failed.content and b"b:1" not in failed.content
    by_month = admin_client.get(url, {"nominal_time__year": "2026", "nominal_time__month": "2"})
    assert by_month.status_code == 200
    assert b"b:1" in by_month.content and b"a:1" not in by_month.content


def test_runs_are_read_only(admin_client: Client, job: Job) -> None:
    run = Run.objects.create(job=job, fire_key="x:1")
    assert admin_client.get(reverse("admin:jobs_run_add")).status_code == 403
    view = admin_client.get(reverse("admin:jobs_run_change", args=[run.pk]))
    assert view.status_code == 200
    assert b'name="_save"' not in view.content
    assert admin_client.post(reverse("admin:jobs_run_delete", args=[run.pk]), {"post": "yes"}).status_code == 403
    assert Run.objects.filter(pk=run.pk).exists()


def test_add_job_with_inline_cron_schedule_mirrors_it(
    admin_client: Client, admin_user: User, due_index: DueIndex
) -> None:
    response = admin_client.post(
        reverse("admin:jobs_job_add"),
        job_post(owner=admin_user, kind="cron", expression="0 9 * * MON-FRI", timezone="Europe/London"),
    )
    assert response.status_code == 302, response.context and response.context["errors"]
    job = Job.objects.get(name="nightly")
    assert job.owner == admin_user
    schedule = Schedule.objects.get(job=job)
    assert schedule.expression == "0 9 * * MON-FRI"
    assert schedule.next_run_at is not None and schedule.generation == 1
    state = due_index.state(str(schedule.pk))
    assert state["next"] == str(to_epoch_ms(schedule.next_run_at))
    assert state["timezone"] == "Europe/London"


def test_add_job_with_fixed_schedule_defaults_its_anchor(
    admin_client: Client, admin_user: User, due_index: DueIndex
) -> None:
    data = job_post(owner=admin_user, kind="fixed", interval_seconds="30")
    response = admin_client.post(reverse("admin:jobs_job_add"), data)
    assert response.status_code == 302
    schedule = Schedule.objects.get(job__name="nightly")
    assert schedule.anchor is not None
    assert schedule.next_run_at is not None
    assert due_index.due_score(str(schedule.pk)) == to_epoch_ms(schedule.next_run_at)


def test_invalid_cron_in_inline_is_a_form_error_and_creates_nothing(
    admin_client: Client, admin_user: User, due_index: DueIndex
) -> None:
    data = job_post(owner=admin_user, kind="cron", expression="61 * * * *", timezone="Mars/Base")
    response = admin_client.post(reverse("admin:jobs_job_add"), data)
    assert response.status_code == 200
    inline_errors = response.context["inline_admin_formsets"][0].formset.errors[0]
    assert set(inline_errors) == {"expression", "timezone"}
    assert not Job.objects.exists()
    assert not Schedule.objects.exists()
    assert due_index.earliest_due_ms() is None


def test_invalid_target_is_a_form_error(admin_client: Client, admin_user: User) -> None:
    data = job_post(owner=admin_user, kind="fixed", interval_seconds="30")
    data["python_task"] = ""
    response = admin_client.post(reverse("admin:jobs_job_add"), data)
    assert response.status_code == 200
    assert "python_task" in response.context["adminform"].form.errors
    assert not Job.objects.exists()


def test_duplicate_job_name_is_a_form_error(admin_client: Client, admin_user: User) -> None:
    from jobs.services import job_create

    job_create(owner=admin_user, name="nightly", target_type="python", target={"task": "demo.tasks.hello"})
    data = job_post(owner=admin_user, kind="fixed", interval_seconds="30")
    response = admin_client.post(reverse("admin:jobs_job_add"), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert Job.objects.count() == 1
    assert not Schedule.objects.exists()


def test_edit_and_delete_inline_schedule_go_through_services(
    admin_client: Client, job: Job, due_index: DueIndex
) -> None:
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    assert schedule.anchor is not None
    page = admin_client.get(reverse("admin:jobs_job_change", args=[job.pk]))
    assert page.status_code == 200
    assert schedule.anchor.microsecond  # kept although the widget shows whole seconds
    data = job_post(name=job.name, kind="fixed", interval_seconds="120")
    data.update(
        {
            "schedules-INITIAL_FORMS": "1",
            "schedules-0-id": str(schedule.pk),
            "schedules-0-job": str(job.pk),
            "schedules-0-anchor_0": schedule.anchor.strftime("%Y-%m-%d"),
            "schedules-0-anchor_1": schedule.anchor.strftime("%H:%M:%S"),
        }
    )
    response = admin_client.post(reverse("admin:jobs_job_change", args=[job.pk]), data)
    assert response.status_code == 302, response.context and response.context["errors"]
    schedule.refresh_from_db()
    assert schedule.interval_seconds == 120 and schedule.generation == 2
    assert schedule.anchor == Schedule.objects.get(pk=schedule.pk).anchor
    assert due_index.state(str(schedule.pk))["interval"] == "120000"

    data["schedules-0-DELETE"] = "on"
    response = admin_client.post(reverse("admin:jobs_job_change", args=[job.pk]), data)
    assert response.status_code == 302
    assert not Schedule.objects.filter(pk=schedule.pk).exists()
    assert due_index.state(str(schedule.pk)) == {}


def test_unticking_enabled_stops_the_jobs_schedules(admin_client: Client, job: Job, due_index: DueIndex) -> None:
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    assert due_index.due_score(str(schedule.pk)) is not None
    data = job_post(name=job.name)
    del data["enabled"]  # an unticked checkbox is not posted
    data["schedules-TOTAL_FORMS"] = "0"
    response = admin_client.post(reverse("admin:jobs_job_change", args=[job.pk]), data)
    assert response.status_code == 302, response.context and response.context["errors"]
    assert not Job.objects.get(pk=job.pk).enabled
    assert Schedule.objects.get(pk=schedule.pk).next_run_at is None
    assert due_index.due_score(str(schedule.pk)) is None


def test_delete_job_unschedules(admin_client: Client, job: Job, due_index: DueIndex) -> None:
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    confirm = admin_client.get(reverse("admin:jobs_job_delete", args=[job.pk]))
    assert confirm.status_code == 200
    response = admin_client.post(reverse("admin:jobs_job_delete", args=[job.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Job.objects.filter(pk=job.pk).exists()
    assert due_index.state(str(schedule.pk)) == {}


def test_delete_job_with_runs_counts_them_and_takes_them_along(admin_client: Client, job: Job) -> None:
    schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    for number in range(3):
        Run.objects.create(job=job, fire_key=f"gone:{number}", status="succeeded")
    confirm = admin_client.get(reverse("admin:jobs_job_delete", args=[job.pk]))
    page = confirm.content.decode()
    assert confirm.status_code == 200
    assert "permission" not in page  # Django's own page refused: nobody may delete runs one by one
    assert "Runs: 3" in page and "Schedules: 1" in page
    response = admin_client.post(reverse("admin:jobs_job_delete", args=[job.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not Run.objects.filter(fire_key__startswith="gone:").exists()


def test_schedule_change_page_shows_description_and_preview(admin_client: Client, job: Job) -> None:
    # 02:30 every day in London: on 2026-03-29 the clocks jump from 01:00 to 02:00 at... 01:00
    # UTC, so 01:30 local falls in the gap and fires at the jump instead.
    schedule = schedule_services.schedule_create(
        job=job,
        kind="cron",
        expression="30 1 * * *",
        timezone="Europe/London",
        now=lambda: datetime(2026, 3, 25, tzinfo=UTC),
    )
    response = admin_client.get(reverse("admin:schedules_schedule_change", args=[schedule.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "At 01:30 (Europe/London)" in html
    assert html.count("<li><time datetime=") == 10
    assert "01:30:00" in html


def test_preview_marks_occurrences_moved_by_a_dst_gap(job: Job) -> None:
    from schedules.admin import render_preview

    schedule = Schedule(job=job, kind="cron", expression="30 1 * * *", timezone="Europe/London")
    html = render_preview(schedule, after=datetime(2026, 3, 27, tzinfo=UTC), count=3)
    assert "Sun 2026-03-29 02:00:00 BST" in html
    assert "moved from 01:30 by a daylight saving gap" in html
    assert "Sat 2026-03-28 01:30:00 GMT" in html


def test_pause_and_resume_actions(admin_client: Client, job: Job, due_index: DueIndex) -> None:
    schedule = schedule_services.schedule_create(job=job, kind="cron", expression="*/5 * * * *")
    url = reverse("admin:schedules_schedule_changelist")
    response = admin_client.post(url, {"action": "pause", "_selected_action": [str(schedule.pk)]})
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.paused and schedule.next_run_at is None
    assert due_index.due_score(str(schedule.pk)) is None

    admin_client.post(url, {"action": "resume", "_selected_action": [str(schedule.pk)]})
    schedule.refresh_from_db()
    assert not schedule.paused and schedule.next_run_at is not None
    assert due_index.due_score(str(schedule.pk)) == to_epoch_ms(schedule.next_run_at)


def test_schedule_admin_add_and_invalid_edit(admin_client: Client, job: Job, due_index: DueIndex) -> None:
    data = {
        "job": str(job.pk),
        "kind": "cron",
        "expression": "@hourly",
        "timezone": "UTC",
        "jitter_seconds": "0",
        "misfire_policy": "skip",
        "misfire_grace_seconds": "60",
        "catchup_window_seconds": "3600",
        "catchup_max_runs": "100",
        "overlap_policy": "allow",
    }
    response = admin_client.post(reverse("admin:schedules_schedule_add"), data)
    assert response.status_code == 302, response.context and response.context["errors"]
    schedule = Schedule.objects.get(job=job)
    assert due_index.state(str(schedule.pk))["expression"] == "@hourly"

    response = admin_client.post(
        reverse("admin:schedules_schedule_change", args=[schedule.pk]), {**data, "expression": "every day"}
    )
    assert response.status_code == 200
    assert "expression" in response.context["adminform"].form.errors
    schedule.refresh_from_db()
    assert schedule.expression == "@hourly" and schedule.generation == 1


def test_staff_see_only_their_own_jobs_and_schedules(job: Job, other_user: User) -> None:
    from django.contrib import admin
    from django.test import RequestFactory

    mine = job_create_for(other_user, "mine")
    schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=5)
    schedule_services.schedule_create(job=mine, kind="fixed", interval_seconds=7)
    request = RequestFactory().get("/admin/")
    request.user = other_user
    job_admin, schedule_admin = admin.site._registry[Job], admin.site._registry[Schedule]
    assert list(job_admin.get_queryset(request)) == [mine]
    assert [s.interval_seconds for s in schedule_admin.get_queryset(request)] == [7]
    assert "owner" not in job_admin.get_fieldsets(request)[0][1]["fields"]
    job_field = schedule_admin.get_form(request).base_fields["job"]
    assert isinstance(job_field, forms.ModelChoiceField) and job_field.queryset is not None
    assert list(job_field.queryset) == [mine]


def test_staff_add_jobs_as_themselves(request: pytest.FixtureRequest, other_user: User) -> None:
    from django.contrib.auth.models import Permission

    other_user.is_staff = True
    other_user.save()
    other_user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["jobs", "schedules"]))
    client = Client()
    client.force_login(other_user)
    add_page = client.get(reverse("admin:jobs_job_add"))
    assert add_page.status_code == 200
    assert b'name="owner"' not in add_page.content
    response = client.post(reverse("admin:jobs_job_add"), job_post(kind="fixed", interval_seconds="30"))
    assert response.status_code == 302, response.context and response.context["errors"]
    assert Job.objects.get(name="nightly").owner == other_user


def job_create_for(owner: User, name: str) -> Job:
    from jobs.services import job_create

    return job_create(owner=owner, name=name, target_type="python", target={"task": "demo.tasks.hello"})


def test_bulk_delete_action_unschedules_each(admin_client: Client, job: Job, due_index: DueIndex) -> None:
    schedules = [schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=n) for n in (5, 6)]
    ids = [str(schedule.pk) for schedule in schedules]
    url = reverse("admin:schedules_schedule_changelist")
    confirm = admin_client.post(url, {"action": "delete_selected", "_selected_action": ids})
    assert confirm.status_code == 200
    response = admin_client.post(url, {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert response.status_code == 302
    assert not Schedule.objects.exists()
    assert all(due_index.state(schedule_id) == {} for schedule_id in ids)


def test_the_task_chooser_lists_discovered_tasks_with_their_docstrings(admin_client: Client) -> None:
    page = admin_client.get(reverse("admin:jobs_job_add")).content.decode()
    assert 'name="python_task"' in page
    assert "demo.tasks.hello: The demo job: says hello, so a newcomer sees a run succeed." in page
    assert "demo.tasks.greet_later: An async Task: awaited in the run process." in page


def test_a_chosen_task_sets_the_targets_task_and_keeps_its_arguments(admin_client: Client, admin_user: User) -> None:
    data = job_post("chosen", owner=admin_user)
    data.update(python_task="demo.tasks.echo", python_args="[1]", python_kwargs='{"a": 2}')
    response = admin_client.post(reverse("admin:jobs_job_add"), data)
    assert response.status_code == 302, (
        response.context["adminform"].form.errors,
        response.context["inline_admin_formsets"][0].formset.errors,
    )
    job = Job.objects.get(name="chosen")
    assert job.target == {"task": "demo.tasks.echo", "args": [1], "kwargs": {"a": 2}}
    page = admin_client.get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()
    assert '<option value="demo.tasks.echo" selected>' in page


def test_a_task_outside_the_discovered_ones_is_refused(admin_client: Client, admin_user: User) -> None:
    # The chooser offers discovered Tasks only; a forged post is refused before the target check.
    data = job_post("outside", owner=admin_user)
    data["python_task"] = "os.system"
    response = admin_client.post(reverse("admin:jobs_job_add"), data)
    assert response.status_code == 200
    assert "python_task" in response.context["adminform"].form.errors
    assert not Job.objects.filter(name="outside").exists()
