"""import_celery_beat on a team's django-celery-beat database (SQLite and PostgreSQL: its 2.9.0
tables, schedules/tests/beat_sample.py) with every schedule type, and on a beat_schedule.

PostgreSQL is the one at 127.0.0.1:5432 (trust, user postgres): each test gets a database of
its own, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import io
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from jobs.models import Job
from jobs.services import job_create
from schedules.models import Schedule
from schedules.tests import beat_sample

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = ("127.0.0.1", 5432)
BROKER = override_settings(JOBSCHEDULER_CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//")


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    with contextlib.suppress(OSError), socket.create_connection(POSTGRES, timeout=1):
        import psycopg

        name = f"jstest_beat_{uuid.uuid4().hex[:8]}"
        admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgres://postgres@127.0.0.1:5432/{name}"
        finally:
            with psycopg.connect(admin, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    pytest.skip("no PostgreSQL answers at 127.0.0.1:5432")


@pytest.fixture(params=["sqlite", "postgresql"])
def beat_database(request: Any, tmp_path: Path) -> Iterator[str]:
    """The URL of a django-celery-beat database holding the sample entries."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'beat.sqlite3'}"
        beat_sample.create(url)
        yield url
        return
    with postgres_database() as url:
        beat_sample.create(url)
        yield url


def run(*args: str) -> tuple[str, str | None]:
    """The command's output, and its error if it ended with one."""
    out = io.StringIO()
    try:
        call_command("import_celery_beat", *args, "--owner", "alice", stdout=out)
    except CommandError as error:
        return out.getvalue(), str(error)
    return out.getvalue(), None


def imported(user: Any) -> dict[str, tuple[Job, Schedule]]:
    return {job.name: (job, job.schedules.get()) for job in Job.objects.filter(owner=user)}


REFUSED = {
    "first monday": "restricts both day_of_month (1-7) and day_of_week (1)",
    "lights at sunset": "solar schedules have no equivalent here",
    "too fast": "it runs every 0.5 seconds",
    "broken args": "its args are not a JSON list",
}


@BROKER
def test_a_dry_run_prints_the_plan_and_changes_nothing(user, beat_database):
    out, error = run("--database-url", beat_database, "--dry-run")
    assert error is None
    assert "create  ping every 30s (proj.tasks.ping): Every 30 seconds" in out
    assert "create  cleanup every 2h (proj.tasks.cleanup): Every 2 hours, paused" in out
    assert "create  nightly report (proj.tasks.report): At 02:30 (Europe/Paris)" in out
    assert "create  new year (proj.tasks.greet): Once, at 2031-01-01 12:00 (UTC)" in out
    for name, reason in REFUSED.items():
        assert f"refuse  {name} " in out and reason in out
    assert "10 entries: 6 would be created, 0 would be updated, 0 unchanged, 4 not imported." in out
    assert not Job.objects.filter(owner=user).exists()


@BROKER
def test_the_import_makes_matching_jobs_and_schedules_reports_the_rest_and_reruns_update(user, beat_database):
    out, error = run("--database-url", beat_database)
    assert error == "4 entries were not imported (listed above with the reason)."
    jobs = imported(user)
    assert sorted(jobs) == [
        "cleanup every 2h",
        "new year",
        "nightly report",
        "ping every 30s",
        "warm up once",
        "weekday digest",
    ]
    job, schedule = jobs["ping every 30s"]
    assert (job.target_type, job.description) == ("celery", "Pings the upstream.")
    assert job.target == {
        "task": "proj.tasks.ping",
        "args": [1, 2],
        "kwargs": {"source": "beat"},
        "queue": "fast",
        "priority": 5,
        "headers": {"team": "ops"},
        "expires": 20,
    }
    assert (schedule.kind, schedule.interval_seconds, schedule.paused) == ("fixed", 30, False)
    assert schedule.anchor == datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)  # the phase of beat's last run
    assert schedule.misfire_policy == "run_once"
    assert schedule.next_run_at is not None and (schedule.next_run_at - schedule.anchor).total_seconds() % 30 == 0

    job, schedule = jobs["cleanup every 2h"]
    assert (schedule.kind, schedule.interval_seconds, schedule.paused) == ("fixed", 7200, True)

    job, schedule = jobs["nightly report"]
    assert job.target == {
        "task": "proj.tasks.report",
        "kwargs": {"kind": "daily"},
        "exchange": "reports",
        "routing_key": "reports.daily",
    }
    assert (schedule.kind, schedule.expression, schedule.timezone) == ("cron", "30 2 * * *", "Europe/Paris")
    assert schedule.start_at == datetime(2026, 2, 1, tzinfo=UTC)
    assert schedule.end_at == datetime(2032, 1, 1, tzinfo=UTC)

    _, schedule = jobs["weekday digest"]
    assert (schedule.expression, schedule.timezone) == ("0 9 * * mon-fri", "America/New_York")

    _, schedule = jobs["new year"]
    assert (schedule.kind, schedule.anchor, schedule.max_runs) == ("at", datetime(2031, 1, 1, 12, tzinfo=UTC), None)
    assert schedule.next_run_at == schedule.anchor

    _, schedule = jobs["warm up once"]
    assert (schedule.kind, schedule.interval_seconds, schedule.max_runs) == ("fixed", 600, 1)

    for name, reason in REFUSED.items():
        assert f"refuse  {name} " in out and reason in out

    # Again: nothing new, nothing changed.
    out, error = run("--database-url", beat_database)
    assert "10 entries: 0 created, 0 updated, 6 unchanged, 4 not imported." in out
    assert Job.objects.filter(owner=user).count() == 6
    assert Schedule.objects.filter(job__in=Job.objects.filter(owner=user)).count() == 6

    # The team edits beat meanwhile: the next import follows.
    beat_sample.edit(beat_database)
    out, error = run("--database-url", beat_database)
    assert "10 entries: 0 created, 3 updated, 3 unchanged, 4 not imported." in out
    assert "update  ping every 30s (proj.tasks.ping): Every 45 seconds (changed: interval_seconds)" in out
    assert "update  weekday digest (proj.tasks.digest)" in out and "(changed: paused)" in out
    assert "(changed: end_at, paused)" in out
    jobs = imported(user)
    assert len(jobs) == 6
    _, schedule = jobs["ping every 30s"]
    assert schedule.interval_seconds == 45
    assert schedule.anchor == datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)  # the grid kept its phase
    assert jobs["weekday digest"][1].paused and not jobs["cleanup every 2h"][1].paused


