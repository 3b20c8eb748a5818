"""Run records written in batches (workers.recorder), against the real MongoDB."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobs import run_records
from jobs.models import Job, Run
from jobs.services import job_create, run_now
from jobs.targets.celery import SendMarks
from workers.recorder import Recorder

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def job(user: Any) -> Job:
    return job_create(owner=user, name="recorded", target_type="python", target={"task": "demo.tasks.hello"})


def draft(job: Job, key: str = "s:1000", attempt: int = 1, worker: str = "w1") -> Run:
    return run_records.run_draft(
        job_id=job.pk,
        schedule_id="",
        fire_key=key,
        attempt=attempt,
        trigger="schedule",
        nominal_time=T0,
        dispatched_at=T0,
        worker=worker,
    )


def wait_for(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return value


@pytest.fixture
def recorder() -> Any:
    started: list[Recorder] = []

    def make(**options: Any) -> Recorder:
        made = Recorder(**options)
        made.start()
        started.append(made)
        return made

    yield make
    for made in started:
        made.stop()


def test_a_short_run_is_written_once_with_its_outcome(job, recorder):
    writer = recorder(insert_after=60)
    run = draft(job)
    assert writer.started(run, worker="w1", now=T0, dispatched_at=T0)
    time.sleep(0.1)
    assert not Run.objects.filter(fire_key="s:1000").exists()  # nothing written while it runs
    assert writer.finish(run, status="succeeded", now=T0 + timedelta(seconds=1), output="ok")
    (stored,) = Run.objects.filter(fire_key="s:1000")
    assert (stored.pk, stored.status, stored.worker, stored.output) == (run.pk, "succeeded", "w1", "ok")
    assert stored.started_at == T0 and stored.finished_at == T0 + timedelta(seconds=1)


def test_a_long_run_is_shown_running_then_updated(job, recorder):
    writer = recorder(insert_after=0.05)
    run = draft(job)
    writer.started(run, worker="w1", now=T0, dispatched_at=T0)
    stored = wait_for(lambda: Run.objects.filter(fire_key="s:1000").first())
    assert (stored.status, stored.worker, stored.started_at) == ("running", "w1", T0)
    assert writer.finish(run, status="failed", now=T0 + timedelta(seconds=2), error="boom")
    stored.refresh_from_db()
    assert (stored.status, stored.error) == ("failed", "boom")
    assert Run.objects.count() == 1


def test_an_outcome_that_comes_while_the_run_is_inserted_as_running_is_written_next(job, recorder, monkeypatch):

    writer = recorder(insert_after=0.05)
    run = draft(job)
    insert = run_records.runs_insert_many
    results: list[bool] = []
    ending = threading.Thread(
        target=lambda: results.append(writer.finish(run, status="failed", now=T0 + timedelta(seconds=2), error="boom"))
    )

    def insert_as_the_run_ends(runs: Any) -> Any:
        if not ending.is_alive() and not results:
            ending.start()  # the run ends while its running record is on its way
            wait_for(lambda: all(tracked.outcome for tracked in writer._tracked.values()))
        return insert(runs)

    monkeypatch.setattr(run_records, "runs_insert_many", insert_as_the_run_ends)
    writer.started(run, worker="w1", now=T0, dispatched_at=T0)
    ending_started = wait_for(lambda: ending.ident)
    assert ending_started
    ending.join(5)
    assert results == [True]
    stored = Run.objects.get(fire_key="s:1000")
    assert (stored.status, stored.error) == ("failed", "boom")


def test_many_runs_ending_together_are_written_in_one_batch(job, recorder):

    writer = recorder(insert_after=60)
    runs = [draft(job, key=f"s:{n}") for n in range(50)]
    for run in runs:
        writer.started(run, worker="w1", now=T0, dispatched_at=T0)
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda r=run: results.append(writer.finish(r, status="succeeded", now=T0)))
        for run in runs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 50
    assert Run.objects.filter(status="succeeded").count() == 50


def test_an_attempt_recorded_already_is_not_recorded_again(job, recorder):
    writer = recorder(insert_after=60)
    first, replay = draft(job), draft(job, worker="w2")
    writer.started(first, worker="w1", now=T0, dispatched_at=T0)
    assert writer.finish(first, status="succeeded", now=T0)
    writer.started(replay, worker="w2", now=T0, dispatched_at=T0)
    assert not writer.finish(replay, status="failed", now=T0, error="ran twice")
    assert [(run.worker, run.status) for run in Run.objects.all()] == [("w1", "succeeded")]


def test_a_pending_record_of_the_attempt_is_taken_on(user, job, recorder):
    key = run_now(job, user=user)
    writer = recorder(insert_after=60)
    run = run_records.run_draft(
        job_id=job.pk,
        schedule_id="",
        fire_key=key,
        attempt=1,
        trigger="manual",
        nominal_time=T0,
        dispatched_at=T0,
        worker="w1",
    )
    writer.started(run, worker="w1", now=T0, dispatched_at=T0)
    assert writer.finish(run, status="succeeded", now=T0)
    (stored,) = Run.objects.filter(fire_key=key)
    assert (stored.status, stored.worker, stored.trigger) == ("succeeded", "w1", "manual")


def test_a_run_taken_over_while_it_ran_records_nothing_over_its_successor(job, recorder):
    writer = recorder(insert_after=0.05)
    run = draft(job)
    writer.started(run, worker="stalled", now=T0, dispatched_at=T0)
    stored = wait_for(lambda: Run.objects.filter(fire_key="s:1000").first())
    # Another worker found "stalled" dead and failed its attempt (as workers.handler does).
    assert run_records.run_finish(stored, status="failed", now=T0, error="lost mid-run", expect_worker="stalled")
    assert not writer.finish(run, status="succeeded", now=T0 + timedelta(seconds=40), output="late")
    stored.refresh_from_db()
    assert (stored.status, stored.error, stored.output) == ("failed", "lost mid-run", "")


def test_without_its_thread_a_recorder_writes_at_once(job):
    writer = Recorder()
    run = draft(job)
    writer.started(run, worker="w1", now=T0, dispatched_at=T0)
    assert writer.finish(run, status="succeeded", now=T0)
    assert Run.objects.get(pk=run.pk).status == "succeeded"


def test_a_pass_that_failed_after_inserting_is_not_taken_for_a_duplicate(job, recorder, monkeypatch):
    writer = recorder(insert_after=60)
    run = draft(job)
    writer.started(run, worker="w1", now=T0, dispatched_at=T0)
    inserted = run_records.runs_insert_many

    def insert_then_lose_the_connection(runs: Any) -> list[bool]:
        inserted(runs)
        monkeypatch.setattr(run_records, "runs_insert_many", inserted)  # the next pass goes through
        for written in runs:
            written._state.adding = True  # as far as this pass knows, nothing was written
        raise ConnectionError("lost")

    monkeypatch.setattr(run_records, "runs_insert_many", insert_then_lose_the_connection)
    # The thread logs the failed pass and tries again: the record it finds is its own.
    assert writer.finish(run, status="succeeded", now=T0)
    assert Run.objects.get(pk=run.pk).status == "succeeded"


def test_recorded_hand_offs_lose_their_send_marks_in_one_pass(job, recorder, keyspace):
    marks = SendMarks(keyspace)
    writer = recorder(insert_after=60, marks=marks)
    handed = [draft(job, key=f"s:{n}") for n in range(3)]
    plain = draft(job, key="s:9")
    for run in [*handed, plain]:
        marks.mark(run.fire_key, 1, "sent", "w1")
        writer.started(run, worker="w1", now=T0, dispatched_at=T0)
    threads = [
        threading.Thread(target=writer.finish, args=(run,), kwargs={"status": "running", "now": T0, "external_id": k})
        for run, k in ((run, run.fire_key) for run in handed)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Gone by the time finish returns: a takeover reads the record first from now on.
    assert [marks.read(run.fire_key, 1) for run in handed] == [None] * 3
    assert writer.finish(plain, status="succeeded", now=T0)
    assert marks.read("s:9", 1) == ("sent", "w1")  # not a hand-off: its mark is not the recorder's business


def test_a_stored_hand_off_loses_its_send_mark_once_recorded(job, recorder, keyspace):
    marks = SendMarks(keyspace)
    writer = recorder(insert_after=60, marks=marks)
    run, _ = run_records.run_begin(draft(job))
    assert writer.started(run, worker="w1", now=T0, dispatched_at=T0)
    marks.mark("s:1000", 1, "sent", "w1")
    assert writer.finish(run, status="succeeded", now=T0, external_id="s:1000")
    assert marks.read("s:1000", 1) is None


def test_a_hand_off_is_inserted_as_running_only_once_it_has_lasted_longer(job, recorder):
    writer = recorder(insert_after=0.01, handoff_insert_after=60)
    handoff, plain = draft(job, key="s:1"), draft(job, key="s:2")
    writer.started(handoff, worker="w1", now=T0, dispatched_at=T0, handoff=True)
    writer.started(plain, worker="w1", now=T0, dispatched_at=T0)
    wait_for(lambda: Run.objects.filter(fire_key="s:2", status="running").exists())
    time.sleep(0.1)
    assert not Run.objects.filter(fire_key="s:1").exists()  # one write for it, when it ends
    assert writer.finish(handoff, status="succeeded", now=T0, external_id="s:1")
    assert Run.objects.get(fire_key="s:1").status == "succeeded"
