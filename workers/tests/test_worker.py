"""The worker's steps driven directly against real Redis and MongoDB (and real child processes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from jobs import run_records, services
from jobs.models import Job, Run
from jobs.runqueue import WORKER_GROUP, Entry, RunQueue
from jobs.services import job_create, run_now
from jobscheduler.coordination import SCHEDULERS
from schedules import services as schedule_services
from schedules.models import Schedule
from workers import children, loop
from workers.children import Slot
from workers.handler import handle, overlap_decision_policy, retry_delay
from workers.outcome import Outcome
from workers.worker import Worker, WorkerOptions

# On a single Redis and on a Redis Cluster (conftest.py: redis_mode).
pytestmark = pytest.mark.redis_modes("single", "cluster")

T0 = 1_800_000_000.0


class Clock:
    """The worker's time, moved by the test."""

    def __init__(self, start: float = T0):
        self.now = start

    def __call__(self) -> float:
        return self.now


class Scripted:
    """An executor that answers what the test says (the real one is Slot, tested elsewhere)."""

    def __init__(self, *outcomes: Outcome):
        self.outcomes = list(outcomes)
        self.calls: list[tuple[str, int]] = []

    def execute(self, job: Job, *, fire_key: str, attempt: int, target: Any = None) -> Outcome:
        self.calls.append((fire_key, attempt))
        return self.outcomes.pop(0) if self.outcomes else Outcome("succeeded", "ok")


FAILED = Outcome("failed", error="boom")


@pytest.fixture(scope="module")
def slot(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Slot]:
    with django_db_blocker.unblock():
        shared = Slot(children.child_env(), output_limit=500)
    yield shared
    shared.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_worker(runqueue: RunQueue, clock: Clock, name: str = "w1", **options: Any) -> Worker:
    options.setdefault("takeover_seconds", 30)
    options.setdefault("lookup_cache_seconds", 0)  # each step sees the test's latest writes
    return Worker(
        runqueue, name=name, options=WorkerOptions(concurrency=1, **options), clock=clock, random_unit=lambda: 0.5
    )


@pytest.fixture
def worker(runqueue: RunQueue, clock: Clock) -> Worker:
    runqueue.ensure_groups()
    return make_worker(runqueue, clock)


def make_job(user: Any, **fields: Any) -> Job:
    fields.setdefault("target_type", "python")
    fields.setdefault("target", {"task": "demo.tasks.hello"})
    return job_create(owner=user, name=f"job-{time.monotonic_ns()}", **fields)


def dispatch(runqueue: RunQueue, schedule: Schedule, nominal_ms: int, trigger: str = "schedule") -> None:
    """Put an occurrence on its stream exactly as the scheduler's dispatch step does."""
    sid = str(schedule.pk)
    fields = {"fk": f"{sid}:{nominal_ms}", "s": sid, "j": str(schedule.job_id), "n": str(nominal_ms), "t": trigger}
    runqueue.client.xadd(runqueue.stream_key(runqueue.keyspace.shard_of(sid)), fields)  # type: ignore[arg-type]


def read_one(worker: Worker) -> Entry:
    entries = worker.read(1)
    assert len(entries) == 1
    return entries[0]


def stream_sizes(runqueue: RunQueue) -> tuple[int, int]:
    """Entries on the streams and entries pending in the group, over all shards."""
    entries = pending = 0
    for shard in range(runqueue.shards):
        entries += runqueue.client.xlen(runqueue.stream_key(shard))
        info: Any = runqueue.client.xpending(runqueue.stream_key(shard), WORKER_GROUP)
        pending += info["pending"]
    return entries, pending


def runs(fire_key: str) -> list[Run]:
    return list(Run.objects.filter(fire_key=fire_key).order_by("attempt"))


# --- pure logic ----------------------------------------------------------------------------------