@BROKER
def test_paused_imports_everything_paused_until_imported_again(user, tmp_path):
    url = f"sqlite:///{tmp_path / 'beat.sqlite3'}"
    beat_sample.create(url)
    run("--database-url", url, "--paused")
    assert all(schedule.paused for _, schedule in imported(user).values())
    out, _ = run("--database-url", url)
    assert "0 created, 5 updated, 1 unchanged" in out  # all but the one beat had disabled resume
    assert [name for name, (_, schedule) in imported(user).items() if schedule.paused] == ["cleanup every 2h"]


def test_a_database_alias_must_exist(user):
    _, error = run("--database", "no_such_alias", "--dry-run")
    assert error == "No database alias 'no_such_alias' in DATABASES."


@BROKER
def test_a_beat_schedule_dict_from_a_module_is_imported(user):
    out, error = run("--from-module", "schedules.tests.beat_schedule_sample:app")
    assert error == "2 entries were not imported (listed above with the reason)."
    jobs = imported(user)
    assert sorted(jobs) == ["every minute", "hourly", "poll", "workday mornings"]
    job, schedule = jobs["every minute"]
    assert job.target == {"task": "proj.tasks.tick", "args": [1], "queue": "ticks", "expires": 30}
    assert (schedule.kind, schedule.interval_seconds) == ("fixed", 60)
    job, schedule = jobs["hourly"]
    assert (job.target["kwargs"], schedule.interval_seconds) == ({"x": 1}, 3600)
    _, schedule = jobs["workday mornings"]
    assert (schedule.expression, schedule.timezone) == ("15 7,8 * * mon-fri", "Europe/Berlin")
    job, schedule = jobs["poll"]
    assert (job.target["priority"], schedule.interval_seconds) == (3, 5)
    assert "note: options not carried over: soft_time_limit" in out
    assert "refuse  dusk (proj.tasks.lights): it runs at dusk at (52.52, 13.4)" in out
    assert "refuse  half a second (proj.tasks.fast): it runs every 0.5 seconds" in out


@BROKER
def test_a_job_of_the_same_name_that_is_not_an_imported_one_is_left_alone(user):
    mine = job_create(owner=user, name="hourly", target_type="python", target={"task": "demo.tasks.hello"})
    out, _ = run("--from-module", "schedules.tests.beat_schedule_sample:app")
    assert "refuse  hourly (proj.tasks.hourly): a job of this name is a python job; left alone" in out
    mine.refresh_from_db()
    assert (mine.target_type, mine.target) == ("python", {"task": "demo.tasks.hello"})


@override_settings(JOBSCHEDULER_CELERY_BROKER_URL="", JOBSCHEDULER_CELERY_APP="")
def test_without_a_broker_only_a_dry_run_is_possible(user):
    out, error = run("--from-module", "schedules.tests.beat_schedule_sample:app")
    assert error is not None and "JOBSCHEDULER_CELERY_BROKER_URL" in error
    assert not Job.objects.filter(owner=user).exists()
    out, error = run("--from-module", "schedules.tests.beat_schedule_sample:app", "--dry-run")
    assert "4 would be created" in out
