"""The engine's steps with a controlled clock, against real Redis and MongoDB."""

from __future__ import annotations

import functools
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
import time_machine

from jobs.models import Run
from jobscheduler import scripts
from jobscheduler.epoch import from_epoch_ms, to_epoch_ms
from schedules import engine, services
from schedules.due_index import DueIndex
from schedules.engine import loop, reconciler
from schedules.mirror import LOOK_AHEAD, REFILL_BELOW
from schedules.models import Schedule

# Every test here on a single Redis and on a Redis Cluster (conftest.py: redis_mode).
pytestmark = pytest.mark.redis_modes("single", "cluster")

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def stream_entries(due_index: DueIndex) -> list[dict[str, str]]:
    entries = []
    for shard in range(due_index.shards):
        raw: Any = due_index.client.xrange(due_index.runqueue.stream_key(shard))
        for _, fields in raw:
            entries.append({key.decode(): value.decode() for key, value in fields.items()})
    return sorted(entries, key=lambda entry: (int(entry["n"]), entry["s"]))


def fire_keys(due_index: DueIndex) -> list[str]:
    return [entry["fk"] for entry in stream_entries(due_index)]


def create(job, at: datetime = T0, **fields) -> Schedule:
    return services.schedule_create(job=job, now=lambda: at, **fields)


def test_fixed_schedule_fires_each_occurrence_once_on_its_grid(job, due_index):
    schedule = create(job, kind="fixed", interval_seconds=10)
    assert engine.dispatch_due(due_index, T0 + timedelta(seconds=9, milliseconds=999)) == 0
    for step in range(1, 4):
        moment = T0 + timedelta(seconds=10 * step)
        assert engine.dispatch_due(due_index, moment) == 1
        assert engine.dispatch_due(due_index, moment) == 0  # a second scheduler finds nothing
    expected = [f"{schedule.pk}:{to_epoch_ms(T0 + timedelta(seconds=10 * step))}" for step in range(1, 4)]
    assert fire_keys(due_index) == expected
    state = due_index.state(str(schedule.pk))
    assert state["count"] == "3"
    assert int(state["next"]) == to_epoch_ms(T0 + timedelta(seconds=40))


def test_late_dispatch_within_grace_keeps_the_grid(job, due_index):
    create(job, kind="fixed", interval_seconds=10, misfire_grace_seconds=30)
    # Woken 5 s late: the occurrence fires now; the next stays on the grid (no drift).
    assert engine.dispatch_due(due_index, T0 + timedelta(seconds=15)) == 1
    assert engine.dispatch_due(due_index, T0 + timedelta(seconds=19)) == 0
    assert engine.dispatch_due(due_index, T0 + timedelta(seconds=20)) == 1


def test_cron_schedule_carries_its_upcoming_times(job, due_index):
    schedule = create(job, kind="cron", expression="*/5 * * * *")
    state = due_index.state(str(schedule.pk))
    ahead = [from_epoch_ms(int(moment)) for moment in state["ahead"].split(",")]
    assert ahead == [T0 + timedelta(minutes=5 * step) for step in range(2, 2 + LOOK_AHEAD)]
    for minute in range(5, 5 * (LOOK_AHEAD + 5), 5):
        moment = T0 + timedelta(minutes=minute)
        assert engine.dispatch_due(due_index, moment) == 1
        engine.handle_work(due_index, moment)
        state = due_index.state(str(schedule.pk))
        assert from_epoch_ms(int(state["next"])) == moment + timedelta(minutes=5)
        assert int(state["n_ahead"]) >= REFILL_BELOW


