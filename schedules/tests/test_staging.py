"""Staging: schedules advanced a lead before their due time, their occurrences released at it.

Driven with a controlled clock against real Redis and MongoDB; the multi-process race with a
scheduler killed between staging and release is in test_staging_processes.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import time_machine

from jobs.models import Run
from jobs.services import job_update
from jobscheduler.epoch import to_epoch_ms
from schedules import engine, services
from schedules.due_index import AWAY_RETRY_MS, DispatchResult, DueIndex, apply_live_state
from schedules.engine import loop
from schedules.models import Schedule
from schedules.tests.test_engine import fire_keys, stream_entries

# On a single Redis and on a Redis Cluster (conftest.py: redis_mode).
pytestmark = pytest.mark.redis_modes("single", "cluster")

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
LEAD = 200
DUE = T0 + timedelta(seconds=10)  # the first occurrence of a 10 s schedule created at T0


def ms(moment: datetime) -> int:
    return to_epoch_ms(moment)


def at(delta_ms: int) -> datetime:
    """DUE shifted by ``delta_ms``."""
    return DUE + timedelta(milliseconds=delta_ms)


def create(job: Any, **fields: Any) -> Schedule:
    return services.schedule_create(job=job, now=lambda: T0, **{"kind": "fixed", "interval_seconds": 10, **fields})


def step(due_index: DueIndex, moment: datetime) -> int:
    """One scheduler's wake at ``moment``: release what is due, stage what falls due within the lead."""
    return engine.dispatch_due(due_index, moment, lead_ms=LEAD)


def staged(due_index: DueIndex) -> list[str]:
    client: Any = due_index.client
    return [
        member.decode()
        for shard in range(due_index.shards)
        for member in client.zrange(due_index.staged_key(shard), 0, -1)
    ]


def test_a_schedule_is_advanced_ahead_and_released_at_its_time_once(job, due_index):
    schedule = create(job)
    schedule_id = str(schedule.pk)
    assert step(due_index, at(-LEAD - 1)) == 0 and staged(due_index) == []
    assert step(due_index, at(-150)) == 0
    assert staged(due_index) == [f"{schedule_id}:{ms(DUE)}:{job.pk}:60000"]
    state = due_index.state(schedule_id)
    assert (state["count"], state["next"], state["last"]) == ("1", str(ms(DUE) + 10_000), str(ms(DUE)))
    assert fire_keys(due_index) == []  # advanced, not dispatched
    assert step(due_index, at(-1)) == 0
    assert step(due_index, DUE) == 1
    assert step(due_index, DUE) == 0
    assert staged(due_index) == []
    entries = stream_entries(due_index)
    assert [(entry["fk"], entry["s"], entry["j"], entry["n"], entry["t"]) for entry in entries] == [
        (f"{schedule_id}:{ms(DUE)}", schedule_id, str(job.pk), str(ms(DUE)), "schedule")
    ]


def test_what_one_scheduler_staged_another_releases(job, keyspace, due_index):
    schedules = [create(job, anchor=DUE + timedelta(milliseconds=index)) for index in range(20)]
    step(due_index, at(-100))  # this scheduler stages them all, then dies
    assert len(staged(due_index)) == 20
    survivor = DueIndex(keyspace)  # a scheduler of its own connections, that staged nothing
    assert engine.dispatch_due(survivor, at(19), lead_ms=LEAD) == 20
    assert engine.dispatch_due(due_index, at(19), lead_ms=LEAD) == 0
    assert sorted(fire_keys(due_index)) == sorted(f"{s.pk}:{ms(s.anchor)}" for s in schedules if s.anchor)


def test_an_edit_just_before_the_instant_takes_the_staged_occurrence_back(job, due_index):
    moved = create(job)
    kept = create(job)
    step(due_index, at(-150))
    assert len(staged(due_index)) == 2
    # Moved 5 s on, and an edit that keeps its times: both 1 ms before the instant.
    services.schedule_update(moved, anchor=T0 + timedelta(seconds=5), now=lambda: at(-1))
    services.schedule_update(kept, misfire_policy="run_once", now=lambda: at(-1))
    assert staged(due_index) == []
    assert due_index.state(str(moved.pk))["count"] == "0"
    assert "last" not in due_index.state(str(moved.pk))
    step(due_index, DUE)
    step(due_index, at(5000))
    # The old version of `moved` never fired; `kept` fired once, on time.
    assert fire_keys(due_index) == [f"{kept.pk}:{ms(DUE)}", f"{moved.pk}:{ms(at(5000))}"]
    assert due_index.state(str(kept.pk))["count"] == "1"