def test_retry_delay_doubles_with_jitter_of_twenty_percent_and_a_cap():
    def delays(unit: float, cap: float = 3600) -> list[float]:
        return [retry_delay(a, 10, random_unit=lambda: unit, cap_seconds=cap) for a in range(1, 6)]

    assert delays(0.5) == pytest.approx([10, 20, 40, 80, 160])
    assert delays(0.0) == pytest.approx([8, 16, 32, 64, 128])  # random_unit is in [0, 1): -20 % ...
    assert delays(1.0) == pytest.approx([12, 24, 48, 96, 192])  # ... up to (not quite) +20 %
    assert delays(0.5, cap=50) == pytest.approx([10, 20, 40, 50, 50])
    assert retry_delay(1000, 10, random_unit=lambda: 0.5, cap_seconds=3600) == 3600
    assert retry_delay(3, 0, random_unit=lambda: 0.9, cap_seconds=3600) == 0


def test_manual_runs_and_retries_ignore_the_overlap_policy():
    assert overlap_decision_policy("schedule", "skip") == "skip"
    assert overlap_decision_policy("catch_up", "buffer_one") == "buffer_one"
    assert overlap_decision_policy("manual", "skip") == "always"
    assert overlap_decision_policy("retry", "buffer_one") == "always"


def test_overlap_decisions(runqueue):
    shard = runqueue.keyspace.shard_of("s1")

    def decide(fk: str, policy: str, now: int = 1000) -> str:
        hold = (shard, "0-1", {"fk": fk}, now + 5000) if policy == "buffer_one" else None
        return runqueue.overlap_enter("s1", fk, policy, now_ms=now, lease_ms=5000, hold=hold)

    assert decide("a", "skip") == "run"
    assert decide("b", "skip") == "skip"
    assert decide("c", "allow") == "run"
    assert decide("d", "buffer_one") == "hold"
    assert decide("e", "buffer_one") == "skip"  # one waits already
    assert decide("d", "buffer_one") == "hold"  # still waiting: held again
    runqueue.overlap_leave("s1", "a", 1000)
    runqueue.overlap_leave("s1", "c", 1000)
    assert runqueue.delayed(shard) == [({"fk": "d", "h": "1"}, 1000)]  # released early by the leave
    assert decide("d", "buffer_one") == "run"  # the one that waited goes
    assert decide("f", "always") == "run"
    # A dead worker's lease runs out: its run no longer counts as running.
    assert decide("g", "skip", now=7000) == "run"


# --- one entry -------------------------------------------------------------------------------------


def test_manual_run_succeeds_and_every_time_is_recorded(user, worker, slot, clock, runqueue):
    job = make_job(user)
    key = run_now(job, user=user)
    entry = read_one(worker)
    assert (entry.fire_key, entry.trigger, entry.attempt, entry.schedule_id) == (key, "manual", 1, "")
    assert entry.shard == runqueue.keyspace.shard_of(str(job.pk))
    assert handle(worker, entry, slot) == "succeeded"
    (run,) = runs(key)
    assert (run.status, run.trigger, run.attempt, run.worker) == ("succeeded", "manual", 1, "w1")
    assert run.output == '"hello, world"' and run.error == ""
    assert run.dispatched_at is not None
    assert int(run.dispatched_at.timestamp() * 1000) == entry.dispatched_ms
    assert run.started_at is not None and run.finished_at is not None
    assert stream_sizes(runqueue) == (0, 0)
    assert worker.holding() == []


def test_failures_retry_on_the_backoff_timetable_each_attempt_its_own_run(user, runqueue, worker, slot, clock):
    job = make_job(user, target={"task": "demo.tasks.fail"}, max_attempts=3, retry_backoff_seconds=10)
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=3600)
    dispatch(runqueue, schedule, 5000)
    key = f"{schedule.pk}:5000"
    assert handle(worker, read_one(worker), slot) == "retry"
    shard = runqueue.keyspace.shard_of(str(schedule.pk))
    (waiting,) = runqueue.delayed(shard)
    expected = {"a": "2", "fk": key, "j": str(job.pk), "n": "5000", "s": str(schedule.pk), "t": "retry"}
    assert waiting == (expected, int(T0 * 1000) + 10_000)
    assert stream_sizes(runqueue) == (0, 0)  # the entry left the stream with the retry's scheduling

    # Attempt 2 is due 10 s later (jitter at its middle), attempt 3 20 s after that.
    for attempt, delay in ((2, 10), (3, 20)):
        clock.now += delay - 0.001
        assert worker.release_due() == 0
        clock.now += 0.001
        assert worker.release_due() == 1
        entry = read_one(worker)
        assert (entry.attempt, entry.trigger, entry.fire_key) == (attempt, "retry", key)
        assert handle(worker, entry, slot) == ("retry" if attempt == 2 else "failed")
    recorded = runs(key)
    assert [(r.attempt, r.trigger, r.status) for r in recorded] == [
        (1, "schedule", "failed"),
        (2, "retry", "failed"),
        (3, "retry", "failed"),
    ]
    assert all(r.error.endswith("RuntimeError: demo failure") for r in recorded)
    assert all(r.schedule_id == schedule.pk and r.nominal_time == recorded[0].nominal_time for r in recorded)
    assert stream_sizes(runqueue) == (0, 0) and runqueue.delayed(shard) == []


