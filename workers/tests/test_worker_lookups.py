"""What a worker looks up of the schedules of the entries it reads: in one read for all of them."""

from __future__ import annotations

from typing import Any

import pytest

from jobs.runqueue import RunQueue
from schedules import selectors as schedule_selectors
from schedules import services as schedule_services
from workers.handler import handle
from workers.tests.test_worker import Clock, Scripted, dispatch, make_job, make_worker
from workers.worker import Worker


@pytest.fixture
def worker(runqueue: RunQueue) -> Worker:
    runqueue.ensure_groups()
    return make_worker(runqueue, Clock(), lookup_cache_seconds=60)


def one_at_a_time(*args: Any) -> Any:
    raise AssertionError("a schedule looked up on its own")


def test_entries_read_together_have_their_schedules_looked_up_in_one_read(user, runqueue, worker, monkeypatch):
    job = make_job(user)
    schedules = [schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1) for _ in range(5)]
    skipping = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1, overlap_policy="skip")
    gone = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1)
    for schedule in [*schedules, skipping, gone]:
        dispatch(runqueue, schedule, 1000)
    ids = {str(schedule.pk) for schedule in [*schedules, skipping, gone]}
    gone_id = str(gone.pk)
    schedule_services.schedule_delete(gone)
    batches: list[set[str]] = []
    batch = schedule_selectors.worker_lookups

    def counted(ids: Any) -> Any:
        batches.append(set(ids))
        return batch(ids)

    monkeypatch.setattr(schedule_selectors, "worker_lookups", counted)
    monkeypatch.setattr(schedule_selectors, "overlap_policy", one_at_a_time)
    monkeypatch.setattr(schedule_selectors, "schedule_exclusions", one_at_a_time)

    entries = worker.read(7)
    assert len(entries) == 7
    assert batches == [ids]
    assert worker.schedule_policy(str(skipping.pk)) == "skip"
    assert worker.schedule_policy(gone_id) is None
    outcomes = sorted(handle(worker, entry, Scripted()) for entry in entries)
    assert outcomes == ["dropped"] + ["succeeded"] * 6

    dispatch(runqueue, schedules[0], 2000)
    assert len(worker.read(1)) == 1
    assert len(batches) == 1  # cached: not read again


def test_a_worker_that_caches_nothing_looks_nothing_up_in_advance(user, runqueue, monkeypatch):
    runqueue.ensure_groups()
    uncached = make_worker(runqueue, Clock())  # lookup_cache_seconds=0: each step reads afresh
    schedule = schedule_services.schedule_create(job=make_job(user), kind="fixed", interval_seconds=1)
    dispatch(runqueue, schedule, 1000)
    monkeypatch.setattr(schedule_selectors, "worker_lookups", one_at_a_time)
    (entry,) = uncached.read(1)
    assert handle(uncached, entry, Scripted()) == "succeeded"