def test_cron_keeps_firing_while_python_is_away_then_waits_for_it(job, due_index):
    create(job, kind="cron", expression="* * * * *")
    # No handle_work between fires: the carried times last LOOK_AHEAD + 1 fires, then the
    # schedule waits in the work set until Python computes more.
    for minute in range(1, LOOK_AHEAD + 2):
        assert engine.dispatch_due(due_index, T0 + timedelta(minutes=minute)) == 1
    late = T0 + timedelta(minutes=LOOK_AHEAD + 2)
    assert engine.dispatch_due(due_index, late) == 0
    engine.handle_work(due_index, late)
    assert engine.dispatch_due(due_index, late) == 1
    assert len(set(fire_keys(due_index))) == LOOK_AHEAD + 2


def test_misfire_skip_records_each_missed_occurrence(job, due_index):
    schedule = create(job, kind="fixed", interval_seconds=60, misfire_grace_seconds=5)
    later = T0 + timedelta(minutes=10, seconds=30)
    assert engine.dispatch_due(due_index, later) == 0
    assert engine.handle_work(due_index, later) == 1
    missed = Run.objects.filter(schedule_id=schedule.pk, status=Run.Status.MISSED)
    assert sorted(run.nominal_time for run in missed if run.nominal_time) == [
        T0 + timedelta(minutes=m) for m in range(1, 11)
    ]
    assert fire_keys(due_index) == []
    assert int(due_index.state(str(schedule.pk))["next"]) == to_epoch_ms(T0 + timedelta(minutes=11))


def test_misfire_run_once_coalesces(job, due_index):
    schedule = create(job, kind="fixed", interval_seconds=60, misfire_grace_seconds=5, misfire_policy="run_once")
    later = T0 + timedelta(minutes=10, seconds=30)
    engine.dispatch_due(due_index, later)
    engine.handle_work(due_index, later)
    entries = stream_entries(due_index)
    assert [(entry["fk"], entry["t"]) for entry in entries] == [
        (f"{schedule.pk}:{to_epoch_ms(T0 + timedelta(minutes=10))}", "catch_up")
    ]
    assert not Run.objects.filter(status=Run.Status.MISSED).exists()


def test_misfire_run_all_is_bounded_by_window_and_count(job, due_index):
    schedule = create(
        job,
        kind="fixed",
        interval_seconds=60,
        misfire_grace_seconds=5,
        misfire_policy="run_all",
        catchup_window_seconds=300,
        catchup_max_runs=3,
    )
    later = T0 + timedelta(minutes=10, seconds=30)
    engine.dispatch_due(due_index, later)
    engine.handle_work(due_index, later)
    # In the 5-minute window: minutes 6..10; at most 3 run (the latest), the rest are missed.
    assert fire_keys(due_index) == [f"{schedule.pk}:{to_epoch_ms(T0 + timedelta(minutes=m))}" for m in (8, 9, 10)]
    missed = sorted(run.nominal_time for run in Run.objects.filter(status=Run.Status.MISSED) if run.nominal_time)
    assert missed == [T0 + timedelta(minutes=m) for m in range(1, 8)]


def test_max_runs_and_end_bound_the_fires(job, due_index):
    create(job, kind="fixed", interval_seconds=1, max_runs=3)
    create(job, kind="fixed", interval_seconds=1, end_at=T0 + timedelta(seconds=2))
    for second in range(1, 8):
        moment = T0 + timedelta(seconds=second)
        engine.dispatch_due(due_index, moment)
        engine.handle_work(due_index, moment)
    assert len(fire_keys(due_index)) == 3 + 2
    assert due_index.earliest_due_ms() is None


def test_at_kind_fires_once(job, due_index):
    create(job, kind="at", anchor=T0 + timedelta(seconds=30))
    assert engine.dispatch_due(due_index, T0 + timedelta(seconds=30)) == 1
    engine.handle_work(due_index, T0 + timedelta(seconds=30))
    assert engine.dispatch_due(due_index, T0 + timedelta(days=1)) == 0
    assert due_index.earliest_due_ms() is None


def test_edit_takes_effect_on_the_next_dispatch(job, due_index):
    schedule = create(job, kind="fixed", interval_seconds=60)
    services.schedule_update(schedule, interval_seconds=5, anchor=T0, now=lambda: T0 + timedelta(seconds=1))
    assert engine.dispatch_due(due_index, T0 + timedelta(seconds=5)) == 1


