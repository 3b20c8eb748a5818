"""Runs in the admin read as an operations log; a run's page has its output, attempts and actions; a job, its strip."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs.models import Job, Run
from jobs.runqueue import RunQueue
from jobs.services import job_create
from schedules import services as schedule_services

NOMINAL = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def admin_client(db: Any) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "root-password-1"))
    return client


def recorded(job: Job, fire_key: str, status: str = "succeeded", attempt: int = 1, **fields: Any) -> Run:
    nominal = fields.pop("nominal_time", NOMINAL)
    times = {
        "nominal_time": nominal,
        "dispatched_at": nominal + timedelta(milliseconds=12),
        "started_at": nominal + timedelta(milliseconds=40),
        "finished_at": nominal + timedelta(seconds=2, milliseconds=540),
    }
    return Run.objects.create(job=job, fire_key=fire_key, status=status, attempt=attempt, **{**times, **fields})


def test_the_runs_list_leads_with_status_names_times_duration_attempt_and_lag(admin_client: Client, job: Job) -> None:
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=300)
    key = f"{schedule.pk}:1772355600000"
    recorded(job, key, status="failed", attempt=2, schedule=schedule, error="boom")
    html = admin_client.get(reverse("admin:jobs_run_changelist")).content.decode()
    row = re.search(r"<tr[^>]*>.*?</tr>", html.split("<tbody>", 1)[1], re.S)
    assert row is not None
    cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row.group(0), re.S)
    text = [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]
    # Status, job, schedule, nominal time, duration, attempt, lag, trigger, fire key (no selection box:
    # runs have no bulk action).
    assert text == [
        "✗ Failed",
        "hello",
        "Every 5 minutes",
        "March 1, 2026, 9 a.m.",
        "2.5 s",
        "2",
        "12 ms",
        "Schedule",
        f"{key[:6]}…{key[-12:]}",
    ]
    assert 'class="run-status run-status-failed"' in cells[0]
    assert f'title="{key}"' in cells[-1]  # the whole key, on hover and in the run's page


def test_manual_runs_and_running_ones_say_so(admin_client: Client, job: Job) -> None:
    recorded(
        job, "manual:abc:def", status="running", finished_at=None, started_at=timezone.now() - timedelta(seconds=5)
    )
    html = admin_client.get(reverse("admin:jobs_run_changelist")).content.decode()
    assert ">Manual<" in html
    assert "running for 5." in html


def test_the_list_filters_by_status_nominal_time_job_and_exact_fire_key(
    admin_client: Client, job: Job, user: User
) -> None:
    other = job_create(owner=user, name="other", target_type="python", target={"task": "demo.tasks.hello"})
    now = timezone.now()
    recorded(job, "recent:1", status="failed", nominal_time=now - timedelta(minutes=5))
    recorded(job, "old:1", status="succeeded", nominal_time=now - timedelta(days=3))
    recorded(other, "other:1", status="succeeded", nominal_time=now - timedelta(minutes=1))
    url = reverse("admin:jobs_run_changelist")

    def keys(**query: str) -> set[str]:
        response = admin_client.get(url, query)
        assert response.status_code == 200
        return {run.fire_key for run in response.context["cl"].result_list}

    assert keys() == {"recent:1", "old:1", "other:1"}
    assert keys(status__exact="failed") == {"recent:1"}
    assert keys(nominal="24h") == {"recent:1", "other:1"}
    assert keys(job__exact=str(job.pk)) == {"recent:1", "old:1"}
    assert keys(q="old:1") == {"old:1"}
    assert keys(q="old") == set()  # exact fire keys only: the index answers those
    newest = admin_client.get(url).context["cl"].result_list[0]
    assert newest.fire_key == "other:1"  # newest first


def test_a_runs_page_shows_output_and_error_formatted_and_its_other_attempts(admin_client: Client, job: Job) -> None:
    first = recorded(
        job, "s:1", status="failed", attempt=1, error="Traceback:\n  <boom> & more", output="line 1\nline 2"
    )
    second = recorded(job, "s:1", status="succeeded", attempt=2, output="done")
    recorded(job, "s:2", status="succeeded")
    html = admin_client.get(reverse("admin:jobs_run_change", args=[first.pk])).content.decode()
    assert '<pre class="run-text run-error">Traceback:\n  &lt;boom&gt; &amp; more</pre>' in html
    assert '<pre class="run-text run-output">line 1\nline 2</pre>' in html
    attempts = re.search(r'<ol class="run-attempts">(.*?)</ol>', html, re.S)
    assert attempts is not None
    links = re.findall(r'<a href="([^"]+)" aria-current="(\w+)">Attempt (\d)</a>', attempts.group(1))
    assert links == [
        (reverse("admin:jobs_run_change", args=[first.pk]), "page", "1"),
        (reverse("admin:jobs_run_change", args=[second.pk]), "false", "2"),
    ]
    assert f'<a href="{reverse("admin:jobs_job_change", args=[job.pk])}" id="open-job">Open the job</a>' in html
    assert f'action="{reverse("admin:jobs_run_run_again", args=[first.pk])}"' in html
    assert "12 ms" in html and "2.5 s" in html  # lag and duration


def test_run_again_dispatches_a_manual_run_for_the_same_schedule(
    admin_client: Client, job: Job, runqueue: RunQueue
) -> None:
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=300)
    run = recorded(job, f"{schedule.pk}:1", status="failed", schedule=schedule)
    assert admin_client.get(reverse("admin:jobs_run_run_again", args=[run.pk])).status_code == 405
    response = admin_client.post(reverse("admin:jobs_run_run_again", args=[run.pk]))
    assert response.status_code == 302
    again = Run.objects.exclude(pk=run.pk).get()
    assert response["Location"] == reverse("admin:jobs_run_change", args=[again.pk])
    assert (again.trigger, again.status, again.schedule_id, again.job_id) == ("manual", "pending", schedule.pk, job.pk)
    assert again.fire_key.startswith(f"manual:{job.pk}:")
    # ...and it is on the run queue for a worker.
    shard = runqueue.keyspace.shard_of(str(job.pk))
    entries: Any = runqueue.keyspace.client.xrange(runqueue.stream_key(runqueue.lane_of(shard, "default")))
    assert any(fields[b"fk"].decode() == again.fire_key for _, fields in entries)  # jobs.runqueue's codec


def test_run_again_of_an_enqueued_task_runs_the_same_task_and_arguments(admin_client: Client, job: Job) -> None:
    target = {"task": "demo.tasks.echo", "args": [1], "kwargs": {"a": 2}}
    run = recorded(job, f"manual:{job.pk}:x", target=target, trigger="manual")
    admin_client.post(reverse("admin:jobs_run_run_again", args=[run.pk]))
    again = Run.objects.exclude(pk=run.pk).get()
    assert again.target == target and again.schedule_id is None


def test_a_jobs_page_shows_its_last_50_runs_as_a_strip(admin_client: Client, job: Job, user: User) -> None:
    other = job_create(owner=user, name="other", target_type="python", target={"task": "demo.tasks.hello"})
    for minute in range(55):
        status = "failed" if minute % 10 == 0 else "succeeded"
        recorded(job, f"s:{minute}", status=status, nominal_time=NOMINAL + timedelta(minutes=minute))
    recorded(other, "o:1", status="timed_out", nominal_time=NOMINAL + timedelta(hours=2))
    html = admin_client.get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()
    strip = re.search(r'<ol class="run-strip" aria-label="Last 50 runs, newest first">(.*?)</ol>', html, re.S)
    assert strip is not None
    cells = re.findall(r'class="run-cell run-status-(\w+)" href="[^"]+" title="([^"]+)"', strip.group(1))
    assert len(cells) == 50
    # Newest first: minutes 54 down to 5, so 50 (failed) is fifth and 0 is not shown.
    assert cells[0] == ("succeeded", "Succeeded, 2026-03-01 09:54:00 UTC, attempt 1")
    assert cells[4] == ("failed", "Failed, 2026-03-01 09:50:00 UTC, attempt 1")
    assert [status for status, _ in cells].count("failed") == 5
    assert "Last 50 runs, newest first: 45 succeeded, 5 failed." in html
    assert f'href="{reverse("admin:jobs_run_changelist")}?job__exact={job.pk}">All runs of this job' in html


def test_a_job_with_no_runs_says_so(admin_client: Client, job: Job) -> None:
    assert "No runs yet." in admin_client.get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()
