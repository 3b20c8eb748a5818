"""seed_demo: the demo user, token and jobs, created once however often it runs."""

from __future__ import annotations

from io import StringIO
from typing import Any

from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from jobs.management.commands.seed_demo import DEMO_JOBS, seed_demo
from jobs.models import Job
from schedules.models import Schedule


def test_seeds_user_token_and_jobs_through_the_services(db: Any, store: Any) -> None:
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
    webhook = schedules["Webhook example (disabled)"]
    assert webhook.paused and not webhook.job.enabled and webhook.next_run_at is None
    for schedule in schedules.values():  # mirrored: written through schedule_create
        assert store.state(str(schedule.pk))["gen"] == "1"


def test_running_twice_creates_no_duplicates(db: Any) -> None:
    first = seed_demo()
    second = seed_demo()
    assert second.created_jobs == []
    assert second.token == first.token
    assert User.objects.filter(username="demo").count() == 1
    assert Token.objects.count() == 1
    assert Job.objects.count() == len(DEMO_JOBS)
    assert Schedule.objects.count() == len(DEMO_JOBS)


def test_a_new_password_replaces_the_old_one(db: Any) -> None:
    seed_demo("first-password")
    seed_demo("second-password")
    assert authenticate(username="demo", password="first-password") is None
    assert authenticate(username="demo", password="second-password") is not None


def test_command_prints_login_and_token(db: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("DEMO_PASSWORD", "from-the-env")
    out = StringIO()
    call_command("seed_demo", stdout=out)
    token = Token.objects.get(user__username="demo").key
    assert "demo / from-the-env" in out.getvalue()
    assert token in out.getvalue()
    again = StringIO()
    call_command("seed_demo", stdout=again)
    assert "none (already there)" in again.getvalue()