def test_deleted_schedule_never_fires(job, due_index):
    schedule = create(job, kind="fixed", interval_seconds=5)
    services.schedule_delete(schedule)
    assert engine.dispatch_due(due_index, T0 + timedelta(minutes=5)) == 0


def test_sync_fired_writes_counts_and_times_to_mongodb(job, due_index):
    schedule = create(job, kind="fixed", interval_seconds=10)
    engine.dispatch_due(due_index, T0 + timedelta(seconds=10))
    engine.dispatch_due(due_index, T0 + timedelta(seconds=20))
    assert engine.sync_fired(due_index) == 1
    saved = Schedule.objects.get(pk=schedule.pk)
    assert saved.run_count == 2
    assert saved.last_run_at == T0 + timedelta(seconds=20)
    assert saved.next_run_at == T0 + timedelta(seconds=30)
    assert saved.generation == schedule.generation  # engine writes are not edits


def test_reconcile_rebuilds_an_emptied_redis_without_replaying(job, keyspace, due_index):
    schedule = create(job, kind="fixed", interval_seconds=10, misfire_grace_seconds=5)
    engine.dispatch_due(due_index, T0 + timedelta(seconds=10))
    engine.sync_fired(due_index)
    for key in keyspace.client.scan_iter(match=f"*{keyspace.prefix}*"):
        keyspace.client.delete(key)
    report = engine.reconcile(due_index, T0 + timedelta(seconds=12))
    assert report["added"] == 1
    assert engine.dispatch_due(due_index, T0 + timedelta(seconds=12)) == 0
    assert engine.dispatch_due(due_index, T0 + timedelta(seconds=20)) == 1
    assert fire_keys(due_index) == [f"{schedule.pk}:{to_epoch_ms(T0 + timedelta(seconds=20))}"]


def test_reconcile_replays_an_occurrence_redis_lost_before_it_was_recorded(job, keyspace, due_index):
    with time_machine.travel(T0, tick=False):  # its last edit: nothing before it is replayed
        schedule = create(job, kind="fixed", interval_seconds=10)
    engine.dispatch_due(due_index, T0 + timedelta(seconds=10))
    engine.dispatch_due(due_index, T0 + timedelta(seconds=20))
    engine.sync_fired(due_index)
    # 10 s ran and was recorded; 30 s too (its worker was quicker); 20 s's entry was still in
    # its stream when Redis lost everything.
    for second in (10, 30):
        moment = T0 + timedelta(seconds=second)
        Run.objects.create(
            job=job,
            schedule=schedule,
            fire_key=f"{schedule.pk}:{to_epoch_ms(moment)}",
            nominal_time=moment,
            status=Run.Status.SUCCEEDED,
        )
    for key in keyspace.client.scan_iter(match=f"*{keyspace.prefix}*"):
        keyspace.client.delete(key)
    engine.reconcile(due_index, T0 + timedelta(seconds=35))
    # Replayed from 20 s (30 s follows: a worker finds it recorded and does not run it again).
    engine.dispatch_due(due_index, T0 + timedelta(seconds=35))
    engine.dispatch_due(due_index, T0 + timedelta(seconds=35))
    assert fire_keys(due_index) == [
        f"{schedule.pk}:{to_epoch_ms(T0 + timedelta(seconds=second))}" for second in (20, 30)
    ]


