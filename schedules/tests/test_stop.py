"""A scheduler's stop: bounded at any load, and the fired state it could not copy handed over."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobscheduler.coordination import SCHEDULERS
from jobscheduler.epoch import to_epoch_ms
from schedules import engine, services
from schedules.due_index import FIRED_LEASE_MS, DueIndex
from schedules.engine import loop
from schedules.models import Schedule
from schedules.tests.test_multiprocess import ROOT, wait_for_heartbeats

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def fire_all(job: Any, due_index: DueIndex, count: int) -> list[str]:
    """``count`` schedules of ``job``, each fired once (so each waits in the fired set)."""
    specs = [{"kind": "fixed", "interval_seconds": 10} for _ in range(count)]
    services.schedule_bulk_create(job=job, specs=specs, now=lambda: T0)
    assert engine.dispatch_due(due_index, T0 + timedelta(seconds=10)) == count
    return [str(pk) for pk in Schedule.objects.values_list("pk", flat=True)]


def unsynced(due_index: DueIndex) -> set[str]:
    """Schedules whose fired state waits in Redis: in the fired set, or leased by a copy."""
    client: Any = due_index.client
    ids: set[str] = set()
    for shard in range(due_index.shards):
        ids |= {member.decode() for member in client.smembers(due_index.fired_key(shard))}
        ids |= {member.decode() for member in client.zrange(due_index.syncing_key(shard), 0, -1)}
    return ids


def copied(ids: list[str]) -> set[str]:
    """Schedules whose MongoDB copy shows their fire."""
    return {str(pk) for pk in Schedule.objects.filter(run_count=1).values_list("pk", flat=True)} & set(ids)


def test_a_copy_is_leased_until_written_and_taken_over_if_its_scheduler_stops(job, due_index):
    ids = fire_all(job, due_index, 12)
    now_ms = to_epoch_ms(T0)
    taken = due_index.pop_fired(100, now_ms=now_ms)  # a scheduler takes them, then dies before writing
    assert sorted(schedule_id for schedule_id, _ in taken) == sorted(ids)
    assert unsynced(due_index) == set(ids)  # not lost: leased
    assert due_index.pop_fired(100, now_ms=now_ms + FIRED_LEASE_MS - 1) == []  # nobody else while it is leased
    again = due_index.pop_fired(100, now_ms=now_ms + FIRED_LEASE_MS + 1)  # the lease ran out
    assert sorted(schedule_id for schedule_id, _ in again) == sorted(ids)
    due_index.done_fired([schedule_id for schedule_id, _ in again])
    assert unsynced(due_index) == set()


def test_a_copy_mongodb_refused_goes_back_to_the_fired_set(job, due_index, monkeypatch):
    import pymongo.errors

    ids = fire_all(job, due_index, 5)

    def away(states):
        list(states)
        raise pymongo.errors.AutoReconnect("MongoDB is away")

    monkeypatch.setattr(services, "schedules_copy_fired_state", away)
    with pytest.raises(pymongo.errors.AutoReconnect):
        engine.sync_fired(due_index)
    assert unsynced(due_index) == set(ids)
    assert due_index.pop_fired(100) != []  # back in the fired set, not waiting out a lease


def test_the_last_copy_at_a_stop_fits_its_budget_and_leaves_the_rest(job, due_index, coordination, monkeypatch):
    ids = fire_all(job, due_index, 600)
    now = [0.0]
    real_sync = loop.sync_fired

    def sync_at_a_millisecond_a_schedule(index, limit):
        taken = real_sync(index, limit)
        now[0] += 0.001 * taken  # as SecantusDB on a busy machine
        return taken

    monkeypatch.setattr(loop, "sync_fired", sync_at_a_millisecond_a_schedule)
    settings = loop.LoopSettings(stop_sync_seconds=0.3)
    chores = loop._Housekeeping(due_index, coordination, lambda: T0.timestamp(), settings, "s1", timer=lambda: now[0])
    chores.seconds_per_copy = 0.001
    written = chores.last_sync_before_exit()

    assert 0 < written <= 300 and now[0] <= 0.3  # no batch started that the budget could not hold
    assert len(copied(ids)) == written
    assert unsynced(due_index) == set(ids) - copied(ids)  # the rest wait for the next scheduler
    while engine.sync_fired(due_index):  # which copies them
        pass
    assert copied(ids) == set(ids)


@pytest.mark.slow
def test_a_scheduler_at_ten_thousand_every_second_schedules_stops_at_once(job, due_index, process_env, coordination):
    count = 10_000
    anchor = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    specs = [
        {"kind": "fixed", "interval_seconds": 1, "anchor": anchor + timedelta(milliseconds=index * 1000 // count)}
        for index in range(count)
    ]
    services.schedule_bulk_create(job=job, specs=specs)
    ids = [str(pk) for pk in Schedule.objects.values_list("pk", flat=True)]
    command = [sys.executable, "manage.py", "run_scheduler", "--name", "s1"]
    process = subprocess.Popen(command, cwd=ROOT, env=process_env)
    try:
        wait_for_heartbeats(coordination, 1)
        time.sleep(7)  # firing, and past its first copy of fired state to MongoDB (every 5 s)
        assert process.poll() is None
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0
    assert coordination.beats(SCHEDULERS) == {}  # its heartbeat withdrawn
    # The mirror was not marked rebuilt, so it began a reconcile at start; finished or cut
    # short by the stop, its lock is free for the next scheduler.
    assert coordination.try_lock("reconcile", "next", 1000)
    # Every schedule's fired state reached MongoDB, or waits in Redis for the next scheduler.
    counts = dict(zip(ids, (int(state["count"]) for state in due_index.states(ids)), strict=True))
    assert min(counts.values()) >= 1
    in_mongodb = {str(pk): run_count for pk, run_count in Schedule.objects.values_list("pk", "run_count")}
    behind = {schedule_id for schedule_id in ids if in_mongodb[schedule_id] != counts[schedule_id]}
    assert behind <= unsynced(due_index)
    print(f"stopped in {took:.2f} s; {len(unsynced(due_index))} schedules' fired state handed to the next scheduler")


def test_a_reconcile_cut_short_by_a_stop_leaves_the_mirror_to_be_rebuilt(job, due_index):
    import threading

    fire_all(job, due_index, 3)
    stop = threading.Event()
    stop.set()
    report = engine.reconcile(due_index, T0, stop=stop)
    assert report["stopped"] == 1 and report["checked"] == 0
    assert not due_index.is_reconciled()  # whichever scheduler looks next rebuilds it


class StopAfter:
    """A stop event that is set after ``rounds`` looks at it."""

    def __init__(self, rounds: int):
        self.looks, self.rounds = 0, rounds

    def is_set(self) -> bool:
        self.looks += 1
        return self.looks > self.rounds


def test_a_dispatch_far_behind_stops_between_steps(job, due_index):
    # More schedules than shards, 30 s behind, two per shard and step: a shard holding two or
    # more is never out of work, so only the stop ends the dispatch after its first step (it
    # once went on until SIGKILL, 30 s after SIGTERM, in the engine benchmark at 60,000).
    count = 3 * due_index.shards
    specs = [{"kind": "fixed", "interval_seconds": 1} for _ in range(count)]
    services.schedule_bulk_create(job=job, specs=specs, now=lambda: T0)
    now_ms = to_epoch_ms(T0 + timedelta(seconds=30))
    shards = list(range(due_index.shards))
    stopped, _ = engine.steps.dispatch(due_index, now_ms, shards, limit=2, stop=StopAfter(1))  # type: ignore[arg-type]
    assert 0 < stopped <= 2 * due_index.shards
    total = stopped
    while dispatched := engine.steps.dispatch(due_index, now_ms, shards, limit=2)[0]:
        total += dispatched
    assert total == count * 30  # nothing lost to the stop: the rest is dispatched after
