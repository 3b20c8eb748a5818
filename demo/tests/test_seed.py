"""demo.seed and seed_demo: the demo user, token and jobs, created once however often it runs."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from demo import tasks as demo_tasks
from demo.receiver import DEFAULT_PORT, DEMO_SECRET
from demo.seed import DEMO_JOBS, WEBHOOK_JOB, receiver_url, seed_demo
from demo.tasks import CLOCK_SCHEDULE
from jobs.models import Job
from jobs.services import job_update
from schedules.models import Schedule
from schedules.services import schedule_delete


@pytest.fixture(autouse=True)
def _loopback_webhooks_allowed(settings: Any) -> None:
    # As the run command allows them (devtools.devserver), for the demo receiver.
    settings.JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]


def test_seeds_user_token_and_jobs_through_the_services(db: Any, due_index: Any) -> None:
    seed = seed_demo("pw-one")
    assert seed.user.is_superuser and seed.user.is_staff
    assert authenticate(username="demo", password="pw-one") == seed.user
    assert Token.objects.get(user=seed.user).key == seed.token
    assert Job.objects.filter(owner=seed.user).count() == len(DEMO_JOBS) == len(seed.created_jobs)
    schedules = {s.job.name: s for s in Schedule.objects.select_related("job")}
    fixed = schedules["Hello every 10 seconds"]
    assert (fixed.kind, fixed.interval_seconds, fixed.next_run_at is not None) == ("fixed", 10, True)
    london = schedules["Hello every minute in London"]
    assert (london.expression, london.timezone) == ("*/1 * * * *", "Europe/London")
    for schedule in schedules.values():  # mirrored: written through schedule_create
        assert due_index.state(str(schedule.pk))["gen"] == "1"


def test_seeding_applies_the_schedule_the_demo_declares_in_code(db: Any, due_index: Any) -> None:
    seed = seed_demo()
    assert seed.declared == [f"created {CLOCK_SCHEDULE}"]
    schedule = Schedule.objects.select_related("job").get(code_key=CLOCK_SCHEDULE)
    job = schedule.job
    # demo.tasks.clock's @periodic, saved through the services' checks (a Task of an installed app).
    assert (job.code_key, job.target_type) == (CLOCK_SCHEDULE, "python")
    assert job.target == {"task": "demo.tasks.clock", "args": [], "kwargs": {}}
    assert job.timeout_seconds == 30 and job.owner != seed.user  # the code owner's, not the demo user's
    assert (schedule.kind, schedule.interval_seconds, schedule.paused) == ("fixed", 300, False)
    assert schedule.next_run_at is not None and due_index.state(str(schedule.pk))["gen"] == "1"
    assert demo_tasks.clock.call().startswith("it is ")


def test_the_webhook_job_runs_against_the_local_receiver(db: Any) -> None:
    seed_demo()
    webhook = Schedule.objects.select_related("job").get(job__name=WEBHOOK_JOB)
    assert not webhook.paused and webhook.next_run_at is not None
    assert (webhook.kind, webhook.interval_seconds) == ("fixed", 15)
    job = webhook.job
    assert job.enabled and job.target_type == "http"
    assert job.target["url"] == receiver_url(DEFAULT_PORT) == f"http://127.0.0.1:{DEFAULT_PORT}/demo-webhook"
    assert job.secret == DEMO_SECRET  # what demo_receiver checks signatures with by default


def test_no_webhook_job_when_loopback_webhooks_are_refused(db: Any, settings: Any) -> None:
    settings.JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS = ["hooks.example.com"]
    seed = seed_demo()
    assert not Job.objects.filter(name=WEBHOOK_JOB).exists()
    assert len(seed.created_jobs) == len(DEMO_JOBS) - 1


def test_the_webhook_follows_the_receiver_to_another_port(db: Any) -> None:
    seed_demo(receiver_port=9001)
    assert Job.objects.get(name=WEBHOOK_JOB).target["url"] == "http://127.0.0.1:9001/demo-webhook"
    again = seed_demo(receiver_port=9002)
    assert again.created_jobs == []
    job = Job.objects.get(name=WEBHOOK_JOB)
    assert job.target["url"] == "http://127.0.0.1:9002/demo-webhook"
    assert job.target["body"] == '{"hello": "from jobscheduler"}'  # only the URL changed
    # Pointed somewhere else by the user: theirs, left alone.
    job_update(job, target={**job.target, "url": "https://example.com/hook"})
    seed_demo(receiver_port=9003)
    assert Job.objects.get(name=WEBHOOK_JOB).target["url"] == "https://example.com/hook"


def test_running_twice_creates_no_duplicates(db: Any) -> None:
    first = seed_demo()
    second = seed_demo()
    assert second.created_jobs == []
    assert second.token == first.token
    assert User.objects.filter(username="demo").count() == 1
    assert Token.objects.count() == 1
    assert Job.objects.filter(code_key__isnull=True).count() == len(DEMO_JOBS)
    assert Schedule.objects.filter(code_key__isnull=True).count() == len(DEMO_JOBS)
    assert Schedule.objects.filter(code_key=CLOCK_SCHEDULE).count() == 1  # and the one declared in code
    assert second.declared == []  # in step already


def test_an_edited_demo_job_is_left_alone(db: Any) -> None:
    seed_demo()
    job = Job.objects.get(name=WEBHOOK_JOB)
    job_update(job, enabled=False, secret="mine")
    for schedule in job.schedules.all():
        schedule_delete(schedule)
    seed_demo()
    job.refresh_from_db()
    assert (job.enabled, job.secret, job.schedules.count()) == (False, "mine", 0)


def test_a_new_password_replaces_the_old_one(db: Any) -> None:
    seed_demo("first-password")
    seed_demo("second-password")
    assert authenticate(username="demo", password="first-password") is None
    assert authenticate(username="demo", password="second-password") is not None


def test_command_prints_login_and_token(db: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("DEMO_PASSWORD", "from-the-env")
    monkeypatch.setenv("DEMO_RECEIVER_PORT", "9010")
    out = StringIO()
    call_command("seed_demo", stdout=out)
    token = Token.objects.get(user__username="demo").key
    assert "demo / from-the-env" in out.getvalue()
    assert token in out.getvalue()
    assert Job.objects.get(name=WEBHOOK_JOB).target["url"] == "http://127.0.0.1:9010/demo-webhook"
    again = StringIO()
    call_command("seed_demo", stdout=again)
    assert "none (already there)" in again.getvalue()
    assert f"Schedules declared in code: created {CLOCK_SCHEDULE}" in out.getvalue()
    assert "Schedules declared in code: in step" in again.getvalue()
