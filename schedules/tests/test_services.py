"""Schedule services: saved to MongoDB, mirrored to Redis, validated before either."""

from datetime import UTC, datetime, timedelta
from typing import Any

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


BULK_SPECS: list[dict[str, Any]] = [
    {"kind": "fixed", "interval_seconds": 90, "jitter_seconds": 5, "max_runs": 3},
    {
        "kind": "cron",
        "expression": "30 2 * * MON-FRI",
        "timezone": "America/New_York",
        "start_at": NOW + timedelta(days=1),
        "end_at": NOW + timedelta(days=30),
        "misfire_policy": "run_all",
        "overlap_policy": "buffer_one",
    },
    {"kind": "fixed", "interval_seconds": 60, "paused": True, "paused_until": NOW + timedelta(hours=2)},
    {"kind": "at", "anchor": NOW + timedelta(minutes=5)},
]


def test_bulk_created_schedules_read_back_as_one_by_one_creates_save_them(job):
    services.schedule_bulk_create(job=job, specs=BULK_SPECS, now=now)
    alone = [services.schedule_create(job=job, now=now, **spec) for spec in BULK_SPECS]
    bulk = list(Schedule.objects.exclude(pk__in=[schedule.pk for schedule in alone]).order_by("pk"))
    skipped = {"id", "created_at", "updated_at"}
    names = [field.attname for field in Schedule._meta.concrete_fields if field.attname not in skipped]
    for loaded, created in zip(bulk, alone, strict=True):
        created.refresh_from_db()
        assert {name: getattr(loaded, name) for name in names} == {name: getattr(created, name) for name in names}
        assert loaded.created_at is not None and loaded.updated_at is not None
    # Queries see them as they see schedules the ORM saved.
    assert Schedule.objects.filter(misfire_policy="run_all", end_at__isnull=False).count() == 2
    assert Schedule.objects.filter(job=job, code_key__isnull=True, max_runs=3).count() == 2


def test_a_bulk_load_cut_short_by_mongodb_leaves_nothing_saved_unmirrored(job, due_index, monkeypatch):
    import pymongo.errors

    from jobscheduler import mongo

    real = mongo.collection(Schedule)
    calls = []

    class FailingThird:
        def insert_many(self, documents, ordered):
            calls.append(len(documents))
            if len(calls) == 3:
                raise pymongo.errors.AutoReconnect("MongoDB went away")
            return real.insert_many(documents, ordered=ordered)

    monkeypatch.setattr(services.mongo, "collection", lambda model: FailingThird())
    specs = [{"kind": "fixed", "interval_seconds": 60} for _ in range(50)]
    with pytest.raises(pymongo.errors.AutoReconnect):
        services.schedule_bulk_create(job=job, specs=specs, now=now, batch=10)
    saved = [str(pk) for pk in Schedule.objects.values_list("pk", flat=True)]
    assert 20 <= len(saved) < 50
    assert set(saved) == due_index.all_mirrored_ids()