def test_reconcile_applies_misfire_policy_to_the_gap_and_removes_strays(job, due_index, keyspace):
    schedule = create(job, kind="fixed", interval_seconds=10, misfire_grace_seconds=5)
    for key in keyspace.client.scan_iter(match=f"*{keyspace.prefix}*"):
        keyspace.client.delete(key)
    keyspace.client.hset(due_index.state_key("stray"), "gen", 1)
    keyspace.client.zadd(due_index.due_key(keyspace.shard_of("stray")), {"stray": 0})
    later = T0 + timedelta(seconds=45)
    report = engine.reconcile(due_index, later)
    assert report == {"checked": 1, "added": 1, "updated": 0, "removed": 1}
    engine.dispatch_due(due_index, later)
    engine.handle_work(due_index, later)
    missed = sorted(run.nominal_time for run in Run.objects.filter(schedule_id=schedule.pk) if run.nominal_time)
    assert missed == [T0 + timedelta(seconds=s) for s in (10, 20, 30)]
    # 40 s is within the 5 s grace at 45 s: it still fires, late but once.
    assert engine.dispatch_due(due_index, later) == 1
    assert fire_keys(due_index) == [f"{schedule.pk}:{to_epoch_ms(T0 + timedelta(seconds=40))}"]


def test_daylight_saving_end_to_end(job, due_index):
    new_york = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 7, 12, 0, tzinfo=new_york)
    schedule = create(job, at=start, kind="cron", expression="30 2 * * *", timezone="America/New_York")
    fired = []
    moment = start
    while moment < datetime(2026, 3, 10, 12, 0, tzinfo=new_york):
        moment += timedelta(minutes=15)
        if engine.dispatch_due(due_index, moment):
            fired.append(moment)
        engine.handle_work(due_index, moment)
    keys = fire_keys(due_index)
    nominal = [from_epoch_ms(int(key.split(":")[1])).astimezone(new_york) for key in keys]
    assert [moment.isoformat() for moment in nominal] == [
        "2026-03-08T03:00:00-04:00",  # 02:30 did not exist: fired once, at the jump
        "2026-03-09T02:30:00-04:00",
        "2026-03-10T02:30:00-04:00",
    ]
    assert all(key.startswith(f"{schedule.pk}:") for key in keys)


def test_two_stores_racing_dispatch_each_occurrence_once(job, keyspace, due_index):
    for _ in range(50):
        create(job, kind="fixed", interval_seconds=1)
    rival = DueIndex(keyspace)  # another scheduler's, with connections of its own
    total = 0
    for second in range(1, 11):
        moment = T0 + timedelta(seconds=second)
        total += engine.dispatch_due(rival, moment, [3, 2, 1, 0]) + engine.dispatch_due(due_index, moment)
    keys = fire_keys(due_index)
    assert total == len(keys) == 500 == len(set(keys))


@pytest.mark.parametrize("policy", ["skip", "run_once", "run_all"])
def test_stale_lease_is_taken_over(job, due_index, policy):
    schedule = create(job, kind="fixed", interval_seconds=60, misfire_grace_seconds=5, misfire_policy=policy)
    later = T0 + timedelta(minutes=3)
    engine.dispatch_due(due_index, later)
    # A scheduler leased the work and died: nothing happens until its lease expires.
    assert due_index.claim_work(to_epoch_ms(later), 10_000) == [
        (due_index.shard_of(str(schedule.pk)), str(schedule.pk))
    ]
    assert engine.handle_work(due_index, later + timedelta(seconds=5)) == 0
    assert engine.handle_work(due_index, later + timedelta(seconds=11)) == 1


def test_reconcile_lock_is_held_by_one_scheduler_at_a_time(coordination):
    assert coordination.try_lock("reconcile", "a", 10_000)
    assert not coordination.try_lock("reconcile", "b", 10_000)
    coordination.unlock("reconcile", "b")  # not b's to free
    assert not coordination.try_lock("reconcile", "b", 10_000)
    coordination.unlock("reconcile", "a")
    assert coordination.try_lock("reconcile", "b", 10_000)


def test_reconcile_keeps_a_mirror_whose_schedule_exists(job, due_index, monkeypatch):
    schedule = create(job, kind="fixed", interval_seconds=10)
    # As if the schedule were created after reconcile read MongoDB: absent from what it saw.
    monkeypatch.setattr(reconciler, "_chunks", lambda items, size: iter([]))
    report = engine.reconcile(due_index, T0)
    assert report["removed"] == 0
    assert due_index.state(str(schedule.pk))["gen"] == "1"


