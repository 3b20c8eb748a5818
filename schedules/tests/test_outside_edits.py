"""Edits made around the services (a shell's save, delete or QuerySet.update) keep the Redis mirror in step."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from jobscheduler.epoch import to_epoch_ms
from schedules import services
from schedules.due_index import DueIndex
from schedules.models import Schedule


def test_a_save_in_a_shell_is_mirrored_with_a_new_generation(job: Any, due_index: DueIndex) -> None:
    schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=60)
    before = due_index.state(str(schedule.pk))
    fresh = Schedule.objects.get(pk=schedule.pk)
    fresh.interval_seconds = 5
    fresh.save()
    state = due_index.state(str(schedule.pk))
    assert int(state["gen"]) == int(before["gen"]) + 1
    assert state["interval"] == "5000"
    assert int(state["next"]) <= to_epoch_ms(timezone.now() + timedelta(seconds=5))


def test_a_schedule_created_in_a_shell_fires(job: Any, due_index: DueIndex) -> None:
    schedule = Schedule.objects.create(job=job, kind="fixed", interval_seconds=30)
    state = due_index.state(str(schedule.pk))
    assert state and int(state["next"]) > 0
    assert due_index.due_score(str(schedule.pk)) is not None


def test_pausing_with_queryset_update_stops_the_mirror(job: Any, due_index: DueIndex) -> None:
    schedules = [services.schedule_create(job=job, kind="fixed", interval_seconds=n) for n in (10, 20, 30)]
    assert Schedule.objects.filter(interval_seconds__lt=30).update(paused=True) == 2
    for schedule in schedules[:2]:
        assert due_index.state(str(schedule.pk))["next"] == "-1"
        assert due_index.due_score(str(schedule.pk)) is None
    assert due_index.due_score(str(schedules[2].pk)) is not None
    assert Schedule.objects.filter(pk=schedules[0].pk).update(paused=False) == 1
    assert due_index.due_score(str(schedules[0].pk)) is not None


def test_an_interval_changed_with_queryset_update_takes_effect(job: Any, due_index: DueIndex) -> None:
    schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=3600)
    Schedule.objects.filter(pk=schedule.pk).update(interval_seconds=7)
    state = due_index.state(str(schedule.pk))
    assert state["interval"] == "7000"
    assert int(state["next"]) <= to_epoch_ms(timezone.now() + timedelta(seconds=7))


def test_a_delete_in_a_shell_leaves_no_mirror(job: Any, due_index: DueIndex) -> None:
    kept, gone = (services.schedule_create(job=job, kind="fixed", interval_seconds=n) for n in (10, 20))
    Schedule.objects.get(pk=gone.pk).delete()
    assert due_index.state(str(gone.pk)) == {}
    Schedule.objects.filter(pk=kept.pk).delete()
    assert due_index.state(str(kept.pk)) == {}


def test_a_broken_edit_in_a_shell_pauses_only_that_schedule(job: Any, due_index: DueIndex) -> None:
    good = services.schedule_create(job=job, kind="fixed", interval_seconds=10)
    bad = services.schedule_create(job=job, kind="cron", expression="* * * * *")
    Schedule.objects.filter(pk=bad.pk).update(timezone="Atlantis/Capital")
    bad.refresh_from_db()
    assert bad.paused and "Atlantis/Capital" in bad.pause_reason
    assert due_index.state(str(bad.pk)) == {}
    assert due_index.due_score(str(good.pk)) is not None


def test_the_services_mirror_their_own_writes_once(job: Any, due_index: DueIndex, monkeypatch: Any) -> None:
    calls: list[int] = []
    original = DueIndex.upsert_many

    def counting(self: DueIndex, schedules: Any, on_error: Any = None) -> None:
        listed = list(schedules)
        calls.append(len(listed))
        original(self, listed, on_error)

    monkeypatch.setattr(DueIndex, "upsert_many", counting)
    schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=10)
    services.schedule_update(schedule, interval_seconds=20)
    assert calls == [1, 1]
    assert int(due_index.state(str(schedule.pk))["gen"]) == 2


def test_disabling_a_job_in_a_shell_stops_its_schedules(job: Any, due_index: DueIndex) -> None:
    from jobs.models import Job

    schedule = services.schedule_create(job=job, kind="fixed", interval_seconds=10)
    fresh = Job.objects.get(pk=job.pk)
    fresh.enabled = False
    fresh.save()
    assert due_index.due_score(str(schedule.pk)) is None
    fresh.enabled = True
    fresh.save()
    assert due_index.due_score(str(schedule.pk)) is not None


def test_a_job_saved_in_a_shell_is_announced_to_workers(job: Any, keyspace: Any) -> None:
    from jobs.models import Job

    listener = keyspace.client.pubsub()
    listener.subscribe(keyspace.job_changes_channel)
    listener.get_message(timeout=1)  # the subscription's confirmation
    fresh = Job.objects.get(pk=job.pk)
    fresh.timeout_seconds = 60
    fresh.save()
    message = listener.get_message(timeout=2)
    listener.close()
    assert message is not None and message["data"].decode() == str(job.pk)
