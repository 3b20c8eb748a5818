"""Every query a worker's hot path makes on the runs collection is answered from an index.

The commands are captured as pymongo sends them while a worker handles new runs, then each
filter is explained on the server the suite uses (jobscheduler/tests/query_plans.py).
"""

from __future__ import annotations

from typing import Any

from jobs.models import Run
from jobs.services import job_create, run_now
from jobscheduler.tests.query_plans import assert_indexed, capturing, queries
from schedules import services as schedule_services
from workers.handler import handle
from workers.outcome import Outcome
from workers.tests.test_worker import Clock, Scripted, dispatch, make_worker, read_one

RUNS = Run._meta.db_table


def kinds(commands: list[dict[str, Any]]) -> list[str]:
    return [next(iter(command)) for command in commands]


def test_a_workers_hot_path_queries_the_runs_collection_by_index(user, runqueue):
    runqueue.ensure_groups()
    job = job_create(owner=user, name="hot", target_type="python", target={"task": "demo.tasks.hello"})
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1)
    Run.objects.bulk_create([Run(job=job, fire_key=f"old:{n}", attempt=1) for n in range(300)])  # runs stored
    worker = make_worker(runqueue, Clock())
    with capturing(RUNS) as captured:
        for nominal in (1000, 2000, 3000):
            dispatch(runqueue, schedule, nominal)
            assert handle(worker, read_one(worker), Scripted()) == "succeeded"
        dispatch(runqueue, schedule, 3000)  # a replay: found recorded by the look-up at read
        assert handle(worker, read_one(worker), Scripted()) == "duplicate"
    # New runs: one look-up per read and one insert per batch; the replay, found recorded at
    # read, has its record read (the ORM sends an aggregate) and is acknowledged.
    assert kinds(captured) == ["find", "insert"] * 3 + ["find", "aggregate"], kinds(captured)
    for _, query, _ in queries(captured):
        assert list(query) == ["fire_key"], query
    assert_indexed(captured, strict=True)


def test_a_manual_runs_pending_record_is_taken_on_by_index(user, runqueue):
    runqueue.ensure_groups()
    job = job_create(owner=user, name="manual", target_type="python", target={"task": "demo.tasks.hello"})
    Run.objects.bulk_create([Run(job=job, fire_key=f"old:{n}", attempt=1) for n in range(300)])
    worker = make_worker(runqueue, Clock())
    key = run_now(job, user=user)  # recorded pending: the worker's insert finds it taken
    with capturing(RUNS) as captured:
        assert handle(worker, read_one(worker), Scripted()) == "succeeded"
    assert Run.objects.get(fire_key=key).status == "succeeded"
    # Found at read, read by fire key, then started and finished by compare-and-sets on its id.
    assert kinds(captured) == ["find", "aggregate", "update", "update"], kinds(captured)
    updates = [query for _, query, _ in queries(command for command in captured if "update" in command)]
    assert all("_id" in query for query in updates), updates
    assert_indexed(captured)


def test_a_failing_run_checks_its_schedule_by_index(user, runqueue):
    runqueue.ensure_groups()
    job = job_create(
        owner=user,
        name="failing",
        target_type="python",
        target={"function": "demo.hello"},
        pause_schedules_after_failures=2,
    )
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1)
    Run.objects.bulk_create([Run(job=job, fire_key=f"old:{n}", attempt=1) for n in range(300)])
    worker = make_worker(runqueue, Clock())
    with capturing(RUNS) as captured:
        for nominal in (1000, 2000):
            dispatch(runqueue, schedule, nominal)
            assert handle(worker, read_one(worker), Scripted(Outcome("failed", error="boom"))) == "failed"
    schedule.refresh_from_db()
    assert schedule.paused  # pause_if_failing ran, and looked at the schedule's recent runs
    found = [query for _, query, _ in queries(captured)]
    assert any(list(query) == ["schedule_id"] for query in found), found
    for query in found:
        assert len(query) == 1, query
    assert_indexed(captured, strict=True)