def test_a_pause_just_before_the_instant_stops_the_staged_occurrence(job, due_index):
    schedule = create(job, max_runs=2)
    step(due_index, at(-150))
    services.schedule_pause(schedule, now=lambda: at(-1))
    assert staged(due_index) == []
    for moment in (DUE, at(10_000), at(20_000)):
        step(due_index, moment)
    assert fire_keys(due_index) == []
    services.schedule_resume(schedule, now=lambda: at(25_000))
    for moment in (at(29_850), at(30_000), at(39_850), at(40_000), at(50_000)):
        step(due_index, moment)
    # Both runs max_runs allows, the staged one taken back not counted among them.
    assert fire_keys(due_index) == [f"{schedule.pk}:{ms(at(30_000))}", f"{schedule.pk}:{ms(at(40_000))}"]


def test_a_delete_just_before_the_instant_stops_the_staged_occurrence(job, due_index):
    schedule = create(job)
    other = create(job)
    step(due_index, at(-150))
    services.schedule_delete(schedule)
    assert staged(due_index) == [f"{other.pk}:{ms(DUE)}:{job.pk}:60000"]
    step(due_index, DUE)
    assert fire_keys(due_index) == [f"{other.pk}:{ms(DUE)}"]


def test_disabling_the_job_just_before_the_instant_stops_the_staged_occurrence(job, due_index):
    create(job)
    step(due_index, at(-150))
    job_update(job, enabled=False, now=lambda: at(-1))
    assert staged(due_index) == []
    step(due_index, DUE)
    assert fire_keys(due_index) == []


def test_an_occurrence_released_after_its_grace_goes_to_the_misfire_policy(job, due_index):
    skip = create(job, interval_seconds=60, misfire_grace_seconds=5)
    once = create(job, kind="cron", expression="* * * * *", misfire_grace_seconds=5, misfire_policy="run_once")
    minute = T0 + timedelta(minutes=1)
    assert engine.dispatch_due(due_index, minute - timedelta(milliseconds=100), lead_ms=LEAD) == 0
    assert len(staged(due_index)) == 2
    # Every scheduler was away until long after the instant.
    later = T0 + timedelta(minutes=3, seconds=30)
    engine.dispatch_due(due_index, later, lead_ms=LEAD)
    engine.handle_work(due_index, later)
    assert staged(due_index) == []
    missed = sorted(
        run.nominal_time
        for run in Run.objects.filter(schedule_id=skip.pk, status=Run.Status.MISSED)
        if run.nominal_time
    )
    assert missed == [T0 + timedelta(minutes=minutes) for minutes in (1, 2, 3)]  # the staged one among them
    # Coalesced into one catch-up run, of its latest time; its carried times pick up after it.
    assert [entry["fk"] for entry in stream_entries(due_index)] == [f"{once.pk}:{ms(T0 + timedelta(minutes=3))}"]
    assert int(due_index.state(str(once.pk))["next"]) == ms(T0 + timedelta(minutes=4))
    assert due_index.state(str(skip.pk))["count"] == "0"


def test_mongodb_and_the_api_see_a_staged_occurrence_once_it_is_released(job, due_index):
    schedule = create(job)
    step(due_index, at(-150))
    assert engine.sync_fired(due_index) == 1
    saved = Schedule.objects.get(pk=schedule.pk)
    assert (saved.run_count, saved.last_run_at, saved.next_run_at) == (0, None, DUE)
    with time_machine.travel(at(-100), tick=False):
        apply_live_state([saved])
        assert (saved.run_count, saved.last_run_at, saved.next_run_at) == (0, None, DUE)
    step(due_index, DUE)
    assert engine.sync_fired(due_index) == 1  # kept in the fired set for this copy
    saved = Schedule.objects.get(pk=schedule.pk)
    assert (saved.run_count, saved.last_run_at, saved.next_run_at) == (1, DUE, at(10_000))
    # An edit after the sync that copied the staged state would not count it twice.
    step(due_index, at(9850))
    engine.sync_fired(due_index)
    services.schedule_update(saved, jitter_seconds=0, now=lambda: at(9999))
    assert due_index.state(str(schedule.pk))["count"] == "1"


def test_two_occurrences_due_within_the_lead_are_staged_one_after_the_other(job, due_index):
    # With jitter, an occurrence may fall due a few ms after the one before it.
    schedule = create(job, interval_seconds=1, jitter_seconds=1, anchor=T0)
    moments = [T0 + timedelta(milliseconds=step_ms) for step_ms in range(0, 12_000, 7)]
    for moment in moments:
        engine.dispatch_due(due_index, moment, lead_ms=900)
    assert fire_keys(due_index) == [f"{schedule.pk}:{ms(T0 + timedelta(seconds=second))}" for second in range(1, 12)]


