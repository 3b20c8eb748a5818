"""Django Tasks the demo and the tests run (``demo.tasks.*``), discovered only where the demo app is installed."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from typing import Any

from jobs.tasks_api import TaskContext, task
from schedules.declarations import periodic

# The schedule declared in code below: its key in MongoDB (Job.code_key, Schedule.code_key).
CLOCK_SCHEDULE = "demo-clock"


@task
def hello(name: str = "world") -> str:
    """The demo job: says hello, so a newcomer sees a run succeed."""
    return f"hello, {name}"


@periodic(every=300, name=CLOCK_SCHEDULE, timeout_seconds=30)
@task
def clock() -> str:
    """Scheduled in code (@periodic, every 5 minutes): says the time, as a declared schedule at work."""
    return f"it is {datetime.now(UTC):%H:%M:%S} UTC"


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Returns its arguments: shows what a run was given."""
    return {"args": list(args), "kwargs": kwargs} if args else kwargs


@task
def environment(names: list[str]) -> dict[str, str | None]:
    """The value of each named variable as a run process sees it: shows what it is not given."""
    return {name: os.environ.get(name) for name in names}


@task
def sleep(seconds: float = 1.0) -> str:
    """Sleeps (at most an hour): shows timeouts, takeovers and overlap at work."""
    seconds = max(0.0, min(float(seconds), 3600.0))
    time.sleep(seconds)
    return f"slept {seconds}s"


@task
def fail(message: str = "demo failure") -> None:
    """Always raises: shows retries and their backoff."""
    raise RuntimeError(message)


@task(takes_context=True)
def attempt(context: TaskContext, fail_before: int = 0) -> dict[str, Any]:
    """Says which attempt this is (the Task context); fails the attempts before ``fail_before``."""
    number = context.attempt
    if number < fail_before:
        raise ValueError(f"attempt {number} fails on purpose")
    return {"attempt": number, "result_id": context.task_result.id}


@task
async def greet_later(name: str = "world", delay: float = 0.01) -> str:
    """An async Task: awaited in the run process."""
    await asyncio.sleep(min(float(delay), 60.0))
    return f"hello later, {name}"


@task
def unserializable() -> object:
    """Returns something JSON cannot hold: the Tasks contract makes that a failed run."""
    return object()
