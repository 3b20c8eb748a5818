"""Schedule services: saved to MongoDB, mirrored to Redis, validated before either."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from jobscheduler.epoch import to_epoch_ms
from schedules import services
from schedules.models import Schedule

NOW = datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)


def now() -> datetime:
    return NOW


def test_create_fixed_saves_and_mirrors(job, due_index):
    schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=60, now=now)
    saved = Schedule.objects.get(pk=schedule.pk)
    assert saved.anchor == NOW
    assert saved.next_run_at == datetime(2026, 3, 1, 12, 1, 0, 500_000, tzinfo=UTC)
    assert saved.generation == 1
    state = due_index.state(str(schedule.pk))
    assert state["next"] == str(to_epoch_ms(saved.next_run_at))
    assert state["gen"] == "1"
    assert due_index.due_score(str(schedule.pk)) == to_epoch_ms(saved.next_run_at)


def test_invalid_input_changes_nothing(job, due_index):
    with pytest.raises(ValidationError) as error:
        services.schedule_create(job=job, kind="cron", expression="61 * * * *", timezone="Mars/Base", now=now)
    assert set(error.value.message_dict) == {"expression", "timezone"}
    assert Schedule.objects.count() == 0
    assert due_index.earliest_due_ms() is None


def test_pause_removes_from_due_and_resume_restores(job, due_index):
    schedule = services.schedule_create(job=job, kind="cron", expression="*/5 * * * *", now=now)
    services.schedule_pause(schedule, now=now)
    assert Schedule.objects.get(pk=schedule.pk).next_run_at is None
    assert due_index.due_score(str(schedule.pk)) is None
    services.schedule_resume(schedule, now=now)
    assert due_index.due_score(str(schedule.pk)) == to_epoch_ms(datetime(2026, 3, 1, 12, 5, tzinfo=UTC))


def test_pause_until_skips_the_paused_stretch(job):
    schedule = services.schedule_create(job=job, kind="cron", expression="0 * * * *", now=now)
    until = datetime(2026, 3, 1, 15, 30, tzinfo=UTC)
    services.schedule_pause(schedule, until=until, now=now)
    assert Schedule.objects.get(pk=schedule.pk).next_run_at == datetime(2026, 3, 1, 16, 0, tzinfo=UTC)


def test_delete_unmirrors(job, due_index):
    schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=5, now=now)
    schedule_id = str(schedule.pk)
    services.schedule_delete(schedule)
    assert not Schedule.objects.filter(pk=schedule_id).exists()
    assert due_index.state(schedule_id) == {}
    assert due_index.due_score(schedule_id) is None


def test_stale_generation_never_overwrites_mirror(job, due_index):
    schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=60, now=now)
    stale = Schedule.objects.get(pk=schedule.pk)
    services.schedule_update(schedule, interval_seconds=30, now=now)
    stale.interval_seconds = 90
    due_index.upsert(stale)  # generation 1 arriving after generation 2
    assert due_index.state(str(schedule.pk))["interval"] == "30000"


def test_unknown_fields_are_refused(job):
    with pytest.raises(ValidationError) as error:
        services.schedule_create(job=job, kind="fixed", interval_seconds=60, run_count=5, now=now)
    assert "run_count" in error.value.message_dict


def test_bulk_create_saves_and_mirrors_all(job, due_index):
    specs = [{"kind": "fixed", "interval_seconds": 60 + index} for index in range(250)]
    assert services.schedule_bulk_create(job=job, specs=specs, now=now, batch=100) == 250
    saved = list(Schedule.objects.all())
    assert len(saved) == 250
    assert all(
        schedule.next_run_at and due_index.due_score(str(schedule.pk)) == to_epoch_ms(schedule.next_run_at)
        for schedule in saved
    )


def test_bulk_create_with_one_bad_spec_saves_nothing(job):
    specs: list[dict[str, object]] = [{"kind": "fixed", "interval_seconds": 60}, {"kind": "cron", "expression": "nope"}]
    with pytest.raises(ValidationError) as error:
        services.schedule_bulk_create(job=job, specs=specs, now=now)
    assert "1.expression" in error.value.message_dict
    assert Schedule.objects.count() == 0


def test_bulk_create_takes_each_batchs_next_times_when_it_saves_it(job):
    moments = iter([NOW, NOW + timedelta(seconds=30)])
    services.schedule_bulk_create(
        job=job,
        specs=[{"kind": "fixed", "interval_seconds": 10, "anchor": NOW} for _ in range(4)],
        now=lambda: next(moments),
        batch=2,
    )
    nexts = [schedule.next_run_at for schedule in Schedule.objects.order_by("pk")]
    assert nexts == [NOW + timedelta(seconds=10)] * 2 + [NOW + timedelta(seconds=40)] * 2
