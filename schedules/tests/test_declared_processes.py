"""A schedule declared in code, end to end with real processes: synced at run_scheduler start, fired, run, recorded.

The processes run with schedules.tests.ticking_settings: the project's settings plus a test app
whose tasks module declares ``@periodic(every=1)`` on a Django Task. Nothing stands in for the
checks here: the scheduler's sync saves the job through the services (a Task in an installed
app's tasks module, or it is refused) and the worker resolves the Task again before each run.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from demo.tasks import CLOCK_SCHEDULE
from jobs.models import Job, Run
from jobscheduler.coordination import Coordination
from schedules.models import Schedule
from schedules.sync_declared import DEFAULT_CODE_OWNER
from workers.tests.test_processes import start, wait_for_workers, wait_until  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

TICK = "schedules.tests.ticking_app.tasks.tick"


@pytest.fixture
def process_env(process_env: dict[str, str]) -> dict[str, str]:
    return {**process_env, "DJANGO_SETTINGS_MODULE": "schedules.tests.ticking_settings"}


def test_a_task_declared_with_periodic_is_synced_at_start_fired_run_and_recorded(
    db: Any,
    start: Callable[..., Any],  # noqa: F811 (the fixture imported above)
    coordination: Coordination,
) -> None:
    assert not Job.objects.filter(code_key="tick").exists()
    start("run_worker", "--name", "tick-worker", "--concurrency", "2", "--processes", "1")
    wait_for_workers(coordination, "tick-worker")
    start("run_scheduler", "--name", "tick-scheduler")

    def three_runs() -> list[Run] | None:
        runs = list(Run.objects.filter(job__code_key="tick", status=Run.Status.SUCCEEDED).order_by("nominal_time"))
        return runs if len(runs) >= 3 else None

    runs = wait_until(three_runs, 60, "three runs of the declared task")

    job = Job.objects.get(code_key="tick")
    schedule = Schedule.objects.get(code_key="tick")
    assert job.owner.username == DEFAULT_CODE_OWNER
    assert (job.target_type, job.target) == ("python", {"task": TICK, "args": [], "kwargs": {"sound": "tock"}})
    assert (schedule.job_id, schedule.kind, schedule.interval_seconds) == (job.pk, "fixed", 1)
    assert schedule.code_digest  # applied by the sync, as declared
    assert all(run.trigger == Run.Trigger.SCHEDULE and run.schedule_id == schedule.pk for run in runs)
    assert all(run.worker == "tick-worker" and run.return_value == "tick, tock" for run in runs)
    assert len({run.fire_key for run in runs}) == len(runs)  # each occurrence once
    nominal_ms = [int(run.nominal_time.timestamp() * 1000) for run in runs if run.nominal_time is not None]
    assert len(nominal_ms) == len(runs)
    steps = [later - earlier for earlier, later in itertools.pairwise(nominal_ms)]
    assert all(step >= 1000 and step % 1000 == 0 for step in steps)  # on the declared one-second grid
    # The same start applied the demo app's declaration (installed in the tests, as in bin/run).
    assert Schedule.objects.filter(code_key=CLOCK_SCHEDULE, job__target__task="demo.tasks.clock").exists()
