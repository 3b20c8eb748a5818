"""Schedule serializers shape what they are given: the engine's live values are the view's to read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from jobs.models import Job
from schedules import engine, services
from schedules.models import Schedule
from schedules.serializers import ScheduleSerializer


def test_serializing_reads_nothing_from_redis(job: Job, due_index: Any) -> None:
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=10, now=lambda: start)
    engine.dispatch_due(due_index, start + timedelta(seconds=10))
    assert due_index.state(str(schedule.pk))["count"] == "1"  # the mirror has moved on

    saved = Schedule.objects.get(pk=schedule.pk)
    one = ScheduleSerializer(saved).data
    many = ScheduleSerializer([saved], many=True).data

    for shown in (one, many[0]):
        assert shown["run_count"] == 0
        assert shown["last_run_at"] is None
        assert shown["next_run_at"] == "2026-03-01T12:00:10Z"
