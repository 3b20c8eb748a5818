"""The dashboard's reads of MongoDB are answered from indexes, with a million runs or three hundred.

Its figures come from Redis; what it reads from MongoDB (job names of the latest failures, a
staff user's own jobs, the schedules the service paused, what runs next) is captured as pymongo
sends it while the JSON endpoint renders, then explained (jobscheduler/tests/query_plans.py).
Nothing reads the runs collection at all.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from jobs import run_records
from jobs.models import Job, Run
from jobscheduler.tests.query_plans import assert_indexed, capturing
from schedules import services as schedule_services
from schedules.models import Schedule

WATCHED = (Run._meta.db_table, Job._meta.db_table, Schedule._meta.db_table)


@pytest.fixture
def stored(job: Job) -> None:
    failing = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    schedule_services.schedule_create(job=job, kind="cron", expression="0 * * * *")
    schedule_services.schedule_pause(failing, reason="Paused after 3 failed runs in a row.")
    now = datetime.now(UTC)
    Run.objects.bulk_create(
        Run(job=job, fire_key=f"old:{n}", status="succeeded", nominal_time=now - timedelta(minutes=n))
        for n in range(300)
    )
    failed = Run(job=job, fire_key="s:failed", status="failed", nominal_time=now, finished_at=now, error="boom")
    assert run_records.runs_record([failed]) == 1  # counted: listed among the latest failures


@pytest.mark.parametrize("staff", ["superuser", "owner"])
def test_the_dashboard_reads_mongodb_by_index_and_never_reads_runs(
    db: Any, user: User, stored: None, staff: str
) -> None:
    if staff == "superuser":
        viewer = User.objects.create_superuser("root", "root@example.com", "root-password-1")
    else:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        viewer = user
    client = Client()
    client.force_login(viewer)
    with capturing(*WATCHED) as captured:
        body = client.get(reverse("dashboard-data")).json()
    assert body["figures"]["paused_by_service"]["total"] == 1
    assert "boom" in body["panels"]["dash-failures"]
    assert not [command for command in captured if Run._meta.db_table in command.values()]
    assert_indexed(captured, strict=True)
