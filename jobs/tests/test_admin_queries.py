"""The queries the admin's job and run pages make on runs, jobs and schedules are answered from indexes.

The commands are captured as pymongo sends them while a page renders, then each is explained
on the server the suite uses (a superuser's pages: a staff user's add a second condition, the
ids of their jobs, which SecantusDB 0.7.0b3 plans as a collection scan; MongoDB does not).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from jobs.models import Job, Run
from jobscheduler.tests.query_plans import assert_indexed, capturing
from schedules.models import Schedule

WATCHED = (Run._meta.db_table, Job._meta.db_table, Schedule._meta.db_table)


@pytest.fixture
def admin_client(db: Any) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "root-password-1"))
    return client


def load(client: Client, url: str, **query: str) -> list[dict[str, Any]]:
    with capturing(*WATCHED) as commands:
        response = client.get(url, query)
    assert response.status_code == 200
    return list(commands)


def test_a_jobs_page_reads_its_strip_by_index(admin_client: Client, job: Job, stored: list[Run]) -> None:
    commands = load(admin_client, reverse("admin:jobs_job_change", args=[job.pk]))
    on_runs = [command for command in commands if command.get("aggregate", command.get("find")) == Run._meta.db_table]
    assert len(on_runs) == 1  # the strip, in one query
    assert_indexed(commands, strict=True)


def test_a_runs_page_reads_it_its_names_and_its_attempts_by_index(admin_client: Client, stored: list[Run]) -> None:
    retried = stored[0]
    commands = load(admin_client, reverse("admin:jobs_run_change", args=[retried.pk]))
    assert any(
        "fire_key" in json.dumps(command.get("pipeline", command.get("filter")), default=str) for command in commands
    )
    assert_indexed(commands, strict=True)


@pytest.mark.parametrize(
    "query",
    [
        {"status__exact": "failed"},
        {"nominal": "30d"},
        {"job__exact": "<job>"},
        {"q": "<fire key>"},
    ],
    ids=["status", "nominal-time", "job", "fire-key"],
)
def test_the_runs_list_filtered_by_one_condition_reads_by_index(
    admin_client: Client, job: Job, stored: list[Run], query: dict[str, str]
) -> None:
    values = {"<job>": str(job.pk), "<fire key>": stored[5].fire_key}
    query = {name: values.get(value, value) for name, value in query.items()}
    with time_machine.travel(datetime(2026, 3, 2, tzinfo=UTC), tick=True):  # the stored runs' month
        commands = load(admin_client, reverse("admin:jobs_run_changelist"), **query)
    # The page's jobs and schedules come by id, one query each: no join per run.
    assert not any("$lookup" in json.dumps(command.get("pipeline", []), default=str) for command in commands)
    assert_indexed(commands, strict=True)
