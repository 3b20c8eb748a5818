"""Every query a worker's hot path makes on the runs collection is answered from an index.

The commands are captured as pymongo sends them while a worker handles new runs, then each
filter is explained on the server the suite uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymongo.monitoring
import pytest
from django.db import connection

from devtools.query_plans import CommandCapture, explain, winning_stages
from jobs.models import Run
from jobs.services import job_create
from schedules import services as schedule_services
from workers.handler import handle
from workers.tests.test_worker import Clock, Scripted, dispatch, make_worker, read_one

RUNS = Run._meta.db_table


CAPTURE = CommandCapture({RUNS})
pymongo.monitoring.register(CAPTURE)  # applies to clients made from now on


@pytest.fixture
def captured(db: Any) -> Iterator[list[dict[str, Any]]]:
    connection.close()  # the next query opens a client that reports to CAPTURE
    CAPTURE.commands.clear()
    CAPTURE.on.set()
    yield CAPTURE.commands
    CAPTURE.on.clear()


def plan_stages(query: dict[str, Any]) -> list[str]:
    return winning_stages(explain({"find": RUNS, "filter": query}))


def test_a_workers_hot_path_queries_the_runs_collection_by_index(user, runqueue, captured):
    runqueue.ensure_groups()
    job = job_create(owner=user, name="hot", target_type="python", target={"task": "demo.tasks.hello"})
    schedule = schedule_services.schedule_create(job=job, kind="fixed", interval_seconds=1)
    Run.objects.bulk_create([Run(job=job, fire_key=f"old:{n}", attempt=1) for n in range(300)])  # runs stored
    worker = make_worker(runqueue, Clock())
    captured.clear()
    for nominal in (1000, 2000, 3000):
        dispatch(runqueue, schedule, nominal)
        assert handle(worker, read_one(worker), Scripted()) == "succeeded"
    dispatch(runqueue, schedule, 3000)  # a replay: found recorded by the look-up at read
    assert handle(worker, read_one(worker), Scripted()) == "duplicate"
    kinds = [next(iter(command)) for command in captured]
    # New runs: one look-up per read and one insert per batch; the replay, found recorded at
    # read, has its record read (the ORM sends an aggregate) and is acknowledged.
    assert kinds == ["find", "insert"] * 3 + ["find", "aggregate"], kinds
    queries = [command["filter"] for command in captured if "find" in command]
    queries += [stage["$match"] for command in captured for stage in command.get("pipeline", []) if "$match" in stage]
    for query in queries:
        assert list(query) == ["fire_key"], query
        assert "IXSCAN" in plan_stages(query), query


def test_a_failing_run_checks_its_schedule_by_index(user, runqueue, captured):
    from workers.outcome import Outcome

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
    captured.clear()
    for nominal in (1000, 2000):
        dispatch(runqueue, schedule, nominal)
        assert handle(worker, read_one(worker), Scripted(Outcome("failed", error="boom"))) == "failed"
    schedule.refresh_from_db()
    assert schedule.paused  # pause_if_failing ran, and looked at the schedule's recent runs
    queries = [command["filter"] for command in captured if "find" in command]
    queries += [stage["$match"] for command in captured for stage in command.get("pipeline", []) if "$match" in stage]
    assert any(list(query) == ["schedule_id"] for query in queries), queries
    for query in queries:
        assert len(query) == 1, query
        assert "IXSCAN" in plan_stages(query), query
