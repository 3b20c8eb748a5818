"""The runs list's paginator (jobs.admin_paging): the pages of a full sort, without counting or sorting every run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from jobs.admin_paging import RunsPaginator, estimated_run_count
from jobs.models import Job, Run
from jobscheduler.keyspace import Keyspace

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
ORDER = ("-nominal_time", "-created_at", "-pk")  # what the admin sorts by


@pytest.fixture
def runs(job: Job) -> list[Run]:
    """Runs an hour, a day, a month and more apart, a future one (run_after) and undated ones."""
    ages = [timedelta(minutes=minutes) for minutes in (1, 5, 30, 59)]
    ages += [timedelta(hours=hours) for hours in (2, 5, 23, 30, 100)]
    ages += [timedelta(days=days) for days in (10, 40, 400)]
    ages += [timedelta(minutes=-30)]  # in the future
    made = [Run(job=job, fire_key=f"k:{index}", nominal_time=NOW - age) for index, age in enumerate(ages)]
    made += [Run(job=job, fire_key=f"undated:{index}", nominal_time=None) for index in range(2)]
    made += [
        Run(job=job, fire_key="tie:a", nominal_time=NOW - ages[1]),
        Run(job=job, fire_key="tie:b", nominal_time=NOW - ages[1]),
    ]
    Run.objects.bulk_create(made)
    return made


def paginator(queryset: Any, per_page: int) -> RunsPaginator:
    pages = RunsPaginator(queryset, per_page)
    pages.now = lambda: NOW  # type: ignore[method-assign]
    return pages


@pytest.mark.parametrize("per_page", [1, 3, 7])
def test_every_page_holds_the_rows_a_full_sort_would(runs: list[Run], per_page: int) -> None:
    everything = list(Run.objects.order_by(*ORDER).values_list("fire_key", flat=True))
    pages = paginator(Run.objects.order_by(*ORDER), per_page)
    assert pages.count == len(runs) == len(everything)
    shown = []
    for number in pages.page_range:
        shown += [run.fire_key for run in pages.page(number).object_list]
    assert shown == everything


def test_the_first_page_reads_only_recent_runs(runs: list[Run]) -> None:
    pages = paginator(Run.objects.order_by(*ORDER), 3)
    with CaptureQueriesContext(connection) as queries:
        first = [run.fire_key for run in pages.page(1).object_list]
    assert first == list(Run.objects.order_by(*ORDER).values_list("fire_key", flat=True)[:3])
    assert all("nominal_time" in query["sql"] and "$gte" in query["sql"] for query in queries.captured_queries)


def test_a_filtered_or_reordered_list_is_paged_as_usual(runs: list[Run], job: Job) -> None:
    failed = Run.objects.filter(job=job).order_by(*ORDER)
    assert paginator(failed, 5).count == len(runs)
    oldest_first = Run.objects.order_by("nominal_time", "pk")
    pages = paginator(oldest_first, 4)
    assert [run.fire_key for run in pages.page(1).object_list] == list(
        oldest_first.values_list("fire_key", flat=True)[:4]
    )


def test_the_estimate_is_kept_in_redis_for_a_while(runs: list[Run], keyspace: Keyspace) -> None:
    assert estimated_run_count() == len(runs)
    assert keyspace.client.ttl(keyspace.global_key("runs:estimated-count")) > 0
    Run.objects.filter(fire_key="k:0").delete()
    assert estimated_run_count() == len(runs)  # the kept estimate, not a new walk
    keyspace.client.delete(keyspace.global_key("runs:estimated-count"))
    assert estimated_run_count() == len(runs) - 1


def test_the_admin_runs_list_pages_and_filters(runs: list[Run], db: Any) -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "root-password-1"))
    url = reverse("admin:jobs_run_changelist")
    page = client.get(url)
    assert page.status_code == 200
    assert f"{len(runs)} runs" in page.content.decode()
    recent = client.get(url, {"nominal": "24h"})  # as the nominal-time filter links it
    assert recent.status_code == 200


def test_the_page_reads_its_jobs_and_schedules_by_id_in_a_few_queries(job: Job, db: Any) -> None:
    from jobs.services import job_create
    from schedules import services as schedule_services

    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "root-password-1"))
    url = reverse("admin:jobs_run_changelist")
    other = job_create(owner=job.owner, name="other", target_type="python", target={"task": "demo.tasks.hello"})
    schedule = schedule_services.schedule_create(job=other, kind="fixed", interval_seconds=60)

    def load(count: int) -> tuple[list[str], str]:
        Run.objects.bulk_create(
            Run(
                job=other if number % 2 else job,
                schedule=schedule if number % 2 else None,
                fire_key=f"{count}:{number}",
            )
            for number in range(count)
        )
        with CaptureQueriesContext(connection) as queries:
            page = client.get(url)
        assert page.status_code == 200
        return [query["sql"] for query in queries.captured_queries], page.content.decode()

    few, _ = load(2)
    many, html = load(30)
    assert len(many) == len(few)  # none per row
    assert not any("$lookup" in query or "$expr" in query for query in many)  # no join, no unindexed filter
    assert ">other<" in html and "Every minute" in html  # each run's job, and its schedule in words