# --- enabling and disabling a job ---------------------------------------------------------------


def test_a_disabled_jobs_schedules_are_not_dispatched_and_go_on_from_enabling(job, due_index):
    from jobs.services import job_update

    fixed = create(job, kind="fixed", interval_seconds=10)
    cron = create(job, kind="cron", expression="*/5 * * * *")
    paused = create(job, kind="fixed", interval_seconds=10, paused=True)
    job_update(job, enabled=False, now=lambda: T0 + timedelta(seconds=5))
    added = create(job, at=T0 + timedelta(seconds=5), kind="fixed", interval_seconds=10)
    for schedule in (fixed, cron, paused, added):
        saved = Schedule.objects.get(pk=schedule.pk)
        assert saved.next_run_at is None
        assert due_index.due_score(str(schedule.pk)) is None
        assert due_index.state(str(schedule.pk))["gen"] == str(saved.generation)
    an_hour = T0 + timedelta(hours=1)
    assert engine.dispatch_due(due_index, an_hour) == 0
    engine.handle_work(due_index, an_hour)
    assert fire_keys(due_index) == [] and Run.objects.count() == 0

    back = an_hour + timedelta(seconds=3)
    job_update(job, enabled=True, now=lambda: back)
    assert engine.dispatch_due(due_index, back) == 0  # the disabled hour is not made up for
    engine.handle_work(due_index, back)
    assert Run.objects.count() == 0  # nor recorded as missed
    assert engine.dispatch_due(due_index, an_hour + timedelta(seconds=10)) == 2
    assert fire_keys(due_index) == [
        f"{added.pk}:{to_epoch_ms(an_hour + timedelta(seconds=5))}",
        f"{fixed.pk}:{to_epoch_ms(an_hour + timedelta(seconds=10))}",
    ]
    assert due_index.due_score(str(cron.pk)) == to_epoch_ms(an_hour + timedelta(minutes=5))
    assert due_index.due_score(str(paused.pk)) is None  # still paused


def test_other_job_edits_leave_its_schedules_alone(job):
    from jobs.services import job_update

    schedule = create(job, kind="fixed", interval_seconds=10)
    job_update(job, description="nightly cleanup", enabled=True)
    assert Schedule.objects.get(pk=schedule.pk).generation == schedule.generation


def test_reconcile_keeps_a_disabled_jobs_schedules_stopped(job, due_index, keyspace):
    from jobs.services import job_update

    schedule = create(job, kind="fixed", interval_seconds=10)
    engine.dispatch_due(due_index, T0 + timedelta(seconds=10))
    engine.sync_fired(due_index)
    job_update(job, enabled=False, now=lambda: T0 + timedelta(seconds=12))
    for key in keyspace.client.scan_iter(match=f"*{keyspace.prefix}*"):
        keyspace.client.delete(key)
    assert engine.reconcile(due_index, T0 + timedelta(seconds=30))["added"] == 1
    assert due_index.due_score(str(schedule.pk)) is None
    assert engine.dispatch_due(due_index, T0 + timedelta(hours=1)) == 0


# --- the dispatch step's own connection -----------------------------------------------------------


def test_dispatch_survives_its_connection_being_killed(job, due_index):
    schedule = create(job, kind="fixed", interval_seconds=10)
    assert engine.dispatch_due(due_index, T0 + timedelta(seconds=10)) == 1
    if due_index.keyspace.cluster:  # a connection to each master
        lanes = [
            (lane, redis.Redis(host=lane.host, port=lane.port)) for lane in due_index._scripts._nodes.connections()
        ]
    else:
        lanes = [(due_index._scripts._lanes.connection, due_index.client)]
    for lane, server in lanes:
        lane.send_command("CLIENT", "ID")
        server.client_kill_filter(_id=lane.read_response())
    # The step goes the usual way this once (the connection is gone), then on a new one.
    assert engine.dispatch_due(due_index, T0 + timedelta(seconds=20)) == 1
    assert engine.dispatch_due(due_index, T0 + timedelta(seconds=30)) == 1
    assert engine.dispatch_due(due_index, T0 + timedelta(seconds=30)) == 0
    assert fire_keys(due_index) == [f"{schedule.pk}:{to_epoch_ms(T0 + timedelta(seconds=s))}" for s in (10, 20, 30)]