def test_a_burst_larger_than_a_step_is_released_before_anything_else_is_staged(job, due_index):
    services.schedule_bulk_create(job=job, specs=[{"kind": "fixed", "interval_seconds": 10}] * 600, now=lambda: T0)
    shards = range(due_index.shards)
    while any(result.more for result in due_index.dispatch_due(ms(at(-150)), shards, limit=100, lead_ms=LEAD)):
        pass
    assert len(staged(due_index)) == 600 and fire_keys(due_index) == []
    # At the instant each shard's first step releases 100 and stages nothing: more is due.
    first = due_index.dispatch_due(ms(DUE), shards, limit=100, lead_ms=LEAD)
    assert all(result.dispatched == 100 and result.more and result.staged == 0 for result in first)
    assert engine.dispatch_due(due_index, DUE, lead_ms=LEAD) == 600 - 100 * due_index.shards
    assert len(set(fire_keys(due_index))) == len(fire_keys(due_index)) == 600


def test_a_burst_too_big_to_stage_within_the_lead_begins_staging_earlier(job, due_index):
    # A reply counts what falls due within 10 ms of its shard's next due time (a burst), not
    # what comes later; the loop begins staging a burst its share of Redis time ahead.
    burst = [create(job) for _ in range(12)]
    later = services.schedule_create(job=job, now=lambda: T0, kind="at", anchor=at(50))
    replies = due_index.dispatch_due(ms(at(-5000)), range(due_index.shards), lead_ms=LEAD)
    assert sum(reply.dispatched + reply.staged for reply in replies) == 0  # all beyond the horizon
    for reply in replies:
        expected = sum(1 for schedule in burst if due_index.shard_of(str(schedule.pk)) == reply.shard)
        if expected:
            assert (reply.next_due_ms, reply.due_with_next) == (ms(DUE), expected)
        elif due_index.shard_of(str(later.pk)) == reply.shard:
            assert (reply.next_due_ms, reply.due_with_next) == (ms(at(50)), 1)
        else:
            assert (reply.next_due_ms, reply.due_with_next) == (None, 0)


def test_how_far_ahead_staging_begins():
    def reply(count: int) -> DispatchResult:
        return DispatchResult(0, 0, [], False, None, ms(DUE), None, 0, count)

    per = loop.STAGE_US_PER_OCCURRENCE
    assert loop.stage_ahead_ms(reply(0), LEAD, 16) == LEAD
    assert loop.stage_ahead_ms(reply(100), LEAD, 16) == LEAD  # 1,600 in all: staged within the lead
    assert loop.stage_ahead_ms(reply(6250), LEAD, 16) == 6250 * 16 * per // 1000  # 100,000 in all
    assert loop.stage_ahead_ms(reply(10**6), LEAD, 16) == loop.MAX_STAGE_AHEAD_MS
    assert loop.stage_ahead_ms(reply(6250), 0, 16) == 0  # no staging (run once, or a lead of 0)


def test_a_shard_whose_master_is_away_is_looked_at_again_soon_and_the_others_stand(job, due_index, monkeypatch):
    # On a Redis Cluster a master failing over fails its shards' steps; the reply that stands in
    # for theirs must have dispatch.lua's shape (it once lacked a field, and every scheduler
    # stopped on the failover).
    create(job)
    real = due_index._scripts.run_packed

    def first_away(*args: Any, **kwargs: Any) -> list[Any]:
        replies = real(*args, **kwargs)
        return [redis.ConnectionError("master away"), *replies[1:]]

    monkeypatch.setattr(due_index._scripts, "run_packed", first_away)
    now = ms(at(-150))
    replies = due_index.dispatch_due(now, range(due_index.shards), lead_ms=LEAD)
    assert [reply.shard for reply in replies] == list(range(due_index.shards))
    away = replies[0]
    assert (away.dispatched, away.more, away.next_release_ms, away.next_due_ms) == (0, False, now + AWAY_RETRY_MS, None)
    # The others' replies stand as Redis gave them (the schedule's step ran for real, so it is
    # staged wherever its shard is: only the first reply was swapped for a failure).
    assert len(staged(due_index)) == 1
    shard = due_index.shard_of(str(Schedule.objects.get().pk))
    assert shard == 0 or replies[shard].staged == 1