def test_a_task_that_sleeps_past_its_timeout_is_killed_and_retried(user, worker, slot):
    job = make_job(
        user, target={"task": "demo.tasks.sleep", "kwargs": {"seconds": 60}}, timeout_seconds=1, max_attempts=2
    )
    key = run_now(job, user=user)
    started = time.monotonic()
    assert handle(worker, read_one(worker), slot) == "retry"
    assert time.monotonic() - started < 5
    (run,) = runs(key)
    assert run.status == "timed_out" and "the run's process was killed" in run.error


def test_command_target(user, worker, slot, settings):
    settings.JOBSCHEDULER_ALLOWED_COMMANDS = {"purge_runs": [["--dry-run"]]}
    job = make_job(user, target_type="command", target={"command": "purge_runs", "args": ["--dry-run"]})
    key = run_now(job, user=user)
    assert handle(worker, read_one(worker), slot) == "succeeded"
    (run,) = runs(key)
    assert "would delete" in run.output


def test_a_replayed_entry_is_recorded_once_and_never_runs_twice(user, worker, runqueue):
    job = make_job(user)
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=3600)
    executor = Scripted()
    dispatch(runqueue, schedule, 7000)
    assert handle(worker, read_one(worker), executor) == "succeeded"
    dispatch(runqueue, schedule, 7000)  # Redis lost its data and the scheduler fired it again
    assert handle(worker, read_one(worker), executor) == "duplicate"
    assert executor.calls == [(f"{schedule.pk}:7000", 1)]
    assert len(runs(f"{schedule.pk}:7000")) == 1
    assert stream_sizes(runqueue) == (0, 0)


def test_a_replayed_failure_whose_retry_was_lost_gets_it_back(user, runqueue, worker, clock):
    job = make_job(user, max_attempts=2, retry_backoff_seconds=1)
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=3600)
    dispatch(runqueue, schedule, 9000)
    assert handle(worker, read_one(worker), Scripted(FAILED)) == "retry"
    runqueue.client.delete(runqueue.delayed_key(runqueue.keyspace.shard_of(str(schedule.pk))))  # lost with Redis
    dispatch(runqueue, schedule, 9000)
    assert handle(worker, read_one(worker), Scripted()) == "retry"
    clock.now += 2
    assert worker.release_due() == 1
    assert handle(worker, read_one(worker), Scripted()) == "succeeded"
    dispatch(runqueue, schedule, 9000)
    assert handle(worker, read_one(worker), Scripted()) == "duplicate"
    assert [(r.attempt, r.status) for r in runs(f"{schedule.pk}:9000")] == [(1, "failed"), (2, "succeeded")]


def test_the_group_is_recreated_when_redis_lost_it(user, runqueue, worker):
    for shard in range(runqueue.shards):
        runqueue.client.delete(runqueue.stream_key(shard))
    assert worker.read(1) == []
    groups: Any = runqueue.client.xinfo_groups(runqueue.stream_key(0))
    assert [group["name"] for group in groups] == [WORKER_GROUP.encode()]
    job = make_job(user)
    run_now(job, user=user)
    assert handle(worker, read_one(worker), Scripted()) == "succeeded"


def test_entries_of_deleted_jobs_and_schedules_are_dropped(user, worker, runqueue):
    job = make_job(user)
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=3600)
    dispatch(runqueue, schedule, 1000)
    schedule_services.schedule_delete(schedule)
    assert handle(worker, read_one(worker), Scripted()) == "dropped"
    run_now(job, user=user)
    services.job_delete(job)
    assert handle(worker, read_one(worker), Scripted()) == "dropped"
    assert stream_sizes(runqueue) == (0, 0)


