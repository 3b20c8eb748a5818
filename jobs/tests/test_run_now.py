"""Run now (service, admin actions) and run retention (purge_runs), against real MongoDB and Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from jobs.models import Job, Run
from jobs.runqueue import RunQueue
from jobs.services import job_create, run_now, runs_purge
from jobscheduler.epoch import to_epoch_ms
from schedules import services as schedule_services
from schedules.models import Schedule

# On a single Redis and on a Redis Cluster (conftest.py: redis_mode).
pytestmark = pytest.mark.redis_modes("single", "cluster")

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def stream_entries(runqueue: RunQueue, job: Job) -> list[dict[str, str]]:
    entries: Any = runqueue.client.xrange(runqueue.stream_key(runqueue.keyspace.shard_of(str(job.pk))))
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


@pytest.fixture
def admin_client(db: Any) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "root-password-1"))
    return client


def test_run_now_puts_a_manual_entry_on_the_jobs_shard_and_records_it_pending(user, job, runqueue):
    key = run_now(job, user=user, now=lambda: T0)
    prefix = f"manual:{job.pk}:"
    assert key.startswith(prefix) and len(key) == len(prefix) + 32
    assert stream_entries(runqueue, job) == [
        {"fk": key, "s": "", "j": str(job.pk), "n": str(to_epoch_ms(T0)), "t": "manual"}
    ]
    run = Run.objects.get(fire_key=key)
    assert (run.status, run.trigger, run.attempt, run.nominal_time, run.worker) == ("pending", "manual", 1, T0, "")
    assert run_now(job, user=user) != key  # each call is its own run


def test_run_now_for_a_schedule_leaves_the_schedule_where_it_was(user, job, due_index, runqueue):
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    mirrored = due_index.due_score(str(schedule.pk))
    key = run_now(job, schedule=schedule, user=user)
    assert stream_entries(runqueue, job)[0]["s"] == str(schedule.pk)
    assert Run.objects.get(fire_key=key).schedule_id == schedule.pk
    assert due_index.due_score(str(schedule.pk)) == mirrored
    saved = Schedule.objects.get(pk=schedule.pk)
    assert (saved.next_run_at, saved.run_count) == (schedule.next_run_at, 0)


def test_run_now_checks_the_schedule_and_the_user(user, other_user, job, runqueue):
    other_job = job_create(owner=other_user, name="theirs", target_type="python", target={"task": "demo.tasks.hello"})
    theirs = schedule_services.schedule_create(job=other_job, kind="fixed", interval_seconds=60)
    with pytest.raises(ValidationError):
        run_now(job, schedule=theirs, user=user)
    with pytest.raises(PermissionDenied):
        run_now(other_job, user=user)
    assert Run.objects.count() == 0 and stream_entries(runqueue, job) == []


def test_admin_run_now_actions_on_jobs_and_schedules(admin_client, job, runqueue):
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    url = reverse("admin:jobs_job_changelist")
    response = admin_client.post(url, {"action": "run_now", "_selected_action": [str(job.pk)]}, follow=True)
    assert response.status_code == 200
    assert "Started 1 run: manual:" in response.content.decode()
    url = reverse("admin:schedules_schedule_changelist")
    admin_client.post(url, {"action": "run_now", "_selected_action": [str(schedule.pk)]})
    runs = list(Run.objects.order_by("created_at").values_list("trigger", "schedule_id"))
    assert runs == [("manual", None), ("manual", schedule.pk)]
    assert len(stream_entries(runqueue, job)) == 2


# --- retention ------------------------------------------------------------------------------


def make_run(job: Job, key: str, status: str, finished_days_ago: float | None) -> Run:
    now = datetime.now(UTC)
    finished = None if finished_days_ago is None else now - timedelta(days=finished_days_ago)
    return Run.objects.create(job=job, fire_key=key, status=status, finished_at=finished, nominal_time=now)


def test_purge_deletes_only_finished_runs_past_retention_in_batches(job, settings):
    settings.JOBSCHEDULER_RUN_RETENTION_DAYS = 30
    for index in range(5):
        make_run(job, f"old-{index}", "succeeded", 40)
    make_run(job, "old-missed", "missed", 31)
    make_run(job, "recent", "failed", 1)
    make_run(job, "running", "running", None)
    make_run(job, "pending", "pending", None)
    dry = StringIO()
    call_command("purge_runs", "--dry-run", stdout=dry)
    assert "would delete 6 finished runs older than 30 days" in dry.getvalue()
    assert Run.objects.count() == 9
    out = StringIO()
    call_command("purge_runs", "--batch", "4", stdout=out)
    assert out.getvalue().splitlines() == ["deleted 4/6", "deleted 6/6", "deleted 6 finished runs older than 30 days"]
    assert sorted(Run.objects.values_list("fire_key", flat=True)) == ["pending", "recent", "running"]
    assert runs_purge(before=datetime.now(UTC)) == 1  # --days 0: everything finished


def test_purge_days_option(job):
    make_run(job, "a", "succeeded", 3)
    make_run(job, "b", "succeeded", 1)
    call_command("purge_runs", "--days", "2", stdout=StringIO())
    assert list(Run.objects.values_list("fire_key", flat=True)) == ["b"]