def test_dispatch_loads_its_script_when_redis_lacks_it(job, keyspace, monkeypatch, due_index):
    import uuid

    # A script text Redis has never seen, as after a restart: the first call answers NOSCRIPT.
    original = scripts.source
    fresh = f"\n-- {uuid.uuid4().hex}"
    monkeypatch.setattr(scripts, "source", lambda package, name: original(package, name) + fresh)
    monkeypatch.setattr(scripts, "sha", functools.cache(scripts.sha.__wrapped__))  # SHAs of the new texts
    unseen = DueIndex(keyspace)
    assert not unseen.client.script_exists(unseen._scripts._sha["dispatch"])[0]
    schedule = create(job, kind="fixed", interval_seconds=10)
    assert engine.dispatch_due(unseen, T0 + timedelta(seconds=10)) == 1
    assert unseen.client.script_exists(unseen._scripts._sha["dispatch"])[0]
    assert engine.dispatch_due(unseen, T0 + timedelta(seconds=20)) == 1
    assert fire_keys(due_index) == [f"{schedule.pk}:{to_epoch_ms(T0 + timedelta(seconds=s))}" for s in (10, 20)]


def test_a_scheduler_fires_what_is_mirrored_while_it_rebuilds_a_lost_mirror(job, due_index, monkeypatch):
    import threading
    import time

    schedule = create(job, kind="fixed", interval_seconds=10)
    assert not due_index.is_reconciled()  # as after Redis lost data: the marker is gone
    rebuilding, release = threading.Event(), threading.Event()

    def slow_reconcile(*args, **kwargs):
        rebuilding.set()
        release.wait(10)
        return {}

    monkeypatch.setattr(loop, "reconcile", slow_reconcile)
    stop = threading.Event()
    moment = (T0 + timedelta(seconds=10)).timestamp()
    scheduler = threading.Thread(target=engine.run_loop, args=(due_index, stop), kwargs={"clock": lambda: moment})
    scheduler.start()
    try:
        deadline = time.monotonic() + 5
        while not fire_keys(due_index) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert rebuilding.is_set() and not release.is_set()
        assert fire_keys(due_index) == [f"{schedule.pk}:{to_epoch_ms(T0 + timedelta(seconds=10))}"]
    finally:
        release.set()
        stop.set()
        scheduler.join(10)


def test_housekeeping_rides_out_an_outage_and_stops_the_scheduler_on_anything_else(job, due_index, monkeypatch):
    import pymongo.errors

    create(job, kind="fixed", interval_seconds=10)
    due_index.mark_reconciled()
    calls: list[str] = []

    def sync_fired(index, limit=0):
        calls.append("sync")
        if len(calls) <= 3:
            raise pymongo.errors.ServerSelectionTimeoutError("MongoDB is away")
        raise ValueError("a bug")

    monkeypatch.setattr(loop, "sync_fired", sync_fired)
    stop = threading.Event()
    settings = loop.LoopSettings(sync_every=0, beat_every=0.01)
    monkeypatch.setattr(loop, "Backoff", functools.partial(loop.Backoff, first=0.01, cap=0.02))
    with pytest.raises(engine.SchedulerFailed, match="a bug"):
        engine.run_loop(due_index, stop, options=settings, clock=lambda: (T0 + timedelta(seconds=5)).timestamp())
    assert calls == ["sync"] * 4  # three tries through the outage, then the error that is not one
    assert stop.is_set()