def test_an_occurrence_in_flight_when_its_job_is_disabled_is_skipped_but_run_now_runs(
    user, due_index, worker, runqueue
):
    job = make_job(user)
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=3600)
    dispatch(runqueue, schedule, 1000)  # on the stream already when the job is disabled
    services.job_update(job, enabled=False)
    assert due_index.due_score(str(schedule.pk)) is None  # nothing more is dispatched
    assert handle(worker, read_one(worker), Scripted()) == "skipped"
    assert runs(f"{schedule.pk}:1000")[0].error == "Skipped: the job is disabled."
    key = run_now(job, user=user)
    assert handle(worker, read_one(worker), Scripted()) == "succeeded"
    assert runs(key)[0].status == "succeeded"


# --- overlap -------------------------------------------------------------------------------------


def running_elsewhere(runqueue: RunQueue, schedule: Schedule, fire_key: str) -> None:
    """Another worker's run of the schedule, in progress."""
    assert runqueue.overlap_enter(str(schedule.pk), fire_key, "allow", now_ms=int(T0 * 1000), lease_ms=60_000) == "run"


def test_overlap_skip_records_a_skipped_run(user, runqueue, worker):
    job = make_job(user)
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1, overlap_policy="skip")
    running_elsewhere(runqueue, schedule, "other")
    dispatch(runqueue, schedule, 2000)
    executor = Scripted()
    assert handle(worker, read_one(worker), executor) == "skipped"
    (skipped,) = runs(f"{schedule.pk}:2000")
    assert skipped.status == "skipped" and "still running" in skipped.error
    assert skipped.finished_at is not None and skipped.started_at is None
    run_now(job, schedule=schedule, user=user)  # run now is never skipped
    assert handle(worker, read_one(worker), executor) == "succeeded"
    runqueue.overlap_leave(str(schedule.pk), "other", int(T0 * 1000))
    dispatch(runqueue, schedule, 3000)
    assert handle(worker, read_one(worker), executor) == "succeeded"
    assert len(executor.calls) == 2


def test_a_run_in_progress_on_one_worker_makes_the_next_skip_on_another(user, runqueue, clock):
    runqueue.ensure_groups()
    job = make_job(user)
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1, overlap_policy="skip")
    started, release = threading.Event(), threading.Event()

    class Blocking:
        def execute(self, job: Job, *, fire_key: str, attempt: int, target: Any = None) -> Outcome:
            started.set()
            release.wait(10)
            return Outcome("succeeded")

    first, second = make_worker(runqueue, clock, "w1"), make_worker(runqueue, clock, "w2")
    dispatch(runqueue, schedule, 1000)
    running = threading.Thread(target=handle, args=(first, read_one(first), Blocking()))
    running.start()
    assert started.wait(10)
    dispatch(runqueue, schedule, 2000)
    assert handle(second, read_one(second), Scripted()) == "skipped"
    release.set()
    running.join(10)
    dispatch(runqueue, schedule, 3000)
    assert handle(second, read_one(second), Scripted()) == "succeeded"
    statuses = dict(Run.objects.filter(schedule=schedule).values_list("fire_key", "status"))
    assert statuses == {
        f"{schedule.pk}:{n}": s for n, s in ((1000, "succeeded"), (2000, "skipped"), (3000, "succeeded"))
    }


def test_overlap_buffer_one_holds_one_and_runs_it_when_the_running_one_ends(user, runqueue, worker):
    job = make_job(user)
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1, overlap_policy="buffer_one")
    sid = str(schedule.pk)
    running_elsewhere(runqueue, schedule, "other")
    dispatch(runqueue, schedule, 2000)
    dispatch(runqueue, schedule, 3000)
    executor = Scripted()
    assert handle(worker, read_one(worker), executor) == "held"
    assert runs(f"{sid}:2000")[0].status == "pending"
    assert handle(worker, read_one(worker), executor) == "skipped"
    assert runs(f"{sid}:3000")[0].status == "skipped"
    assert stream_sizes(runqueue) == (0, 0)
    assert worker.release_due() == 0  # not yet: the running one still runs
    runqueue.overlap_leave(sid, "other", int(T0 * 1000))
    assert worker.release_due() == 1
    held = read_one(worker)
    assert held.held and held.fire_key == f"{sid}:2000"
    assert handle(worker, held, executor) == "succeeded"
    assert [(r.attempt, r.status) for r in runs(f"{sid}:2000")] == [(1, "succeeded")]
    assert executor.calls == [(f"{sid}:2000", 1)]
    assert stream_sizes(runqueue) == (0, 0) and runqueue.delayed(runqueue.keyspace.shard_of(sid)) == []


