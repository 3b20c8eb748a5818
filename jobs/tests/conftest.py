"""Fixtures of the jobs app's tests: for the webhook tests (``test_http_*``) settings without an
allow-list, a canary, a receiver; for the query tests (``test_*_queries``) a job's stored runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from jobs.models import Job, Run
from jobs.tests.webhook_doubles import Canary, Receiver
from schedules import services as schedule_services

STORED_RUNS = 300


@pytest.fixture
def no_allow_list() -> Iterator[None]:
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=[], JOBSCHEDULER_WEBHOOK_EXCERPT_CHARS=2000):
        yield


@pytest.fixture
def allow_loopback() -> Iterator[None]:
    with override_settings(JOBSCHEDULER_WEBHOOK_ALLOWED_HOSTS=["127.0.0.1"]):
        yield


@pytest.fixture
def canary() -> Iterator[Canary]:
    listener = Canary()
    yield listener
    listener.close()


@pytest.fixture
def receiver(canary: Canary) -> Iterator[Receiver]:
    server = Receiver(canary_port=canary.port).start()
    yield server
    server.stop()


@pytest.fixture
def stored(job: Job) -> list[Run]:
    """A job's runs, with a schedule and a retried occurrence among them, and other jobs' runs."""
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    runs = [
        Run(
            job=job,
            schedule=schedule,
            fire_key=f"{schedule.pk}:{n}",
            status="failed" if n % 7 == 0 else "succeeded",
            nominal_time=start + timedelta(minutes=n),
        )
        for n in range(STORED_RUNS)
    ]
    runs.append(Run(job=job, schedule=schedule, fire_key=f"{schedule.pk}:0", attempt=2, nominal_time=start))
    Run.objects.bulk_create(runs)
    return list(Run.objects.filter(job=job).order_by("nominal_time"))
