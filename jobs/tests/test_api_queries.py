"""The API's listings of runs, jobs and schedules, filtered as clients filter them, read by index.

Captured as pymongo sends them, explained on the server the suite uses
(jobscheduler/tests/query_plans.py): for an owner (their jobs' ids are a second condition) and
for a superuser (no condition: the page itself must come from an index, and the count from the
collection's metadata, not a count of every run). A page of runs is read in the index's order,
never sorted: that part is checked on MongoDB only (MONGODB_URI), since SecantusDB sorts
whatever a filter matched.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.models import Job, Run
from jobscheduler.tests.query_plans import assert_indexed, capturing
from schedules.models import Schedule

WATCHED = (Run._meta.db_table, Job._meta.db_table, Schedule._meta.db_table)
START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def root_api(db: Any) -> APIClient:
    client = APIClient()
    root = User.objects.create_superuser("root", "root@example.com", "root-password-1")
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=root).key}")
    return client


def listed(client: APIClient, url: str, **query: str) -> list[dict[str, Any]]:
    with capturing(*WATCHED) as commands:
        response = client.get(url, query)
    assert response.status_code == 200, response.content
    assert response.json()["results"]
    return list(commands)


RUN_FILTERS = [{}, {"status": "failed"}, {"job": "<job>"}, {"schedule": "<schedule>"}, {"nominal_after": "<after>"}]
RUN_FILTER_IDS = ["none", "status", "job", "schedule", "nominal-after"]


def run_query(query: dict[str, str], stored: list[Run]) -> dict[str, str]:
    values = {"<job>": str(stored[0].job_id), "<schedule>": str(stored[0].schedule_id), "<after>": START.isoformat()}
    return {name: values.get(value, value) for name, value in query.items()}


@pytest.mark.parametrize("query", RUN_FILTERS, ids=RUN_FILTER_IDS)
def test_an_owners_runs_list_reads_by_index(api: APIClient, stored: list[Run], query: dict[str, str]) -> None:
    assert_indexed(listed(api, "/api/runs/", **run_query(query, stored)), sorted_by_index=True)


@pytest.mark.parametrize("query", RUN_FILTERS, ids=RUN_FILTER_IDS)
def test_a_superusers_runs_list_reads_by_index(root_api: APIClient, stored: list[Run], query: dict[str, str]) -> None:
    commands = listed(root_api, "/api/runs/", **run_query(query, stored))
    assert_indexed(commands, strict=not query, sorted_by_index=True)  # no filter: one condition at most


def test_a_superusers_first_page_of_runs_is_the_newest(root_api: APIClient, stored: list[Run]) -> None:
    page = root_api.get("/api/runs/").json()
    newest = [run.fire_key for run in Run.objects.order_by("-nominal_time", "-pk")[:50]]
    assert [run["fire_key"] for run in page["results"]] == newest
    assert page["count"] == len(stored)


@pytest.mark.parametrize("url", ["/api/jobs/", "/api/schedules/"])
def test_jobs_and_schedules_lists_read_by_index(
    api: APIClient, root_api: APIClient, stored: list[Run], url: str
) -> None:
    assert_indexed(listed(api, url))
    assert_indexed(listed(root_api, url))