def test_overlap_allow_lets_runs_overlap(user, worker, runqueue):
    job = make_job(user)
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1)
    running_elsewhere(runqueue, schedule, "other")
    dispatch(runqueue, schedule, 2000)
    assert handle(worker, read_one(worker), Scripted()) == "succeeded"


def test_jobs_and_overlap_policies_are_cached_briefly(user, worker):
    worker.options.lookup_cache_seconds = 60
    job = make_job(user)
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1)
    assert worker.schedule_policy(str(schedule.pk)) == "allow"
    assert worker.job(str(job.pk)).timeout_seconds == 300
    schedule_services.schedule_update(schedule, overlap_policy="skip")
    services.job_update(job, timeout_seconds=5)
    assert worker.schedule_policy(str(schedule.pk)) == "allow"
    assert worker.job(str(job.pk)).timeout_seconds == 300
    worker.options.lookup_cache_seconds = 0
    assert worker.schedule_policy(str(schedule.pk)) == "skip"
    assert worker.job(str(job.pk)).timeout_seconds == 5
    assert worker.schedule_policy("not-an-id") is None
    assert worker.job("not-an-id") is None


# --- takeover ------------------------------------------------------------------------------------


def start_and_die(runqueue: RunQueue, user: Any, job: Job, name: str = "dead") -> str:
    """A worker reads a manual run, starts it, and is killed before it finishes."""
    key = run_now(job, user=user)
    dead = make_worker(runqueue, Clock(), name=name)
    entry = read_one(dead)
    run, _ = run_records.run_begin(
        run_records.run_draft(
            job_id=entry.job_id,
            schedule_id="",
            fire_key=key,
            attempt=1,
            trigger="manual",
            nominal_time=None,
            dispatched_at=services.timezone.now(),
            worker=name,
        )
    )
    assert run_records.run_started(run, worker=name, now=services.timezone.now())
    return key


def test_a_dead_workers_run_is_taken_over_and_continues_as_a_new_attempt(user, runqueue, clock):
    runqueue.ensure_groups()
    job = make_job(user)
    key = start_and_die(runqueue, user, job)
    other = make_worker(runqueue, clock, name="w2", takeover_seconds=0)
    (claimed,) = other.take_over(5)
    assert claimed.claimed and claimed.fire_key == key
    assert handle(other, claimed, Scripted()) == "taken over"
    entry = read_one(other)
    assert (entry.attempt, entry.trigger, entry.takeovers) == (2, "retry", 1)
    assert handle(other, entry, Scripted()) == "succeeded"
    recorded = runs(key)
    assert [(r.attempt, r.trigger, r.status, r.worker) for r in recorded] == [
        (1, "manual", "failed", "dead"),
        (2, "retry", "succeeded", "w2"),
    ]
    assert recorded[0].error == "Worker dead lost mid-run; taken over by w2."
    assert stream_sizes(runqueue) == (0, 0)
    assert other.take_over(5) == []


