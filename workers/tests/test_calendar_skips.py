"""A worker skips an occurrence on a day of an exclusion calendar its schedule names: recorded as
a skipped run naming the calendar, or not recorded (JOBSCHEDULER_RECORD_CALENDAR_SKIPS)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from jobs.runqueue import RunQueue
from jobs.services import run_now
from jobscheduler.epoch import to_epoch_ms
from schedules import calendar_services
from schedules import services as schedule_services
from workers.handler import handle
from workers.tests.test_worker import Clock, Scripted, dispatch, make_job, make_worker, read_one, runs, stream_sizes
from workers.worker import Worker


@pytest.fixture
def worker(runqueue: RunQueue) -> Worker:
    runqueue.ensure_groups()
    return make_worker(runqueue, Clock())


CHRISTMAS_9AM = to_epoch_ms(datetime(2026, 12, 25, 9, 0, tzinfo=UTC))
BOXING_9AM = to_epoch_ms(datetime(2026, 12, 26, 9, 0, tzinfo=UTC))


def schedule_with_holidays(user: Any) -> Any:
    calendar = calendar_services.calendar_create(
        owner=user,
        name="UK holidays",
        timezone="Europe/London",
        days=[{"start": "2026-12-25", "name": "Christmas Day"}],
    )
    job = make_job(user)
    schedule = schedule_services.schedule_create(
        job=job, kind="cron", expression="0 9 * * *", timezone="Europe/London", exclusion_calendars=[str(calendar.pk)]
    )
    return calendar, job, schedule


def test_an_occurrence_on_a_calendar_day_is_recorded_skipped_naming_it(user, runqueue, worker) -> None:
    _, job, schedule = schedule_with_holidays(user)
    executor = Scripted()
    dispatch(runqueue, schedule, CHRISTMAS_9AM)
    assert handle(worker, read_one(worker), executor) == "skipped"
    (skipped,) = runs(f"{schedule.pk}:{CHRISTMAS_9AM}")
    assert skipped.status == "skipped"
    assert skipped.error == "Skipped: 2026-12-25 is in the exclusion calendar 'UK holidays' (Christmas Day)."
    dispatch(runqueue, schedule, BOXING_9AM)
    assert handle(worker, read_one(worker), executor) == "succeeded"
    run_now(job, schedule=schedule, user=user)  # run now is never skipped
    assert handle(worker, read_one(worker), executor) == "succeeded"
    assert len(executor.calls) == 2
    assert stream_sizes(runqueue)[1] == 0  # every entry acknowledged


def test_with_the_setting_off_a_calendar_day_leaves_no_record(user, runqueue, worker, settings) -> None:
    settings.JOBSCHEDULER_RECORD_CALENDAR_SKIPS = False
    _, _, schedule = schedule_with_holidays(user)
    dispatch(runqueue, schedule, CHRISTMAS_9AM)
    executor = Scripted()
    assert handle(worker, read_one(worker), executor) == "excluded"
    assert runs(f"{schedule.pk}:{CHRISTMAS_9AM}") == []
    assert executor.calls == []
    assert stream_sizes(runqueue)[1] == 0


def test_a_calendar_edit_applies_to_the_next_occurrence(user, runqueue, worker) -> None:
    calendar, _, schedule = schedule_with_holidays(user)
    calendar_services.calendar_update(calendar, days=[{"start": "2026-12-26", "name": "Boxing Day"}])
    executor = Scripted()
    dispatch(runqueue, schedule, CHRISTMAS_9AM)
    assert handle(worker, read_one(worker), executor) == "succeeded"
    dispatch(runqueue, schedule, BOXING_9AM)
    assert handle(worker, read_one(worker), executor) == "skipped"
    assert "'UK holidays' (Boxing Day)" in runs(f"{schedule.pk}:{BOXING_9AM}")[0].error