def test_takeovers_are_bounded(user, runqueue, clock):
    runqueue.ensure_groups()
    job = make_job(user)
    key = run_now(job, user=user)
    shard = runqueue.keyspace.shard_of(str(job.pk))
    (entry_id, fields), *_ = [(e.decode(), f) for e, f in runqueue.client.xrange(runqueue.stream_key(shard))]
    runqueue.replace(shard, entry_id, {k.decode(): v.decode() for k, v in fields.items()} | {"k": "3"})
    dead = make_worker(runqueue, Clock(), name="dead")
    entry = read_one(dead)
    run, _ = run_records.run_begin(
        run_records.run_draft(
            job_id=entry.job_id,
            schedule_id="",
            fire_key=key,
            attempt=1,
            trigger="manual",
            nominal_time=None,
            dispatched_at=services.timezone.now(),
            worker="dead",
        )
    )
    run_records.run_started(run, worker="dead", now=services.timezone.now())
    other = make_worker(runqueue, clock, name="w2", takeover_seconds=0, max_takeovers=3)
    (claimed,) = other.take_over(1)
    assert handle(other, claimed, Scripted()) == "given up"
    (only,) = runs(key)
    assert only.status == "failed" and "Given up after 3 takeovers" in only.error
    assert stream_sizes(runqueue) == (0, 0)


def test_a_live_worker_keeps_its_entries_and_never_takes_back_a_lost_one(user, runqueue, clock):
    runqueue.ensure_groups()
    job = make_job(user)
    run_now(job, user=user)
    live = make_worker(runqueue, clock, name="live")
    entry = read_one(live)
    time.sleep(0.3)
    live.keep_alive()
    thief = make_worker(runqueue, clock, name="thief", takeover_seconds=0.25)
    assert thief.take_over(5) == []  # idle time was just reset
    thief.options.takeover_seconds = 0
    (taken,) = thief.take_over(5)
    assert taken.entry_id == entry.entry_id
    live.keep_alive()
    pending: Any = runqueue.client.xpending_range(runqueue.stream_key(entry.shard), WORKER_GROUP, "-", "+", 10)
    assert [p["consumer"] for p in pending] == [b"thief"]
    # The run's outcome is not recorded by the worker that lost it.
    assert handle(live, entry, Scripted()) == "lost"


def test_a_replay_of_a_running_attempt_of_a_live_worker_is_left_alone(user, runqueue, coordination, clock):
    runqueue.ensure_groups()
    job = make_job(user)
    key = start_and_die(runqueue, user, job, name="busy")
    coordination.beat("workers", "busy", {})
    run_id = runs(key)[0].pk
    runqueue.add(Entry(runqueue.keyspace.shard_of(str(job.pk)), "", key, "", str(job.pk), 1, "manual"))
    other = make_worker(runqueue, clock, name="w2")
    # Both the dead-looking original and the copy: only the copy is read as new.
    assert handle(other, read_one(other), Scripted()) == "duplicate"
    assert Run.objects.get(pk=run_id).status == "running"
    coordination.forget_beat("workers", "busy")  # now it is gone: a copy continues the run
    runqueue.add(Entry(runqueue.keyspace.shard_of(str(job.pk)), "", key, "", str(job.pk), 1, "manual"))
    assert handle(other, read_one(other), Scripted()) == "taken over"
    assert handle(other, read_one(other), Scripted()) == "succeeded"
    assert [(r.attempt, r.status) for r in runs(key)] == [(1, "failed"), (2, "succeeded")]


def test_a_stopping_worker_gives_back_what_it_did_not_start(user, worker, runqueue):
    job = make_job(user)
    keys = {run_now(job, user=user) for _ in range(3)}
    entries = worker.read(3)
    assert {entry.fire_key for entry in entries} == keys
    worker.give_back(entries)
    assert stream_sizes(runqueue) == (3, 0)
    other = make_worker(runqueue, Clock(), name="w2")
    assert {entry.fire_key for entry in other.read(3)} == keys


# --- auto-pause ----------------------------------------------------------------------------------


def test_a_schedule_is_paused_after_n_failed_runs_in_a_row(user, due_index, worker, runqueue):
    job = make_job(user, pause_schedules_after_failures=2)
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1)
    for nominal, outcome in ((1000, FAILED), (2000, Outcome("succeeded")), (3000, FAILED)):
        dispatch(runqueue, schedule, nominal)
        handle(worker, read_one(worker), Scripted(outcome))
    assert not Schedule.objects.get(pk=schedule.pk).paused
    dispatch(runqueue, schedule, 4000)
    assert handle(worker, read_one(worker), Scripted(FAILED)) == "failed"
    assert Schedule.objects.get(pk=schedule.pk).paused
    assert due_index.due_score(str(schedule.pk)) is None
    assert runs(f"{schedule.pk}:4000")[0].error == "boom\nThe schedule was paused: its last 2 runs failed."


# --- heartbeats and the loop ----------------------------------------------------------------------


def test_heartbeats_are_kept_apart_from_the_schedulers(coordination, worker):
    worker.heartbeat(busy=1)
    assert worker.worker_alive("w1")
    assert coordination.beats("workers")["w1"]["busy"] == 1
    assert coordination.beats(SCHEDULERS) == {}
    coordination.forget_beat("workers", "w1")
    assert not worker.worker_alive("w1")


def test_the_loop_runs_what_is_dispatched_and_stops_when_asked(user, coordination, settings, runqueue):
    job = make_job(user)
    worker = Worker(runqueue, name="loop", options=WorkerOptions(concurrency=2, block_seconds=0.2))
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(worker, stop))
    thread.start()
    try:
        keys = [run_now(job, user=user) for _ in range(3)]
        deadline = time.monotonic() + 30
        while Run.objects.filter(fire_key__in=keys, status="succeeded").count() < 3:
            assert time.monotonic() < deadline, list(Run.objects.values_list("fire_key", "status"))
            time.sleep(0.05)
        assert "loop" in coordination.beats("workers")
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert "loop" not in coordination.beats("workers")
    assert stream_sizes(runqueue) == (0, 0)


def test_an_edit_reaches_a_listening_workers_cache_at_once(user, worker):
    worker.options.lookup_cache_seconds = 3600
    job = make_job(user)
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1)
    assert worker.schedule_policy(str(schedule.pk)) == "allow"
    assert worker.job(str(job.pk)).timeout_seconds == 300
    notices = worker.listen()
    try:
        schedule_services.schedule_update(schedule, overlap_policy="skip")
        services.job_update(job, timeout_seconds=5)
        deadline = time.monotonic() + 5
        while worker.schedule_policy(str(schedule.pk)) != "skip" or worker.job(str(job.pk)).timeout_seconds != 5:
            assert time.monotonic() < deadline, "the edits did not reach the worker's cache"
            time.sleep(0.01)
        services.job_delete(job)
        while worker.job(str(job.pk)) is not None:
            assert time.monotonic() < deadline, "the deletion did not reach the worker's cache"
            time.sleep(0.01)
    finally:
        notices.close()


# --- a worker killed at each step of recording ----------------------------------------------------


class Crash(BaseException):
    """Stands for the worker process dying at this point (nothing after it runs)."""


class DiesWhileRunning:
    def execute(self, job: Job, *, fire_key: str, attempt: int, target: Any = None) -> Outcome:
        raise Crash


def test_a_worker_dying_before_its_batch_is_written_leaves_the_attempt_to_the_taker(user, runqueue, clock):
    runqueue.ensure_groups()
    schedule = schedule_services.schedule_create(job=make_job(user), kind="fixed", interval_seconds=3600)
    dispatch(runqueue, schedule, 5000)
    dying = make_worker(RunQueue(runqueue.keyspace), clock, "dying")
    with pytest.raises(Crash):
        handle(dying, read_one(dying), DiesWhileRunning())
    key = f"{schedule.pk}:5000"
    assert runs(key) == []  # nothing was written: the attempt is the taker's to run
    taker = make_worker(runqueue, clock, "taker", takeover_seconds=0)
    (taken,) = taker.take_over(5)
    assert handle(taker, taken, Scripted()) == "succeeded"
    assert [(run.attempt, run.status, run.worker) for run in runs(key)] == [(1, "succeeded", "taker")]
    assert stream_sizes(runqueue) == (0, 0)


def test_a_worker_dying_between_its_batch_and_the_acknowledgement_records_nothing_twice(
    user, runqueue, clock, monkeypatch
):
    runqueue.ensure_groups()
    schedule = schedule_services.schedule_create(job=make_job(user), kind="fixed", interval_seconds=3600)
    dispatch(runqueue, schedule, 6000)
    dying = make_worker(RunQueue(runqueue.keyspace), clock, "dying")

    def die(*args: Any) -> None:
        raise Crash

    monkeypatch.setattr(dying.runqueue, "ack", die)
    executor = Scripted()
    with pytest.raises(Crash):
        handle(dying, read_one(dying), executor)
    key = f"{schedule.pk}:6000"
    assert [(run.attempt, run.status, run.worker) for run in runs(key)] == [(1, "succeeded", "dying")]
    taker = make_worker(runqueue, clock, "taker", takeover_seconds=0)
    (taken,) = taker.take_over(5)
    assert handle(taker, taken, executor) == "duplicate"
    assert executor.calls == [(key, 1)]  # run once, recorded once
    assert [(run.attempt, run.status, run.worker) for run in runs(key)] == [(1, "succeeded", "dying")]
    assert stream_sizes(runqueue) == (0, 0)


def test_a_stalled_worker_waking_after_a_takeover_does_not_run_or_record_the_attempt_again(user, runqueue, clock):
    runqueue.ensure_groups()
    schedule = schedule_services.schedule_create(job=make_job(user), kind="fixed", interval_seconds=3600)
    dispatch(runqueue, schedule, 7000)
    stalled = make_worker(RunQueue(runqueue.keyspace), clock, "stalled")
    entry = read_one(stalled)  # read, then stopped (SIGSTOP) before it started the run
    taker = make_worker(runqueue, clock, "taker", takeover_seconds=0)
    (taken,) = taker.take_over(5)
    executor = Scripted()
    assert handle(taker, taken, executor) == "succeeded"
    clock.now += 60  # it was stopped for longer than the takeover time
    assert handle(stalled, entry, executor) == "lost"
    key = f"{schedule.pk}:7000"
    assert executor.calls == [(key, 1)]  # the taker's run only
    assert [(run.attempt, run.status, run.worker) for run in runs(key)] == [(1, "succeeded", "taker")]


def test_an_entry_read_long_ago_is_run_if_it_is_still_the_workers(user, runqueue, worker, clock):
    schedule = schedule_services.schedule_create(job=make_job(user), kind="fixed", interval_seconds=3600)
    dispatch(runqueue, schedule, 8000)
    entry = read_one(worker)
    clock.now += 60  # a long backlog: nobody took it over meanwhile
    assert handle(worker, entry, Scripted()) == "succeeded"


def lose_redis(runqueue: RunQueue) -> None:
    """Redis loses every key of this test (a restart without persistence)."""
    for key in runqueue.client.scan_iter(match=f"*{runqueue.keyspace.prefix}*"):
        runqueue.client.delete(key)


def test_a_run_buffer_one_held_survives_redis_losing_its_data(user, runqueue, worker):
    from schedules import engine
    from schedules.due_index import get_due_index

    job = make_job(user)
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1, overlap_policy="buffer_one")
    sid = str(schedule.pk)
    running_elsewhere(runqueue, schedule, "other")
    dispatch(runqueue, schedule, 2000)
    executor = Scripted()
    assert handle(worker, read_one(worker), executor) == "held"
    lose_redis(runqueue)
    report = engine.reconcile(get_due_index(), schedule_services.timezone.now())
    assert report["requeued"] == 1
    back = read_one(worker)
    assert (back.fire_key, back.attempt) == (f"{sid}:2000", 1)
    assert handle(worker, back, executor) == "succeeded"  # the other run's lease went with Redis
    assert [(r.attempt, r.status) for r in runs(f"{sid}:2000")] == [(1, "succeeded")]
    assert executor.calls == [(f"{sid}:2000", 1)]


def test_a_manual_run_lost_with_redis_runs_once_even_if_its_entry_survived(user, runqueue, worker):
    from schedules import engine
    from schedules.due_index import get_due_index

    job = make_job(user)
    key = run_now(job, user=user)
    # The reconciled marker alone is gone: the entry is still there and is put back a second time.
    runqueue.client.delete(get_due_index().reconciled_key)
    assert engine.reconcile(get_due_index(), schedule_services.timezone.now())["requeued"] == 1
    executor = Scripted()
    first, second = worker.read(2)
    assert {first.fire_key, second.fire_key} == {key}
    assert handle(worker, first, executor) == "succeeded"
    handle(worker, second, executor)
    assert [(r.attempt, r.status) for r in runs(key)] == [(1, "succeeded")]
    assert executor.calls == [(key, 1)]
